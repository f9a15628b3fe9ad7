"""The four components import one way: bfctl -> runtime, providers -> buildflow.

The runtime and the providers keep their folders (runtime/, providers/) and are imported as
``bfctl.runtime`` and ``bfctl.providers``: nothing of ours takes a top-level name a user's
project would give its own module.

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


#: Top-level names a user's project may use for its own modules: ours never import as them.
GENERIC = {"runtime", "providers"}


def component_of(module: str) -> str:
    """The component a module belongs to: ``bfctl.runtime.app`` is the runtime's."""
    first, _, rest = module.partition(".")
    second = rest.partition(".")[0]
    return second if first == "bfctl" and second in GENERIC else first


def sources(component: str) -> list[Path]:
    """The component's files, from its own folder (bfctl's without the two it only names)."""
    folder = ROOT / component
    return sorted(p for p in folder.rglob("*.py") if p.relative_to(folder).parts[0] not in GENERIC)


def violations(component: str) -> list[str]:
    forbidden = FORBIDDEN[component]
    found = []
    for path in sources(component):
        tree = ast.parse(path.read_text(), str(path))
        for line, module in imported_modules(tree):
            if component_of(module) in forbidden:
                found.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return found


@pytest.mark.parametrize("component", sorted(FORBIDDEN))
def test_component_imports_point_one_way(component: str) -> None:
    assert violations(component) == []


@pytest.mark.parametrize("component", ["bfctl", "buildflow", "providers", "runtime", "tests", "bench"])
def test_nothing_imports_our_modules_under_a_generic_top_level_name(component: str) -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in sources(component)
        for line, module in imported_modules(ast.parse(path.read_text(), str(path)))
        if module.partition(".")[0] in GENERIC
    ]
    assert found == []


def test_the_check_sees_every_kind_of_import() -> None:
    source = (
        "import bfctl.runtime.sinks\n"
        "from bfctl.providers.local import LocalProvider\n"
        "from . import sibling\n"
        "def later():\n"
        "    import bfctl.infra\n"
        "    importlib.import_module('bfctl.runtime.sinks.files')\n"
    )
    modules = sorted(module for _, module in imported_modules(ast.parse(source)))
    assert modules == ["bfctl.infra", "bfctl.providers.local", "bfctl.runtime.sinks", "bfctl.runtime.sinks.files"]
    assert [component_of(m) for m in modules] == ["bfctl", "providers", "runtime", "runtime"]
