"""Which attributes of a dependency name the primitive it uses.

The dependency builders set them on the class they build (``SinkDependencyBuilder`` its
``sink_primitive``, ``BucketDependencyBuilder`` its ``bucket_primitive``, the session builders
``db_primitive``, ``AnalysisQuery`` its ``query_primitive``); the CLI reads them to plan what the
flow uses and to draw its graph, the runtime to refuse what bfctl does not support.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

#: The attributes, in the order the builders above are listed.
DEPENDENCY_PRIMITIVES = ("sink_primitive", "bucket_primitive", "db_primitive", "query_primitive")


def named_primitives(dependency: Any, attributes: tuple[str, ...] = DEPENDENCY_PRIMITIVES) -> list[Any]:
    """The primitives ``dependency`` (a class or function the flow injects) names by ``attributes``."""
    return [p for attr in attributes if (p := getattr(dependency, attr, None)) is not None]


def referenced_primitives(dependency: Any) -> Iterator[Any]:
    """What ``dependency`` may use: the primitives it names, then every value captured by the
    function (or the class's ``__init__``) that builds it, as ``SessionDep(db_primitive=...)``'s
    classes capture theirs. Callers keep the values that are primitives."""
    yield from named_primitives(dependency)
    fn = vars(dependency).get("__init__") if isinstance(dependency, type) else dependency
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            yield cell.cell_contents
        except ValueError:  # an empty cell
            continue
