"""Dispatcher results as handler parameters: built in the handler's per-request plan, served for real."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from bfctl.runtime.app import FlowApp
from bfctl.runtime.errors import StartupError
from bfctl.testing import TestClient
from buildflow import Flow
from buildflow.dependencies import Scope, dependency
from buildflow.exceptions import HTTPException
from buildflow.io.local import Pulse
from buildflow.pipedream import Dispatcher
from buildflow.requests import Request

#: Long enough never to be reached when the functions run together; reached (a 500) if they ran in turn.
MEETING_DEADLINE = 10.0


@dependency(Scope.PROCESS)
class Meeting:
    """Per request: two events, one per dispatcher function, set when it has started."""

    def __init__(self) -> None:
        self.started = {"left": asyncio.Event(), "right": asyncio.Event()}

    async def arrive(self, me: str, other: str) -> str:
        self.started[me].set()
        await asyncio.wait_for(self.started[other].wait(), MEETING_DEADLINE)
        return f"{me} met {other}"


def test_independent_dispatcher_functions_run_concurrently_within_a_request() -> None:
    dispatcher = Dispatcher()

    @dispatcher.add
    async def left(meeting: Meeting) -> str:
        return await meeting.arrive("left", "right")

    @dispatcher.add
    async def right(meeting: Meeting) -> str:
        return await meeting.arrive("right", "left")

    app = Flow()
    app.use_dispatcher(dispatcher)

    @app.service().endpoint("/meet")
    async def meet(left, right) -> list[str]:
        return [left, right]

    with TestClient(app) as client:
        for _ in range(3):  # a fresh meeting per request
            response = client.get("/meet")
            assert response.status_code == 200, response.text
            assert response.json() == ["left met right", "right met left"]


def test_path_and_query_values_are_call_time_arguments_and_replace_functions() -> None:
    ran: list[str] = []
    dispatcher = Dispatcher()

    @dispatcher.add
    def user_id() -> int:
        ran.append("user_id")
        return 0

    @dispatcher.add
    def salutation() -> str:
        ran.append("salutation")
        return "Hello"

    @dispatcher.add
    async def profile(user_id: int) -> dict[str, object]:
        ran.append("profile")
        return {"id": user_id, "name": f"user {user_id}"}

    @dispatcher.add
    def greeting(profile: dict[str, object], salutation: str) -> str:
        ran.append("greeting")
        return f"{salutation}, {profile['name']}!"

    app = Flow()
    service = app.service("/users")
    service.use_dispatcher(dispatcher)

    @service.endpoint("/{user_id}")
    def page(user_id: int, salutation: str, greeting, profile) -> dict[str, object]:
        return {"greeting": greeting, "profile": profile, "asked": [user_id, salutation]}

    with TestClient(app) as client:
        response = client.get("/users/7?salutation=Howdy")
        assert response.status_code == 200, response.text
        assert response.json() == {
            "greeting": "Howdy, user 7!",
            "profile": {"id": 7, "name": "user 7"},
            "asked": [7, "Howdy"],
        }
        assert sorted(ran) == ["greeting", "profile"]  # each once; the request gave user_id and salutation
        assert client.get("/users/7").status_code == 422  # salutation is the request's, and required
        assert client.get("/users/x?salutation=Hi").status_code == 422


@dependency(Scope.REPLICA)
class Directory:
    def __init__(self) -> None:
        self.names = {1: "ann", 2: "bob"}


@dependency(Scope.PROCESS)
class Caller:
    def __init__(self, request: Request) -> None:
        self.agent = request.headers.get("User-Agent", "")


def test_typed_dependencies_are_parameters_of_dispatcher_functions_by_annotation() -> None:
    dispatcher = Dispatcher()

    @dispatcher.add
    def name(directory: Directory, user: int) -> str:
        return directory.names[user]

    @dispatcher.add(requires=["name", "caller"])  # positional: annotations follow the order of `requires`
    def card(who: str, by: Caller) -> str:
        return f"{who} (asked by {by.agent})"

    app = Flow()
    app.use_dispatcher(dispatcher)

    @app.service().endpoint("/card")
    def show(user: int, card) -> str:
        return card

    with TestClient(app) as client:
        assert client.get("/card?user=2", headers={"User-Agent": "tests"}).json() == "bob (asked by tests)"


def test_a_name_nothing_provides_is_a_startup_error_naming_it() -> None:
    dispatcher = Dispatcher()

    @dispatcher.add
    def total(prices: list[int]) -> int:
        return sum(prices)

    app = Flow()
    app.use_dispatcher(dispatcher)

    @app.service().endpoint("/total")
    def show(total) -> int:
        return total

    with pytest.raises(StartupError, match=r"function `total` needs `prices`, which nothing provides.*it has `total`"):
        FlowApp(app)


def test_a_query_parameter_with_a_default_named_like_a_function_is_ambiguous() -> None:
    dispatcher = Dispatcher()
    dispatcher.add(lambda: 10, name="limit")

    @dispatcher.add
    def rows(limit: int) -> list[int]:
        return list(range(limit))

    app = Flow()
    app.use_dispatcher(dispatcher)

    @app.service().endpoint("/rows")
    def show(rows, limit: int = 5) -> list[int]:
        return rows

    with pytest.raises(StartupError, match=r"parameter `limit` is both a dispatcher result and a query parameter"):
        FlowApp(app)


def test_a_cycle_of_dispatcher_functions_is_a_startup_error() -> None:
    dispatcher = Dispatcher()

    @dispatcher.add
    def egg(chicken: str) -> str:
        return chicken

    @dispatcher.add
    def chicken(egg: str) -> str:
        return egg

    app = Flow()
    app.use_dispatcher(dispatcher)

    @app.service().endpoint("/first")
    def first(egg) -> str:
        return egg

    with pytest.raises(StartupError, match=r"cycle: egg -> chicken -> egg"):
        FlowApp(app)


def test_results_of_sub_dispatchers_and_a_cycle_of_dispatchers() -> None:
    main, parts, more = Dispatcher(), Dispatcher(), Dispatcher()
    main.add_sub_dispatcher(parts)
    parts.add_sub_dispatcher(more)
    more.add_sub_dispatcher(main)  # a cycle of dispatchers: looked through once

    @main.add
    def whole(part: str, extra: str) -> str:
        return f"{part}+{extra}"

    @parts.add
    async def part() -> str:
        return "part"

    @more.add
    def extra() -> str:
        return "extra"

    app = Flow()
    app.use_dispatcher(main)
    service = app.service()

    @service.endpoint("/whole")
    def show(whole) -> str:
        return whole

    @service.endpoint("/missing")
    def missing(whole, absent) -> str:
        return f"{whole} {absent}"

    with TestClient(app) as client:
        assert client.get("/whole").json() == "part+extra"
        assert client.get("/missing?absent=x").json() == "part+extra x"


def test_error_handlers_of_the_dispatcher_apply_and_failures_answer_like_dependencies() -> None:
    dispatcher = Dispatcher()
    seen: list[str] = []

    @dispatcher.error_handler
    def fallback(error: Exception) -> object:
        seen.append(type(error).__name__)
        return "fallback" if isinstance(error, LookupError) else error

    @dispatcher.add
    async def flaky(kind: str) -> str:
        if kind == "lookup":
            raise KeyError(kind)
        if kind == "missing":
            raise HTTPException(404, "no such thing")
        if kind == "broken":
            raise RuntimeError("broken")
        return "fine"

    @dispatcher.add
    def steady(kind: str) -> str:
        if kind == "lookup":
            raise IndexError(kind)
        return "steady"

    app = Flow()
    app.use_dispatcher(dispatcher)

    @app.service().endpoint("/thing")
    def thing(kind: str, flaky, steady) -> list[str]:
        return [flaky, steady]

    with TestClient(app) as client:
        assert client.get("/thing?kind=ok").json() == ["fine", "steady"]
        assert client.get("/thing?kind=lookup").json() == ["fallback", "fallback"]
        assert sorted(seen) == ["IndexError", "KeyError"]
        missing = client.get("/thing?kind=missing")
        assert (missing.status_code, missing.json()) == (404, {"detail": "no such thing"})
        broken = client.get("/thing?kind=broken")
        assert broken.status_code == 500 and broken.json()["detail"] == "Internal Server Error"


def test_a_service_dispatcher_wins_over_the_flows_and_collectors_use_the_flows() -> None:
    flow_wide, own = Dispatcher(), Dispatcher()
    flow_wide.add(lambda: "flow", name="origin")
    own.add(lambda: "service", name="origin")
    app = Flow()
    app.use_dispatcher(flow_wide)
    plain, special = app.service("/plain"), app.service("/special")
    special.use_dispatcher(own)
    rows: list[str] = []

    @plain.endpoint("/origin")
    def from_plain(origin) -> str:
        return origin

    @special.endpoint("/origin")
    def from_special(origin) -> str:
        return origin

    @app.collector("/collect")
    def collect(origin) -> None:
        rows.append(origin)

    with TestClient(app) as client:
        assert client.get("/plain/origin").json() == "flow"
        assert client.get("/special/origin").json() == "service"
        assert client.post("/collect").status_code == 200
        assert rows == ["flow"]  # the collector's handler ran before the answer


def test_a_consumer_takes_dispatcher_results_beside_its_message() -> None:
    dispatcher = Dispatcher()
    seen: list[str] = []
    done = threading.Event()

    @dispatcher.add
    async def prefix(directory: Directory) -> str:
        return f"{len(directory.names)} users:"

    @dispatcher.add
    def label(prefix: str) -> str:
        return prefix.upper()

    app = Flow()
    app.use_dispatcher(dispatcher)

    @app.consumer(Pulse([b"hello"], 0))
    def handle(message: bytes, label) -> None:
        seen.append(f"{label} {message.decode()}")
        done.set()

    with TestClient(app):
        assert done.wait(30), "the consumer got no message within 30 s"
    assert seen[0] == "2 USERS: hello"


def test_a_dispatcher_function_starts_once_its_own_inputs_are_ready() -> None:
    """``b`` waits for ``c`` (which needs ``a``) to have started: run stage by stage (``a`` and ``b``,
    then ``c``), ``c`` would start only once ``b`` gave up (a 500)."""
    dispatcher = Dispatcher()
    c_started = asyncio.Event()

    @dispatcher.add
    async def a() -> str:
        return "a"

    @dispatcher.add
    async def b() -> str:
        await asyncio.wait_for(c_started.wait(), MEETING_DEADLINE)
        return "b"

    @dispatcher.add
    async def c(a: str) -> str:
        c_started.set()
        return "c" + a

    app = Flow()
    app.use_dispatcher(dispatcher)

    @app.service().endpoint("/diamond")
    async def diamond(c, b) -> str:
        c_started.clear()  # for the next request
        return c + b

    with TestClient(app) as client:
        for _ in range(2):
            response = client.get("/diamond")
            assert response.status_code == 200, response.text
            assert response.json() == "cab"


def test_a_dispatcher_with_a_pool_runs_its_independent_sync_functions_at_once() -> None:
    """Each waits in its thread for the other to have started (in one trip, they never would), in
    the dispatcher's pool."""
    meet = threading.Barrier(2, timeout=MEETING_DEADLINE)
    with ThreadPoolExecutor(2, thread_name_prefix="dispatcher-pool") as pool:
        dispatcher = Dispatcher(async_pool=pool)

        @dispatcher.add
        def left() -> str:
            meet.wait()
            return threading.current_thread().name.split("_")[0]

        @dispatcher.add
        def right() -> str:
            meet.wait()
            return threading.current_thread().name.split("_")[0]

        app = Flow()
        app.use_dispatcher(dispatcher)

        @app.service().endpoint("/meet")
        async def both(left, right) -> list[str]:
            return [left, right]

        with TestClient(app) as client:
            response = client.get("/meet")
            assert response.status_code == 200, response.text
            assert response.json() == ["dispatcher-pool", "dispatcher-pool"]
