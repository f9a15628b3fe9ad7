"""Dependency injection: scopes, the graph's start-up checks, concurrency, teardown, overrides."""

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest
from scoped import GlobalDep, NoScopeDep, ProcessDep, ReplicaDep, identities

from bfctl.runtime.app import FlowApp
from bfctl.runtime.errors import StartupError
from bfctl.testing import TestClient
from buildflow import Flow
from buildflow.dependencies import Scope, dependency
from buildflow.requests import Request

events: list[str] = []


def identity_app() -> Flow:
    app = Flow()
    svc = app.service()

    @svc.endpoint("/ids")
    def ids(process: ProcessDep, process2: ProcessDep, replica: ReplicaDep, global_: GlobalDep, no: NoScopeDep):
        return identities(process, process2, replica, global_, no)

    return app


def test_scope_identities_follow_buildflow():
    ReplicaDep.built = 0
    with TestClient(identity_app()) as client:
        first, second = client.get("/ids").json(), client.get("/ids").json()
    for body in (first, second):
        assert body["process_shared"] and body["replica_shared"] and body["global_shared"] and body["no_scope_fresh"]
    assert first["replica"] == second["replica"]
    assert ReplicaDep.built == 1


def test_plain_class_is_a_per_request_dependency():
    class Counter:
        made = 0

        def __init__(self) -> None:
            Counter.made += 1

    class Uses:
        def __init__(self, counter: Counter) -> None:
            self.counter = counter

    app = Flow()

    @app.service().endpoint("/c")
    def c(a: Counter, u: Uses):
        return a is u.counter

    with TestClient(app) as client:
        assert client.get("/c").json() is True
        assert client.get("/c").json() is True
    assert Counter.made == 2  # one per request (default scope PROCESS)


def test_function_dependencies_with_generator_teardown_in_reverse_order():
    log: list[str] = []

    @dependency(Scope.PROCESS)
    def outer():
        log.append("outer up")
        yield "o"
        log.append("outer down")

    @dependency(Scope.PROCESS)
    async def inner(o: outer):
        log.append("inner up")
        yield o + "i"
        log.append("inner down")

    @dependency(Scope.PROCESS)
    async def plain_async(i: inner) -> str:
        return i + "a"

    app = Flow()

    @app.service().endpoint("/f")
    def f(value: plain_async):
        log.append("handler")
        return value

    with TestClient(app) as client:
        assert client.get("/f").json() == "oia"
    assert log == ["outer up", "inner up", "handler", "inner down", "outer down"]


def test_teardown_error_is_logged_and_does_not_hide_the_response(caplog):
    log: list[str] = []

    @dependency(Scope.PROCESS)
    def broken():
        yield 1
        raise RuntimeError("teardown failed")

    @dependency(Scope.PROCESS)
    def fine():
        yield 2
        log.append("fine down")

    app = Flow()

    @app.service().endpoint("/t")
    def t(a: fine, b: broken):
        return a + b

    with caplog.at_level(logging.ERROR, logger="buildflow.runtime"), TestClient(app) as client:
        r = client.get("/t")
    assert r.status_code == 200 and r.json() == 3
    assert log == ["fine down"]
    assert any("teardown" in rec.getMessage() for rec in caplog.records)


def test_teardown_runs_when_the_handler_fails():
    log: list[str] = []

    @dependency(Scope.PROCESS)
    def res():
        yield 1
        log.append("closed")

    app = Flow()

    @app.service().endpoint("/x")
    def x(r: res):
        raise ValueError("nope")

    with TestClient(app) as client:
        assert client.get("/x").status_code == 500
    assert log == ["closed"]


def test_replica_teardown_runs_at_shutdown():
    log: list[str] = []

    @dependency(Scope.REPLICA)
    async def pool():
        log.append("open")
        yield "pool"
        log.append("close")

    @dependency(Scope.REPLICA)
    class WithTeardown:
        def teardown(self) -> None:
            log.append("class teardown")

    app = Flow()

    @app.service().endpoint("/p")
    async def p(x: pool, w: WithTeardown):
        return x

    with TestClient(app) as client:
        assert client.get("/p").json() == "pool"
        assert client.get("/p").json() == "pool"
        assert log == ["open"]
    assert sorted(log) == ["class teardown", "close", "open"]


def test_independent_async_dependencies_are_built_concurrently():
    """Each waits for the other's signal: run one after the other, they would deadlock."""
    state: dict[str, asyncio.Event] = {}

    def event(name: str) -> asyncio.Event:
        return state.setdefault(name, asyncio.Event())

    @dependency(Scope.PROCESS)
    async def left() -> str:
        event("left").set()
        await asyncio.wait_for(event("right").wait(), 10)
        return "L"

    @dependency(Scope.PROCESS)
    async def right() -> str:
        event("right").set()
        await asyncio.wait_for(event("left").wait(), 10)
        return "R"

    app = Flow()

    @app.service().endpoint("/both")
    async def both(a: left, b: right):
        return a + b

    with TestClient(app) as client:
        r = client.get("/both")
    assert r.status_code == 200 and r.json() == "LR"


def test_sync_dependencies_and_handler_share_one_thread_off_the_loop():
    seen: dict[str, int] = {}

    @dependency(Scope.PROCESS)
    def first() -> int:
        seen["first"] = threading.get_ident()
        return 1

    @dependency(Scope.PROCESS)
    class Second:
        def __init__(self, f: first) -> None:
            seen["second"] = threading.get_ident()

    @dependency(Scope.PROCESS)
    async def on_loop() -> int:
        seen["loop"] = threading.get_ident()
        return 2

    app = Flow()

    @app.service().endpoint("/threads")
    def threads(s: Second, a: on_loop):
        seen["handler"] = threading.get_ident()
        return "ok"

    submitted: list[object] = []

    class CountingPool(ThreadPoolExecutor):
        def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
            submitted.append(fn)
            return super().submit(fn, *args, **kwargs)

    client = TestClient(app)
    client.flow_app.pool_class = CountingPool
    with client:
        before = len(submitted)
        assert client.get("/threads").json() == "ok"
        assert len(submitted) - before == 1  # one trip to the pool (an idle thread reused passes ids)
    assert seen["first"] == seen["second"] == seen["handler"]
    assert seen["handler"] != seen["loop"]


def test_async_init_dependency():
    @dependency(Scope.REPLICA)
    class AsyncInit:
        async def __init__(self) -> None:
            await asyncio.sleep(0)
            self.ready = True

    app = Flow()

    @app.service().endpoint("/a")
    async def a(dep: AsyncInit):
        return dep.ready

    with TestClient(app) as client:
        assert client.get("/a").json() is True


def test_dependency_can_inject_the_request():
    @dependency(Scope.PROCESS)
    class Tenant:
        def __init__(self, request: Request) -> None:
            self.name = request.headers.get("X-Tenant", "none")

    app = Flow()

    @app.service().endpoint("/tenant")
    def tenant(t: Tenant):
        return t.name

    with TestClient(app) as client:
        assert client.get("/tenant", headers={"X-Tenant": "acme"}).json() == "acme"


# -- start-up checks --------------------------------------------------------------------------


def _flow_with(handler) -> Flow:
    app = Flow()
    app.service().endpoint("/x")(handler)
    return app


def test_wider_scope_needing_narrower_is_rejected_naming_both():
    @dependency(Scope.PROCESS)
    class PerRequest:
        pass

    @dependency(Scope.REPLICA)
    class PerWorker:
        def __init__(self, p: PerRequest) -> None:
            pass

    def handler(w: PerWorker):
        return 1

    with pytest.raises(StartupError) as info:
        FlowApp(_flow_with(handler))
    message = str(info.value)
    assert "PerRequest" in message and "PROCESS" in message and "PerWorker" in message and "REPLICA" in message


def test_no_scope_takes_the_scope_of_its_user():
    @dependency(Scope.PROCESS)
    class PerRequest:
        pass

    @dependency(Scope.NO_SCOPE)
    class Loose:
        def __init__(self, p: PerRequest) -> None:
            pass

    @dependency(Scope.GLOBAL)
    class Shared:
        def __init__(self, loose: Loose) -> None:
            pass

    def fine(loose: Loose):
        return 1

    FlowApp(_flow_with(fine))  # NO_SCOPE under a request may use PROCESS

    def bad(s: Shared):
        return 1

    with pytest.raises(StartupError, match=r"PerRequest.*PROCESS.*Loose.*GLOBAL"):
        FlowApp(_flow_with(bad))


def test_replica_dependency_cannot_ask_for_the_request():
    @dependency(Scope.REPLICA)
    class NeedsRequest:
        def __init__(self, request: Request) -> None:
            pass

    def handler(n: NeedsRequest):
        return 1

    with pytest.raises(StartupError, match="NeedsRequest"):
        FlowApp(_flow_with(handler))


def test_cycle_is_rejected_with_the_cycle_spelled_out():
    class A:
        def __init__(self, b: "B") -> None:
            pass

    class B:
        def __init__(self, a: A) -> None:
            pass

    globals()["B"] = B  # the forward reference resolves through module globals
    try:

        def handler(a: A):
            return 1

        with pytest.raises(StartupError, match=r"cycle: .*A -> .*B -> .*A"):
            FlowApp(_flow_with(handler))
    finally:
        del globals()["B"]


def test_uninjectable_parameter_names_the_dependency_and_parameter():
    class NeedsConfig:
        def __init__(self, config) -> None:
            pass

    def handler(n: NeedsConfig):
        return 1

    with pytest.raises(StartupError, match=r"NeedsConfig: parameter `config` \(no annotation\)"):
        FlowApp(_flow_with(handler))


def test_unresolvable_annotation_is_a_startup_error():
    def handler(x: "DoesNotExist"):  # noqa: F821
        return 1

    with pytest.raises(StartupError, match=r"endpoint `.*handler`.*DoesNotExist"):
        FlowApp(_flow_with(handler))


def test_duplicate_route_is_rejected():
    app = Flow()
    svc = app.service()
    svc.endpoint("/same")(lambda: 1)
    svc.endpoint("/same")(lambda: 2)
    with pytest.raises(StartupError, match="GET /same is declared twice"):
        FlowApp(app)


def test_invalid_scope_name():
    with pytest.raises(ValueError, match="Invalid scope `forever`"):
        dependency("forever")


# -- overrides --------------------------------------------------------------------------------


@dependency(Scope.REPLICA)
class RealDb:
    def __init__(self) -> None:
        self.name = "real"


def db_app() -> Flow:
    app = Flow()

    @app.service().endpoint("/db")
    def db(d: RealDb):
        return d.name

    return app


def test_override_by_type_with_a_class():
    class FakeDb:
        name = "fake"

    with TestClient(db_app(), overrides={RealDb: FakeDb}) as client:
        assert client.get("/db").json() == "fake"


def test_override_by_name_with_a_value():
    class Value:
        name = "value"

    with TestClient(db_app(), overrides={"RealDb": Value()}) as client:
        assert client.get("/db").json() == "value"


def test_override_with_the_flow_context_manager():
    app = db_app()

    def fake():
        class F:
            name = "from function"

        return F()

    with app.overrides({RealDb: fake}), TestClient(app) as client:
        assert client.get("/db").json() == "from function"
    with TestClient(app) as client:
        assert client.get("/db").json() == "real"


def test_independent_sync_and_async_dependencies_overlap():
    """The sync one runs in the pool while the async one waits for it: no overlap, no signal."""
    started = threading.Event()

    @dependency(Scope.PROCESS)
    def sync_side() -> str:
        started.set()
        return "S"

    @dependency(Scope.PROCESS)
    async def async_side() -> bool:
        return await asyncio.to_thread(started.wait, 10)

    app = Flow()

    @app.service().endpoint("/overlap")
    async def overlap(a: async_side, s: sync_side):
        return [a, s]

    with TestClient(app) as client:
        assert client.get("/overlap").json() == [True, "S"]


def test_an_async_dependency_starts_once_its_own_inputs_are_ready():
    """``waiting`` waits for ``second`` (which needs ``first``) to have started. Stage by stage
    (``first`` and ``waiting``, then ``second``) ``second`` would start only after ``waiting`` gave up."""
    second_started = asyncio.Event()

    @dependency(Scope.PROCESS)
    async def first() -> str:
        return "first"

    @dependency(Scope.PROCESS)
    async def second(f: first) -> str:
        second_started.set()
        return f + ">second"

    @dependency(Scope.PROCESS)
    async def waiting() -> bool:
        await asyncio.wait_for(second_started.wait(), 10)
        return True

    app = Flow()

    @app.service().endpoint("/diamond")
    async def diamond(s: second, w: waiting):
        second_started.clear()
        return [s, w]

    with TestClient(app) as client:
        for _ in range(2):
            response = client.get("/diamond")
            assert response.status_code == 200, response.text
            assert response.json() == ["first>second", True]


def test_blocking_sync_dependencies_run_at_once_and_plain_ones_share_one_trip():
    """The two blocking ones wait in their threads for each other: in one trip they never would.
    The plain ones and the sync handler run in a single thread, in one trip."""
    meet = threading.Barrier(2, timeout=10)

    @dependency(Scope.PROCESS, blocking=True)
    def left() -> int:
        meet.wait()
        return threading.get_ident()

    @dependency(scope="process", blocking=True)
    def right() -> int:
        meet.wait()
        return threading.get_ident()

    @dependency(Scope.PROCESS)
    def plain_one() -> int:
        return threading.get_ident()

    @dependency(Scope.PROCESS)
    def plain_two(one: plain_one) -> int:
        return threading.get_ident()

    app = Flow()

    @app.service().endpoint("/blocking")
    async def blocking(a: left, b: right) -> bool:
        return a != b

    @app.service().endpoint("/plain")
    def plain(one: plain_one, two: plain_two) -> bool:
        return one == two == threading.get_ident()

    with TestClient(app) as client:
        assert client.get("/blocking").json() is True
        assert client.get("/plain").json() is True
