"""Every kind of processor gets every argument it declares: endpoints, collectors and consumers,
sync and async, functions and classes, with no dependency, REPLICA only, GLOBAL only, PROCESS,
or all of them. All three kinds build their arguments through one plan (``RequestPlan.invoker``);
a consumer whose dependencies were all REPLICA or GLOBAL was once called with its message alone.

The handlers are written out from a template, as a user would write each of them."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any

import pytest

from bfctl.providers.local import LocalProvider
from bfctl.testing import TestClient
from buildflow import Flow
from buildflow.dependencies import Scope, dependency
from buildflow.dependencies.flow_dependencies import ResourceOutputs
from buildflow.io.local import LocalFileChangeStream, Pulse
from buildflow.types.local import FileChangeStreamEventType, LocalFileChangeEvent

WAIT = 30.0


@dependency(scope=Scope.REPLICA)
class ModelDep:
    def __init__(self) -> None:
        self.labels = ["cat", "dog"]


@dependency(scope=Scope.GLOBAL)
class SettingsDep:
    def __init__(self) -> None:
        self.threshold = 0.5


@dependency(scope=Scope.PROCESS)
class CallDep:
    def __init__(self, model: ModelDep) -> None:
        self.model = model


@dataclasses.dataclass
class Event:
    name: str


class Calls:
    """What each call was given, from the worker's threads; ``wait`` for enough calls."""

    def __init__(self, enough: int) -> None:
        self.given: list[dict[str, Any]] = []
        self._enough = enough
        self._lock = threading.Lock()
        self._done = threading.Event()

    def __call__(self, **given: Any) -> None:
        with self._lock:
            self.given.append(given)
            if len(self.given) >= self._enough:
                self._done.set()

    def wait(self) -> list[dict[str, Any]]:
        assert self._done.wait(WAIT), f"only {len(self.given)} of {self._enough} calls within {WAIT}s"
        with self._lock:
            return list(self.given)


#: The dependencies each case declares, by parameter name.
DEPENDENCIES: dict[str, dict[str, type]] = {
    "none": {},
    "replica": {"model": ModelDep},
    "global": {"settings": SettingsDep},
    "process": {"call": CallDep},
    "mixed": {"model": ModelDep, "settings": SettingsDep, "call": CallDep},
}
#: The input each kind of processor takes besides its dependencies.
INPUTS = {"endpoint": ("q", "str"), "collector": ("event", "Event"), "consumer": ("m", "bytes")}


def _handler(kind: str, deps: str, is_async: bool, is_class: bool, calls: Calls) -> Any:
    """The handler a user would write for this case."""
    message, annotation = INPUTS[kind]
    params = [f"{message}: {annotation}", *(f"{name}: {cls.__name__}" for name, cls in DEPENDENCIES[deps].items())]
    record = ", ".join(f"{name}={name}" for name in [message, *DEPENDENCIES[deps]])
    prefix = "async " if is_async else ""
    if is_class:
        source = (
            "class Handler:\n"
            "    def setup(self):\n"
            "        self.ready = True\n"
            f"    {prefix}def process(self, {', '.join(params)}):\n"
            "        assert self.ready\n"
            f"        record({record})\n"
            "        return {'ok': True}\n"
        )
    else:
        source = f"{prefix}def handler({', '.join(params)}):\n    record({record})\n    return {{'ok': True}}\n"
    namespace: dict[str, Any] = {"record": calls, "Event": Event}
    namespace.update((cls.__name__, cls) for cls in DEPENDENCIES["mixed"].values())
    exec(source, namespace)  # noqa: S102  # the user's module: its annotations resolve in these globals
    return namespace["Handler" if is_class else "handler"]


def _run(kind: str, handler: Any, calls: Calls) -> list[dict[str, Any]]:
    app = Flow()
    if kind == "consumer":
        app.consumer(source=Pulse([b"x"], 0))(handler)
        with TestClient(app):
            return calls.wait()
    if kind == "collector":
        app.collector("/events", method="POST")(handler)
    else:
        app.service().endpoint("/hello", method="GET")(handler)
    with TestClient(app) as client:
        for _ in range(2):
            response = client.post("/events", json={"name": "a"}) if kind == "collector" else client.get("/hello?q=a")
            assert response.status_code == 200, response.text
            if kind == "endpoint":
                assert response.json() == {"ok": True}
    return calls.wait()


@pytest.mark.parametrize("is_class", [False, True], ids=["function", "class"])
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("deps", list(DEPENDENCIES))
@pytest.mark.parametrize("kind", list(INPUTS))
def test_every_processor_gets_every_argument(kind: str, deps: str, is_async: bool, is_class: bool) -> None:
    calls = Calls(2)
    first, second = _run(kind, _handler(kind, deps, is_async, is_class, calls), calls)[:2]

    message = INPUTS[kind][0]
    expected = {"endpoint": "a", "collector": Event("a"), "consumer": b"x"}[kind]
    for given in (first, second):
        assert set(given) == {message, *DEPENDENCIES[deps]}
        assert given[message] == expected
        for name, cls in DEPENDENCIES[deps].items():
            assert isinstance(given[name], cls), (name, given[name])
    for name, cls in DEPENDENCIES[deps].items():
        same = first[name] is second[name]
        assert same if cls in (ModelDep, SettingsDep) else not same, f"{name}: one per call only for PROCESS"
    if deps == "mixed":
        assert first["call"].model is first["model"]  # the PROCESS dependency got the worker's REPLICA one


def test_a_file_change_consumer_gets_its_replica_model(tmp_path: Path) -> None:
    """The model-per-replica pattern of BuildFlow's walkthroughs, on a real watched folder."""
    calls = Calls(1)
    stream = LocalFileChangeStream(file_path=str(tmp_path / "images"), event_types=[FileChangeStreamEventType.CREATED])
    app = Flow()

    @app.consumer(source=stream)
    def classify(file_event: LocalFileChangeEvent, model: ModelDep) -> None:
        calls(name=Path(file_event.file_path).name, label=model.labels[len(file_event.blob) % 2])

    provider = LocalProvider(tmp_path, "dev")
    outputs = ResourceOutputs(provider.apply(provider.plan([stream])), "local")
    with TestClient(app, outputs=outputs):
        (tmp_path / "images" / "cat.jpg").write_bytes(b"jpeg")
        [given] = calls.wait()

    assert given == {"name": "cat.jpg", "label": "cat"}
