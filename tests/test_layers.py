"""The four components import one way: bfctl -> runtime, providers -> buildflow.

The runtime and the providers keep their folders (runtime/, providers/) and are imported as
``bfctl.runtime`` and ``bfctl.providers``: nothing of ours takes a top-level name a user's
project would give its own module.

Read from the source with ``ast`` (nothing is imported), so a forbidden import is caught even
in a function body or a module no test loads. The same reading finds the import circles between
a package's modules (tools/import_cycles.py, which contributors run to see them).
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load_import_cycles() -> ModuleType:
    """tools/import_cycles.py, the circle finder contributors run: a repository tool, not installed."""
    spec = importlib.util.spec_from_file_location("import_cycles", ROOT / "tools" / "import_cycles.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


import_cycles = load_import_cycles()

#: What each component must not import: the SDK nothing of the others, and the runtime and the
#: providers (the two sides that interpret it) not each other, nor the CLI that calls them.
FORBIDDEN: dict[str, set[str]] = {
    "buildflow": {"runtime", "providers", "bfctl"},
    "providers": {"runtime", "bfctl"},
    "runtime": {"providers", "bfctl"},
}


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every absolute import, type-only ones too (a layer's annotations do not
    name another layer's types either), and of ``importlib.import_module("...")``."""
    return [(found.line, found.module) for found in import_cycles.imports(tree) if found.level == 0]


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


#: The circles that exist today, by package. Each is a group of modules that import each other,
#: directly or through others of the group (the script prints the imports that make it).
KNOWN_CIRCLES: dict[str, set[frozenset[str]]] = {
    # Mutual recursion on purpose, through an import in a function: a nested column's type and
    # check are built from its parts' types and checks.
    "buildflow": {
        frozenset({"buildflow.storage.ddl", "buildflow.storage.duckdb_types"}),
        frozenset({"buildflow.types.bigquery_fields", "buildflow.types.schema"}),
    },
}


@pytest.mark.parametrize("package", sorted(import_cycles.PACKAGES))
def test_no_import_circles_between_a_packages_modules(package: str) -> None:
    """A new circle fails here (one within a listed circle is that circle shrinking); so does a
    listed circle that is gone (remove it, so the list says what is left).
    ``python -m tools.import_cycles`` shows the imports that make each circle."""
    found = import_cycles.circles(package)
    known = KNOWN_CIRCLES.get(package, set())
    assert [sorted(c) for c in found if not any(c <= k for k in known)] == [], "new import circle"
    gone = [sorted(k) for k in known if not any(c <= k for c in found)]
    assert gone == [], "a listed circle is gone: remove it from KNOWN_CIRCLES"


def test_circles_count_lazy_imports_but_not_type_only_ones(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("from pkg import b\n")
    (tmp_path / "b.py").write_text("def later():\n    from . import c\n")
    (tmp_path / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import b\n")
    (tmp_path / "d.py").write_text("from .c import anything\nimport pkg.e\n")
    (tmp_path / "e.py").write_text("if 1:\n    import pkg.d\n")
    (tmp_path / "__init__.py").write_text("from pkg.a import name\n")
    packages = {"pkg": tmp_path}
    assert import_cycles.circles("pkg", packages) == [frozenset({"pkg.d", "pkg.e"})]
    (tmp_path / "c.py").write_text("def later():\n    import pkg.b\n")
    assert import_cycles.circles("pkg", packages) == [frozenset({"pkg.b", "pkg.c"}), frozenset({"pkg.d", "pkg.e"})]


def test_no_test_file_imports_another() -> None:
    """What tests share lives in support.py, fakes/, gcp_mocks.py and flows/: a test file found
    by its name holds its tests and nothing another file needs."""
    found = [
        f"{path.name}:{line} imports {module}"
        for path in sorted((ROOT / "tests").glob("test_*.py"))
        for line, module in imported_modules(ast.parse(path.read_text(), str(path)))
        if module.partition(".")[0].startswith("test_")
    ]
    assert found == []
