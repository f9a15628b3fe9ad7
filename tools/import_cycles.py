"""Print the import circles between the modules of each of our packages.

Run from the repository: ``python -m tools.import_cycles`` (exit status 1 when there is a circle).
``tests/test_layers.py`` checks the same graph, so what this prints is what the test refuses.

The graph is read from the source with ``ast``, nothing is imported: an import inside a function
counts (a lazy circle still ties the two modules together, it only fails later), an import under
``if TYPE_CHECKING:`` does not (it never runs). An import names its most specific module:
``from bfctl.runtime.sinks import files`` is an edge to ``bfctl.runtime.sinks.files`` when that is
a module, otherwise to the package ``bfctl.runtime.sinks``; the parent packages an import also
runs are not edges, or every package whose ``__init__`` gathers its modules would be a circle.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent

#: Each package and its folder. bfctl.runtime and bfctl.providers live in the top-level runtime/
#: and providers/ folders (bfctl/ holds symlinks to them), so bfctl's own modules exclude them.
PACKAGES: dict[str, Path] = {
    "buildflow": ROOT / "buildflow",
    "bfctl": ROOT / "bfctl",
    "bfctl.runtime": ROOT / "runtime",
    "bfctl.providers": ROOT / "providers",
}


class Edge(NamedTuple):
    """One import of a module by another: where it is written, and whether it waits for a call."""

    source: str
    target: str
    path: Path
    line: int
    lazy: bool


def modules(package: str, packages: Mapping[str, Path] = PACKAGES) -> dict[str, Path]:
    """The package's modules by dotted name (a subpackage is its ``__init__``), without those of
    the packages inside it that have folders of their own."""
    folder = packages[package]
    others = {name.rpartition(".")[2] for name in packages if name.startswith(package + ".")}
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*.py")):
        parts = path.relative_to(folder).with_suffix("").parts
        if parts[0] in others:
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join((package, *parts))] = path
    return found


class Import(NamedTuple):
    """One import statement (or ``importlib.import_module("...")`` call) as written."""

    module: str  #: ``a.b`` of ``import a.b`` and of ``from a.b import c``, without its dots
    level: int  #: the leading dots of a relative import
    names: tuple[str, ...]  #: what ``from ... import`` takes: modules or names of the module
    line: int
    lazy: bool  #: inside a function: it runs when the function is called
    type_only: bool  #: under ``if TYPE_CHECKING:``: it never runs


def is_type_checking(test: ast.expr) -> bool:
    """``TYPE_CHECKING`` or ``typing.TYPE_CHECKING``."""
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def imports(tree: ast.AST) -> Iterator[Import]:
    """Every import in ``tree``, at any depth."""

    def visit(nodes: Iterable[ast.AST], lazy: bool, type_only: bool) -> Iterator[Import]:
        for node in nodes:
            if isinstance(node, ast.Import):
                yield from (Import(a.name, 0, (), node.lineno, lazy, type_only) for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                names = tuple(a.name for a in node.names)
                yield Import(node.module or "", node.level, names, node.lineno, lazy, type_only)
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "import_module"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                yield Import(node.args[0].value, 0, (), node.lineno, lazy, type_only)
            if isinstance(node, ast.If) and is_type_checking(node.test):
                yield from visit(node.body, lazy, True)
                yield from visit(node.orelse, lazy, type_only)
                continue
            inner = lazy or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            yield from visit(ast.iter_child_nodes(node), inner, type_only)

    yield from visit([tree], False, False)


def targets(found: Import, module: str, known: Mapping[str, Path]) -> Iterator[str]:
    """The modules an import in ``module`` runs: ``from a import b`` runs the module ``a.b``
    when there is one, otherwise ``a`` (``b`` is one of its names)."""
    origin = found.module
    if found.level:
        package = module if known[module].name == "__init__.py" else module.rpartition(".")[0]
        anchor = package.rsplit(".", found.level - 1)[0]
        origin = f"{anchor}.{found.module}" if found.module else anchor
    if not found.names:
        yield origin
    for name in found.names:
        submodule = f"{origin}.{name}"
        yield submodule if submodule in known else origin


def edges(package: str, packages: Mapping[str, Path] = PACKAGES) -> list[Edge]:
    """Every import that runs from one of the package's modules to another (itself excluded);
    of two imports of the same module, the one at module level is kept."""
    known = modules(package, packages)
    found: list[Edge] = []
    for module, path in known.items():
        kept: dict[str, tuple[int, bool]] = {}
        for each in imports(ast.parse(path.read_text(), str(path))):
            if each.type_only:
                continue
            for target in targets(each, module, known):
                seen = kept.get(target)
                if target in known and target != module and (seen is None or (seen[1] and not each.lazy)):
                    kept[target] = (each.line, each.lazy)
        found += [Edge(module, target, path, line, lazy) for target, (line, lazy) in sorted(kept.items())]
    return found


def circles(package: str, packages: Mapping[str, Path] = PACKAGES) -> list[frozenset[str]]:
    """The package's import circles: the strongly connected groups of two or more modules."""
    graph: dict[str, list[str]] = {}
    for edge in edges(package, packages):
        graph.setdefault(edge.source, []).append(edge.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[frozenset[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, []):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group: set[str] = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(frozenset(group))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return sorted(groups, key=sorted)


def report() -> tuple[str, int]:
    """The text printed, and how many circles it shows."""
    lines: list[str] = []
    count = 0
    for package in PACKAGES:
        found = circles(package)
        count += len(found)
        lines.append(f"{package}: {len(found)} circle{'' if len(found) == 1 else 's'}")
        package_edges = edges(package)
        for group in found:
            lines.append("  " + " <-> ".join(sorted(group)))
            for edge in package_edges:
                if edge.source in group and edge.target in group:
                    where = f"{edge.path.relative_to(ROOT)}:{edge.line}"
                    kind = " (in a function)" if edge.lazy else ""
                    lines.append(f"    {edge.source} -> {edge.target}  {where}{kind}")
    return "\n".join(lines), count


def main() -> int:
    text, count = report()
    sys.stdout.write(text + "\n")
    return 1 if count else 0


if __name__ == "__main__":
    sys.exit(main())
