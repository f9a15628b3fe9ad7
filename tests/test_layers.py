"""The four components import one way: bfctl -> runtime, providers -> buildflow.

Read from the source with ``ast`` (nothing is imported), so a forbidden import is caught even
in a function body or a module no test loads.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: What each component must not import: the SDK nothing of the others, and the runtime and the
#: providers (the two sides that interpret it) not each other, nor the CLI that calls them.
FORBIDDEN: dict[str, set[str]] = {
    "buildflow": {"runtime", "providers", "bfctl"},
    "providers": {"runtime", "bfctl"},
    "runtime": {"providers", "bfctl"},
}


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every absolute import, and of ``importlib.import_module("...")``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
    return found


def violations(component: str) -> list[str]:
    forbidden = FORBIDDEN[component]
    found = []
    for path in sorted((ROOT / component).rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for line, module in imported_modules(tree):
            if module.partition(".")[0] in forbidden:
                found.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return found


@pytest.mark.parametrize("component", sorted(FORBIDDEN))
def test_component_imports_point_one_way(component: str) -> None:
    assert violations(component) == []


def test_the_check_sees_every_kind_of_import() -> None:
    source = (
        "import runtime.sinks\n"
        "from providers.local import LocalProvider\n"
        "from . import sibling\n"
        "def later():\n"
        "    import bfctl.infra\n"
        "    importlib.import_module('runtime.sinks.files')\n"
    )
    modules = sorted(module for _, module in imported_modules(ast.parse(source)))
    assert modules == ["bfctl.infra", "providers.local", "runtime.sinks", "runtime.sinks.files"]
