"""The dashboard's picture of a flow: its processors, what they depend on and the resources they
touch, placed on a grid of columns here so that the page only draws boxes and curves.

Built once, from the compiled app (what is pictured is what runs), the first time the Flow page asks.
Columns, left to right: services and the resources only read (sources); endpoints, collectors and
consumers; their dependencies and dispatcher functions, deeper ones further right; the resources
written or used. Within a column, each node sits near the mean row of the nodes pointing at it,
which keeps most edges short and uncrossed for flows of the size people write by hand.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from bfctl.runtime.di.graph import Node
from buildflow.dependencies.primitives import referenced_primitives
from buildflow.processors import join_route

if TYPE_CHECKING:
    from bfctl.runtime.app import FlowApp

NODE_WIDTH = 190
NODE_HEIGHT = 48
COLUMN_GAP = 60
ROW_GAP = 18
MARGIN = 20
#: What the dependency graph calls a dispatcher function's node (``runtime.di.dispatch``).
_DISPATCHER_PREFIX = "dispatcher function "
_DEPENDENCIES = ("dependency", "dispatcher")


@dataclasses.dataclass
class Box:
    id: str
    kind: str  # service, endpoint, websocket, collector, consumer, dependency, dispatcher, resource
    label: str
    detail: str
    info: dict[str, Any]
    column: int = 0
    x: float = 0
    y: float = 0


@dataclasses.dataclass
class Picture:
    boxes: dict[str, Box] = dataclasses.field(default_factory=dict)
    edges: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)  # from, to, label

    def add(self, box: Box) -> str:
        self.boxes.setdefault(box.id, box)
        return box.id

    def link(self, source: str, target: str, label: str = "") -> None:
        if (source, target, label) not in self.edges:
            self.edges.append((source, target, label))


def _primitive_id(value: Any) -> str | None:
    method = getattr(value, "primitive_id", None)
    return method() if callable(method) else None


class _Builder:
    def __init__(self, outputs: Any) -> None:
        self.picture = Picture()
        self._outputs = outputs
        self._nodes: dict[int, str] = {}

    def resource(self, primitive: Any) -> str | None:
        pid = _primitive_id(primitive) if primitive is not None else None
        if pid is None:
            return None
        info = {"type": type(primitive).__name__, "id": pid, "applied": pid in self._outputs}
        return self.picture.add(Box(f"r:{pid}", "resource", type(primitive).__name__, pid, info))

    def dependency(self, node: Node) -> str:
        if id(node) in self._nodes:
            return self._nodes[id(node)]
        factory = node.factory
        dispatcher = factory.name.startswith(_DISPATCHER_PREFIX)
        name = factory.name.removeprefix(_DISPATCHER_PREFIX).strip("`") if dispatcher else factory.name
        info = {
            "name": name,
            "scope": node.scope.name,
            "declared scope": factory.scope.name,
            "async": factory.is_async,
            "own thread-pool trip": factory.blocking,
        }
        box_id = self.picture.add(
            Box(f"d{len(self._nodes)}", "dispatcher" if dispatcher else "dependency", name, node.scope.name, info)
        )
        self._nodes[id(node)] = box_id
        self.needs(box_id, node.args)
        for primitive in referenced_primitives(factory.target):
            if (resource := self.resource(primitive)) is not None:
                self.picture.link(box_id, resource, "uses")
        return box_id

    def needs(self, source: str, args: list[Any]) -> None:
        for _, arg in args:
            if isinstance(arg, Node):
                self.picture.link(source, self.dependency(arg))


def picture(flow_app: FlowApp) -> Picture:
    """Every service, processor, dependency and resource of the compiled flow, laid out."""
    flow = flow_app.flow
    builder = _Builder(flow_app.outputs)
    boxes = builder.picture
    owners: dict[tuple[str, str], str] = {}
    for index, service in enumerate(flow.services):
        label = service.service_id
        service_box = boxes.add(Box(f"s{index}", "service", label, f"base route {service.base_route}", {}))
        for endpoint in service.endpoints:
            owners[(join_route(service.base_route, endpoint.route), endpoint.method.value)] = service_box
    sinks = {c.route: c.sink_primitive for c in flow.collectors}
    for index, handler in enumerate(flow_app.handlers):
        kind = "collector" if handler.is_collector else "websocket" if handler.is_websocket else "endpoint"
        info = {"handler": handler.name, "method": handler.method, "route": handler.route, "async": handler.is_async}
        box = boxes.add(Box(f"h{index}", kind, handler.name, f"{handler.method} {handler.route}", info))
        if (owner := owners.get((handler.route, handler.method))) is not None:
            boxes.link(owner, box)
        builder.needs(box, handler.plan.handler.args)
        if handler.is_collector and (written := builder.resource(sinks.get(handler.route))):
            boxes.link(box, written, "writes")
    for index, consumer in enumerate(flow_app.consumers.consumers):
        declared = consumer.consumer
        info = {"handler": consumer.name, "async": consumer.is_async}
        box = boxes.add(Box(f"c{index}", "consumer", consumer.name, "consumer", info))
        if source := builder.resource(declared.source_primitive):
            boxes.link(source, box, "reads")
        builder.needs(box, consumer.plan.handler.args)
        if sink := builder.resource(declared.sink_primitive):
            boxes.link(box, sink, "writes")
    for primitive in flow.managed_primitives:
        builder.resource(primitive)
    _lay_out(boxes)
    return boxes


def _lay_out(picture: Picture) -> None:
    boxes = picture.boxes
    incoming: dict[str, list[str]] = {key: [] for key in boxes}
    for source, target, _ in picture.edges:
        incoming[target].append(source)
    reads = {source for source, _, _ in picture.edges}
    depth: dict[str, int] = {}

    def column(key: str) -> int:
        """A dependency: one right of the deepest thing that needs it (the graph has no cycles)."""
        if key not in depth:
            depth[key] = 1 + max((column(p) if boxes[p].kind in _DEPENDENCIES else 1 for p in incoming[key]), default=1)
        return depth[key]

    for key, box in boxes.items():
        if box.kind in _DEPENDENCIES:
            box.column = column(key)
        elif box.kind != "resource":
            box.column = 0 if box.kind == "service" else 1
    last = max((b.column for b in boxes.values()), default=1) + 1
    for key, box in boxes.items():
        if box.kind == "resource":  # a source only read sits left of its consumers
            box.column = 0 if not incoming[key] and key in reads else last
    rows: dict[str, float] = {}
    for index in range(last + 1):
        members = [key for key, box in boxes.items() if box.column == index]
        members.sort(key=lambda key: _mean([rows[p] for p in incoming[key] if p in rows]))
        for row, key in enumerate(members):
            rows[key] = row
            box = boxes[key]
            box.x = MARGIN + index * (NODE_WIDTH + COLUMN_GAP)
            box.y = MARGIN + row * (NODE_HEIGHT + ROW_GAP)


def _mean(values: list[float]) -> float:
    """Where a node would like its row; nodes nothing placed points at keep their order, last."""
    return sum(values) / len(values) if values else float("inf")


def as_json(picture: Picture) -> dict[str, Any]:
    """Boxes with their places, and each edge as an SVG path from one box's right side to the next's left."""
    boxes = picture.boxes
    edges = []
    for source, target, label in picture.edges:
        a, b = boxes[source], boxes[target]
        x1, y1 = a.x + NODE_WIDTH, a.y + NODE_HEIGHT / 2
        x2, y2 = b.x, b.y + NODE_HEIGHT / 2
        if x2 <= x1:  # a resource read to the left of its consumer: enter from the other side
            x1, x2 = a.x, b.x + NODE_WIDTH
        bend = max(abs(x2 - x1) / 2, 30)
        sign = 1 if x2 > x1 else -1
        path = f"M{x1:.0f},{y1:.0f} C{x1 + sign * bend:.0f},{y1:.0f} {x2 - sign * bend:.0f},{y2:.0f} {x2:.0f},{y2:.0f}"
        edges.append({"from": source, "to": target, "label": label, "path": path})
    width = max((b.x for b in boxes.values()), default=0) + NODE_WIDTH + MARGIN
    height = max((b.y for b in boxes.values()), default=0) + NODE_HEIGHT + MARGIN
    return {
        "width": width,
        "height": height,
        "node_width": NODE_WIDTH,
        "node_height": NODE_HEIGHT,
        "nodes": [dataclasses.asdict(b) for b in boxes.values()],
        "edges": edges,
    }
