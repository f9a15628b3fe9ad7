"""The CLI asks the provider, never a target's name: what a target does differently (its
warnings, its guards, its secrets, what it deploys) is a method of its ``Provider``, so a new
target is a module of providers/ and a line of ``bfctl.providers.TARGETS``.

Read from the source with ``ast``, so a comparison in a branch no test runs is caught too.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from bfctl.providers import TARGETS

ROOT = Path(__file__).resolve().parent.parent
#: A resource type of a target's own (``gcp.artifactregistry.Repository``): Pulumi's naming.
RESOURCE_TYPE = re.compile(r"^[a-z]+\.[a-z]+\.[A-Z]\w*$")


def target_knowledge(source: str) -> list[str]:
    """Where ``source`` compares something with a target's name, or names a target's resource type."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            operands += [e for o in operands if isinstance(o, (ast.Tuple, ast.List, ast.Set)) for e in o.elts]
            names = [o.value for o in operands if isinstance(o, ast.Constant) and o.value in TARGETS]
            found += [(node.lineno, f"compares with {name!r}") for name in names]
        elif isinstance(node, ast.MatchValue) and isinstance(node.value, ast.Constant) and node.value.value in TARGETS:
            found.append((node.lineno, f"matches {node.value.value!r}"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and RESOURCE_TYPE.match(node.value):
            found.append((node.lineno, f"names the resource type {node.value!r}"))
    return [f"line {line} {what}" for line, what in sorted(found)]


def test_the_cli_compares_nothing_with_a_target_name() -> None:
    folder = ROOT / "bfctl"
    own = [p for p in sorted(folder.rglob("*.py")) if p.relative_to(folder).parts[0] not in ("runtime", "providers")]
    assert len(own) > 10  # the CLI's modules, not the two packages it only names
    found = [f"{path.relative_to(ROOT)}: {where}" for path in own for where in target_knowledge(path.read_text())]
    assert found == []


def test_the_check_sees_comparisons_and_resource_types() -> None:
    source = (
        "if target == 'gcp':\n    pass\n"
        "ok = 'local' != provider.target\n"
        "named = t in ('local', 'x')\n"
        "match target:\n    case 'gcp':\n        pass\n"
        "kind = 'gcp.artifactregistry.Repository'\n"
        "default = 'local'\n"  # a default value names a target without asking which one it is
    )
    assert target_knowledge(source) == [
        "line 1 compares with 'gcp'",
        "line 3 compares with 'local'",
        "line 4 compares with 'local'",
        "line 6 matches 'gcp'",
        "line 8 names the resource type 'gcp.artifactregistry.Repository'",
    ]
