"""``bfctl graph``, ``bfctl routes`` and ``bfctl outputs``: what a flow is made of, read from the
same compiled graph the runtime serves (so what is shown is what runs), and what its stack holds.

The runtime is imported by the command, never at module level.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any


@dataclasses.dataclass
class Dependency:
    id: str
    name: str
    scope: str  # PROCESS, REPLICA or GLOBAL; "NO_SCOPE as PROCESS" for one made per use
    needs: list[str] = dataclasses.field(default_factory=list)
    uses: list[str] = dataclasses.field(default_factory=list)  # primitive ids


@dataclasses.dataclass
class Handler:
    id: str
    kind: str  # endpoint, websocket, collector or consumer
    name: str
    method: str  # HTTP method, or CONSUME
    path: str  # the route, or the source a consumer reads
    needs: list[str] = dataclasses.field(default_factory=list)
    reads: list[str] = dataclasses.field(default_factory=list)
    writes: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class FlowGraph:
    handlers: list[Handler]
    dependencies: list[Dependency]
    primitives: dict[str, str]  # primitive id -> its type's name


def _primitive_id(value: Any) -> str | None:
    method = getattr(value, "primitive_id", None)
    return method() if callable(method) else None


class _Builder:
    def __init__(self) -> None:
        self.primitives: dict[str, str] = {}
        self.dependencies: dict[str, Dependency] = {}

    def primitive(self, value: Any) -> str | None:
        pid = _primitive_id(value) if value is not None else None
        if pid is not None:
            self.primitives.setdefault(pid, type(value).__name__)
        return pid

    def needs(self, args: list[tuple[str, Any]]) -> list[str]:
        from bfctl.runtime.di.graph import Node

        return list(dict.fromkeys(self.node(arg) for _, arg in args if isinstance(arg, Node)))

    def node(self, node: Any) -> str:
        from buildflow.dependencies.scopes import Scope

        factory = node.factory
        scope = node.scope.name
        if factory.scope is Scope.NO_SCOPE:
            scope = f"NO_SCOPE as {scope}"
        key = f"{factory.name}@{node.scope.name}"
        if key not in self.dependencies:
            from buildflow.dependencies.primitives import referenced_primitives

            dep = Dependency(f"d{len(self.dependencies)}", factory.name, scope)
            self.dependencies[key] = dep
            dep.needs = self.needs(node.args)
            dep.uses = list(dict.fromkeys(p for v in referenced_primitives(factory.target) if (p := self.primitive(v))))
        return self.dependencies[key].id


def flow_graph(flow: Any) -> FlowGraph:
    """The flow compiled as ``bfctl serve`` compiles it (raises its StartupError), as a graph."""
    from bfctl.runtime.app import FlowApp

    compiled = FlowApp(flow)
    builder = _Builder()
    for primitive in flow.managed_primitives:
        builder.primitive(primitive)
    collectors = {c.route: c for c in flow.collectors}
    handlers: list[Handler] = []
    for h in compiled.handlers:
        kind = "collector" if h.is_collector else "websocket" if h.is_websocket else "endpoint"
        handler = Handler(f"h{len(handlers)}", kind, h.name, h.method, h.route, builder.needs(h.plan.handler.args))
        if h.is_collector and (sink := builder.primitive(collectors[h.route].sink_primitive)):
            handler.writes.append(sink)
        handlers.append(handler)
    for c in compiled.consumers.consumers:
        source = builder.primitive(c.consumer.source_primitive)
        handler = Handler(
            f"h{len(handlers)}", "consumer", c.name, "CONSUME", source or "", builder.needs(c.plan.handler.args)
        )
        handler.reads = [source] if source else []
        if sink := builder.primitive(c.consumer.sink_primitive):
            handler.writes.append(sink)
        handlers.append(handler)
    return FlowGraph(handlers, list(builder.dependencies.values()), builder.primitives)


# -- rendering -----------------------------------------------------------------------------------
def render_text(graph: FlowGraph) -> str:
    deps = {d.id: d for d in graph.dependencies}
    lines: list[str] = []

    shown: set[str] = set()

    def tree(ids: list[str], depth: int) -> None:
        """Each dependency with what it needs below it; expanded once, then named."""
        for dep_id in ids:
            dep = deps[dep_id]
            uses = f" uses {', '.join(dep.uses)}" if dep.uses else ""
            again = " (as above)" if dep_id in shown and dep.needs else ""
            lines.append(f"{'  ' * depth}{dep.name} [{dep.scope}]{uses}{again}")
            if dep_id not in shown:
                shown.add(dep_id)
                tree(dep.needs, depth + 1)

    lines.append("Handlers:")
    for h in graph.handlers:
        lines.append(f"  {h.kind} {h.name}: {h.method} {h.path}")
        lines.extend(f"    reads {p}" for p in h.reads)
        lines.extend(f"    writes {p}" for p in h.writes)
        tree(h.needs, 2)
    if graph.primitives:
        lines.append("Primitives:")
        lines.extend(f"  {pid} ({kind})" for pid, kind in graph.primitives.items())
    return "\n".join(lines)


def _primitive_ids(graph: FlowGraph) -> dict[str, str]:
    return {pid: f"p{i}" for i, pid in enumerate(graph.primitives)}


def _edges(graph: FlowGraph) -> Iterator[tuple[str, str, str]]:
    """(from, to, label) between handlers, dependencies and primitives, by their ids."""
    prim = _primitive_ids(graph)
    for h in graph.handlers:
        yield from ((h.id, d, "") for d in h.needs)
        yield from ((prim[p], h.id, "reads") for p in h.reads)
        yield from ((h.id, prim[p], "writes") for p in h.writes)
    for d in graph.dependencies:
        yield from ((d.id, n, "") for n in d.needs)
        yield from ((d.id, prim[p], "uses") for p in d.uses)


def _mermaid_text(text: str) -> str:
    return '"' + text.replace('"', "#quot;") + '"'


def render_mermaid(graph: FlowGraph) -> str:
    lines = ["flowchart LR"]
    lines += [f"  {h.id}[{_mermaid_text(f'{h.kind} {h.name}<br/>{h.method} {h.path}')}]" for h in graph.handlers]
    lines += [f"  {d.id}({_mermaid_text(f'{d.name}<br/>{d.scope}')})" for d in graph.dependencies]
    lines += [f"  {n}[({_mermaid_text(f'{graph.primitives[p]}<br/>{p}')})]" for p, n in _primitive_ids(graph).items()]
    for src, dst, label in _edges(graph):
        lines.append(f"  {src} -->|{label}| {dst}" if label else f"  {src} --> {dst}")
    return "\n".join(lines)


def _dot_node(node_id: str, shape: str, first: str, second: str) -> str:
    label = json.dumps(f"{first}\n{second}")  # a double-quoted string with backslash escapes, as DOT reads them
    return f"  {node_id} [shape={shape}, label={label}];"


def render_dot(graph: FlowGraph) -> str:
    lines = ["digraph flow {", "  rankdir=LR;"]
    lines += [_dot_node(h.id, "box", f"{h.kind} {h.name}", f"{h.method} {h.path}") for h in graph.handlers]
    lines += [_dot_node(d.id, "ellipse", d.name, d.scope) for d in graph.dependencies]
    lines += [_dot_node(n, "cylinder", graph.primitives[p], p) for p, n in _primitive_ids(graph).items()]
    for src, dst, label in _edges(graph):
        lines.append(f"  {src} -> {dst} [label={json.dumps(label)}];" if label else f"  {src} -> {dst};")
    lines.append("}")
    return "\n".join(lines)


RENDERERS = {"text": render_text, "mermaid": render_mermaid, "dot": render_dot}


def routes(flow: Any) -> list[dict[str, str]]:
    """The flow's HTTP routes as served: method, path, handler and kind."""
    return [
        {"method": h.method, "path": h.path, "handler": h.name, "kind": h.kind}
        for h in flow_graph(flow).handlers
        if h.kind != "consumer"
    ]


def render_routes(rows: list[dict[str, str]]) -> str:
    if not rows:
        return "The flow serves no routes."
    table = [["METHOD", "PATH", "HANDLER", "KIND"], *([r["method"], r["path"], r["handler"], r["kind"]] for r in rows)]
    sizes = [max(len(row[i]) for row in table) for i in range(3)]
    return "\n".join("  ".join([*(c.ljust(n) for c, n in zip(row, sizes, strict=False)), row[3]]) for row in table)


def stack_outputs(target: str, stack: str, options: dict[str, str | None]) -> dict[str, dict[str, Any]]:
    """What the stack's last apply recorded, per resource (the providers never record a secret)."""
    from bfctl.infra import provider_for

    return dict(provider_for(target, stack, options).outputs())


# -- the commands ---------------------------------------------------------------------------------
def show_graph(flow: Any, fmt: str) -> None:
    from bfctl.infra import Refused

    renderer = RENDERERS.get(fmt)
    if renderer is None:
        raise Refused(f"unknown graph format `{fmt}`: use {', '.join(RENDERERS)}")
    print(renderer(flow_graph(flow)), flush=True)  # noqa: T201 - the graph on stdout, for files and pipes


def show_routes(flow: Any, as_json: bool) -> None:
    rows = routes(flow)
    print(json.dumps(rows, indent=2) if as_json else render_routes(rows), flush=True)  # noqa: T201 - on stdout


def show_outputs(target: str, stack: str, options: dict[str, str | None], as_json: bool) -> None:
    from bfctl import console, render

    values = stack_outputs(target, stack, options)
    if as_json:
        print(json.dumps(values, indent=2, default=str), flush=True)  # noqa: T201 - for scripts
    elif values:
        render.outputs(values)
    else:
        from bfctl.infra import suggested

        apply = suggested("apply", target, stack, options)
        console.info(f"Nothing applied on the {target} target (stack `{stack}`): run `{apply}` first.")
