"""buildflow.pipedream: Pipedream's documented behaviour (its README and its own test suite's cases,
rewritten), and ``acall``/``plan``, the asyncio side Pipedream did with gevent.

Pipedream ran its suite with no pool and with each of its pools; the ``dispatcher`` fixture does
the same with no pool and a ``ThreadPoolExecutor``, what ``async_pool`` takes here.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from buildflow.pipedream import (
    CircularDependency,
    CircularDispatcherDependency,
    Dispatcher,
    DuplicateFunction,
    IncompleteCall,
    PipedreamException,
    ResourceError,
    UnresolvableDependency,
)

DEADLINE = 10.0  # seconds: only ever reached when something deadlocks


@pytest.fixture(params=["no pool", "thread pool"])
def dispatcher(request: pytest.FixtureRequest) -> Iterator[Dispatcher]:
    if request.param == "no pool":
        yield Dispatcher()
        return
    with ThreadPoolExecutor(4) as pool:
        yield Dispatcher(async_pool=pool)


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, DEADLINE))


def add_many(dispatcher: Dispatcher, graph: dict[str, list[str]]) -> None:
    """One function per name, requiring the listed names, returning its name and what it got."""
    for name, requires in graph.items():

        def func(*args: Any, _name: str = name) -> str:
            return f"{_name}{list(args)}"

        dispatcher.add(func, name=name, requires=requires)


def names(graph: OrderedDict[str, Any]) -> list[str]:
    return list(graph)


class CountingPool(ThreadPoolExecutor):
    """A real thread pool that counts its trips (``run_in_executor`` submits each one)."""

    def __init__(self) -> None:
        super().__init__(2)
        self.trips = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.trips += 1
        return super().submit(fn, *args, **kwargs)


# -- the README ---------------------------------------------------------------------------------


def test_readme_quickstart_and_advanced_decorating() -> None:
    dispatcher = Dispatcher()

    @dispatcher.add
    def who() -> str:
        return "World"

    @dispatcher.add
    def greet(who: str) -> str:
        return f"Hello {who}!"

    assert dispatcher.call("greet") == "Hello World!"
    assert dispatcher.call("greet", who="Everyone") == "Hello Everyone!"

    @dispatcher.add("foo")
    def bar() -> str:
        return "A Bar named Foo."

    assert dispatcher.call("foo") == "A Bar named Foo."

    @dispatcher.add(requires=["a_really_long_name"])
    def medium(long: str) -> str:
        return f"{long} is really big!"

    assert dispatcher.call("medium", a_really_long_name="Jupiter") == "Jupiter is really big!"


# -- adding functions -----------------------------------------------------------------------------


def test_every_decorator_form_adds_the_function_and_returns_it(dispatcher: Dispatcher) -> None:
    def plain() -> int:
        return 1

    def with_parens() -> int:
        return 2

    def positional_name() -> int:
        return 3

    def keyword_name() -> int:
        return 4

    def name_and_requires(x: int) -> int:
        return x + 1

    assert dispatcher.add(plain) is plain
    assert dispatcher.add()(with_parens) is with_parens
    assert dispatcher.add("three")(positional_name) is positional_name
    assert dispatcher.add(name="four")(keyword_name) is keyword_name
    assert dispatcher.add(name="five", requires=["four"])(name_and_requires) is name_and_requires
    assert [dispatcher.call(n) for n in ("plain", "with_parens", "three", "four", "five")] == [1, 2, 3, 4, 5]
    assert dispatcher.add_resource(lambda: 6, name="six") == "six"
    assert dispatcher.add_resource(plain, name="plain_again") == "plain_again"


def test_add_resource_returns_the_function_name_by_default(dispatcher: Dispatcher) -> None:
    def seven() -> int:
        return 7

    assert dispatcher.add_resource(seven) == "seven"
    assert dispatcher.find_resource("seven").function is seven


def test_requirements_default_to_positional_parameter_names_as_a_tuple(dispatcher: Dispatcher) -> None:
    @dispatcher.add
    def a() -> None:
        pass

    @dispatcher.add
    def b(c: int, d: int = 0, *rest: int, e: int = 0, **more: int) -> None:
        pass

    assert dispatcher.find_resource("a")
    assert dispatcher.find_resource("a").requirements == ()
    assert dispatcher.find_resource("b").requirements == ("c", "d")


def test_explicit_requires_are_passed_in_their_order(dispatcher: Dispatcher) -> None:
    @dispatcher.add(requires=["b", "c"])
    def a(c: str, b: str) -> str:
        return c + b

    assert list(dispatcher.find_resource("a").requirements) == ["b", "c"]
    assert dispatcher.call("a", b="b", c="c") == "bc"


def test_a_functions_requires_attribute(dispatcher: Dispatcher) -> None:
    def a(*values: str) -> str:
        return "".join(values)

    a.requires = ["b"]  # type: ignore[attr-defined]  # Pipedream's way of attaching requirements
    dispatcher.add(a)
    assert list(dispatcher.find_resource("a").requirements) == ["b"]
    assert dispatcher.call("a", b="x") == "x"

    def overridden(value: str) -> str:
        return value

    overridden.requires = ["b"]  # type: ignore[attr-defined]  # the requires argument wins over it
    dispatcher.add(overridden, requires=["c"])
    assert dispatcher.call("overridden", b="b", c="c") == "c"


def test_empty_requires_falls_back_like_pipedream(dispatcher: Dispatcher) -> None:
    @dispatcher.add(requires=[])
    def a(b: str) -> str:
        return b

    assert dispatcher.find_resource("a").requirements == ("b",)
    # ... unless the parameters cannot be read: a builtin function
    dispatcher.add(threading.get_ident, name="thread", requires=[])
    assert dispatcher.find_resource("thread").requirements == []
    with pytest.raises(TypeError, match=r"requires=\[\.\.\.\]"):
        dispatcher.add(threading.get_ident)


def test_requires_must_be_a_list_or_tuple_of_names(dispatcher: Dispatcher) -> None:
    with pytest.raises(TypeError, match="list or tuple"):
        dispatcher.add(lambda x: x, name="a", requires="x")


def test_custom_names_replace_the_function_name(dispatcher: Dispatcher) -> None:
    @dispatcher.add("foo")
    def bar() -> None:
        pass

    @dispatcher.add(name="fro")
    def frum() -> None:
        pass

    assert dispatcher.find_resource("foo").function is bar
    assert dispatcher.find_resource("fro").function is frum
    for absent in ("bar", "frum"):
        with pytest.raises(UnresolvableDependency):
            dispatcher.find_resource(absent)


def test_a_name_added_twice_is_a_duplicate(dispatcher: Dispatcher) -> None:
    @dispatcher.add
    def a() -> int:
        return 1

    with pytest.raises(DuplicateFunction, match="'a'") as caught:

        @dispatcher.add
        def a() -> int:
            return 2

    assert isinstance(caught.value, PipedreamException)
    assert dispatcher.call("a") == 1


def test_a_sub_dispatchers_name_is_not_a_duplicate_and_the_own_function_wins() -> None:
    outer, inner = Dispatcher(), Dispatcher()
    outer.add_sub_dispatcher(inner)
    inner.add_resource(lambda: "inner", name="a")
    assert outer.call("a") == "inner"
    outer.add_resource(lambda: "outer", name="a")
    assert outer.call("a") == "outer"


# -- wrap -------------------------------------------------------------------------------------------


def test_wrap_resolves_missing_arguments(dispatcher: Dispatcher) -> None:
    @dispatcher.wrap
    def a(b: str) -> str:
        return f"(a={b})"

    @dispatcher.add
    def b() -> str:
        return "b"

    assert a() == "(a=b)"
    assert a.__name__ == "a"
    assert dispatcher.call("a") == "(a=b)"


def test_wrap_with_the_argument_given_does_not_run_its_function(dispatcher: Dispatcher) -> None:
    @dispatcher.wrap
    def a(b: str) -> str:
        return f"(a={b})"

    @dispatcher.add
    def b() -> str:
        raise AssertionError("b must not run: it was given")

    assert a(b="b!") == "(a=b!)"


def test_wrap_with_nothing_available(dispatcher: Dispatcher) -> None:
    @dispatcher.wrap
    def a(b: str) -> str:
        return f"(a={b})"

    with pytest.raises(UnresolvableDependency):
        a()
    assert a(b="b!") == "(a=b!)"


def test_wrap_takes_adds_arguments(dispatcher: Dispatcher) -> None:
    @dispatcher.wrap("named", requires=["long_name"])
    def short(value: int) -> int:
        return value * 2

    assert short(long_name=4) == 8
    assert dispatcher.call("named", long_name=5) == 10


def test_wrapping_an_async_function_gives_an_async_function() -> None:
    dispatcher = Dispatcher()

    @dispatcher.add
    async def b() -> str:
        return "b"

    @dispatcher.wrap
    async def a(b: str) -> str:
        return f"(a={b})"

    assert run(a()) == "(a=b)"
    assert run(a(b="given")) == "(a=given)"


# -- call -------------------------------------------------------------------------------------------


def test_calling_resolves_what_a_name_needs(dispatcher: Dispatcher) -> None:
    @dispatcher.add
    def a(b: str) -> str:
        return f"(a={b})"

    @dispatcher.add
    def b() -> str:
        return "b"

    assert dispatcher.call("a") == "(a=b)"
    assert dispatcher.call("b") == "b"
    assert dispatcher.call("a", b="b!") == "(a=b!)"


def test_call_time_arguments_replace_functions_which_then_do_not_run(dispatcher: Dispatcher) -> None:
    ran: list[str] = []

    @dispatcher.add
    def base() -> int:
        ran.append("base")
        return 1

    @dispatcher.add
    def middle(base: int) -> int:
        ran.append("middle")
        return base + 10

    @dispatcher.add
    def top(middle: int, base: int) -> int:
        ran.append("top")
        return middle + base

    assert dispatcher.call("top") == 12
    assert ran == ["base", "middle", "top"]
    ran.clear()
    assert dispatcher.call("top", middle=100) == 101
    assert ran == ["base", "top"]
    ran.clear()
    assert dispatcher.call("top", top="given") == "given"
    assert ran == []


def test_each_function_runs_once_per_call(dispatcher: Dispatcher) -> None:
    counts = {"shared": 0}

    @dispatcher.add
    def shared() -> int:
        counts["shared"] += 1
        return 1

    add_many(dispatcher, {"left": ["shared"], "right": ["shared"], "top": ["left", "right"]})
    assert dispatcher.call("top") == "top['left[1]', 'right[1]']"
    assert counts["shared"] == 1


def test_call_refuses_async_functions_and_names_acall(dispatcher: Dispatcher) -> None:
    @dispatcher.add
    async def fetched() -> int:
        return 1

    @dispatcher.add
    def page(fetched: int) -> int:
        return fetched

    with pytest.raises(ResourceError, match=r"'fetched' is an async def function.*acall\('page'"):
        dispatcher.call("page")
    assert dispatcher.call("page", fetched=5) == 5


def test_a_deep_chain_needs_no_recursion(dispatcher: Dispatcher) -> None:
    depth = sys.getrecursionlimit() + 100
    dispatcher.add_resource(lambda: 0, name="n0")
    for i in range(1, depth):
        dispatcher.add_resource(lambda x: x + 1, name=f"n{i}", requires=[f"n{i - 1}"])
    assert dispatcher.call(f"n{depth - 1}") == depth - 1
    assert run(dispatcher.acall(f"n{depth - 1}")) == depth - 1


# -- resolve_dependency_graph -----------------------------------------------------------------------


def test_resolving_simple(dispatcher: Dispatcher) -> None:
    add_many(dispatcher, {"a": ["b"], "b": []})
    assert names(dispatcher.resolve_dependency_graph("a")) == ["b", "a"]
    assert names(dispatcher.resolve_dependency_graph("b")) == ["b"]
    assert dispatcher.resolve_dependency_graph("a")["b"] == dispatcher.find_resource("b")


def test_resolving_puts_dependencies_before_dependents_depth_first(dispatcher: Dispatcher) -> None:
    add_many(dispatcher, {"a": ["b", "c"], "b": ["c", "d"], "c": ["d"], "d": []})
    assert names(dispatcher.resolve_dependency_graph("a")) == ["d", "c", "b", "a"]
    assert names(dispatcher.resolve_dependency_graph("b")) == ["d", "c", "b"]
    assert names(dispatcher.resolve_dependency_graph("c")) == ["d", "c"]
    assert names(dispatcher.resolve_dependency_graph("d")) == ["d"]


def test_resolving_with_names_already_resolved(dispatcher: Dispatcher) -> None:
    add_many(dispatcher, {"a": ["b", "d"], "b": ["c", "e"], "c": ["d", "e"], "d": [], "e": []})
    resolve = dispatcher.resolve_dependency_graph
    assert names(resolve("a", resolved={"b": "b"})) == ["b", "d", "a"]
    assert names(resolve("a", resolved={"c": "c"})) == ["c", "e", "b", "d", "a"]
    assert names(resolve("a", resolved=OrderedDict([("b", "b"), ("d", "d")]))) == ["b", "d", "a"]
    assert names(resolve("a", resolved=OrderedDict([("d", "d"), ("b", "b")]))) == ["d", "b", "a"]
    assert names(resolve("b", resolved={"b": "b"})) == ["b"]
    assert names(resolve("b", resolved={"c": "c"})) == ["c", "e", "b"]
    assert resolve("b", resolved={"c": "the value"})["c"] == "the value"


def test_resolving_fills_a_given_ordered_dict_in_place(dispatcher: Dispatcher) -> None:
    add_many(dispatcher, {"a": ["b"], "b": []})
    resolved: OrderedDict[str, Any] = OrderedDict(x=1)
    assert dispatcher.resolve_dependency_graph("a", resolved=resolved) is resolved
    assert names(resolved) == ["x", "b", "a"]
    plain = {"x": 1}
    assert names(dispatcher.resolve_dependency_graph("a", resolved=plain)) == ["x", "b", "a"]
    assert plain == {"x": 1}


@pytest.mark.parametrize(
    ("graph", "cycle"),
    [
        ({"a": ["b"], "b": ["a"]}, "a -> b -> a"),
        ({"a": ["a"]}, "a -> a"),
        ({"top": ["a"], "a": ["b"], "b": ["c"], "c": ["a"]}, "a -> b -> c -> a"),
    ],
)
def test_circular_dependencies(dispatcher: Dispatcher, graph: dict[str, list[str]], cycle: str) -> None:
    add_many(dispatcher, graph)
    first = next(iter(graph))
    with pytest.raises(CircularDependency, match=cycle):
        dispatcher.resolve_dependency_graph(first)
    with pytest.raises(CircularDependency):
        dispatcher.call(first)
    with pytest.raises(CircularDependency):
        run(dispatcher.acall(first))
    assert issubclass(CircularDependency, PipedreamException)


def test_a_cycle_broken_by_a_call_time_argument_runs(dispatcher: Dispatcher) -> None:
    add_many(dispatcher, {"a": ["b"], "b": ["a"]})
    assert dispatcher.call("a", b="given") == "a['given']"


def test_unresolvable_names_list_what_is_available(dispatcher: Dispatcher) -> None:
    add_many(dispatcher, {"a": ["b"], "c": []})
    with pytest.raises(UnresolvableDependency) as caught:
        dispatcher.resolve_dependency_graph("a")
    error = caught.value
    assert isinstance(error, PipedreamException)
    assert error.name == "b"
    assert list(error.available) == ["a", "c"]
    assert "'b'" in str(error) and "'a', 'c'" in str(error) and "needed by 'a'" in str(error)
    with pytest.raises(UnresolvableDependency, match="'b'"):
        dispatcher.call("a")


def test_unresolvable_dependency_takes_pipedreams_arguments() -> None:
    error = UnresolvableDependency("x", available=["y", "z"])
    assert error.available == ["y", "z"]
    assert "'x'" in str(error) and "'y', 'z'" in str(error)


def test_exception_names_and_bases() -> None:
    for exc in (
        DuplicateFunction,
        CircularDependency,
        CircularDispatcherDependency,
        UnresolvableDependency,
        ResourceError,
        IncompleteCall,
    ):
        assert exc.__bases__ == (PipedreamException,)
    assert PipedreamException.__bases__ == (Exception,)


# -- sub-dispatchers --------------------------------------------------------------------------------


def test_names_are_found_in_sub_dispatchers_recursively() -> None:
    one, two, three = Dispatcher(), Dispatcher(), Dispatcher()
    one.add_sub_dispatcher(two)
    two.add_sub_dispatcher(three)

    @three.add
    def a() -> str:
        return "a"

    @two.add
    def b(a: str) -> str:
        return a + "b"

    assert one.find_resource("a").function is a
    assert one.call("b") == "ab"
    with pytest.raises(UnresolvableDependency) as caught:
        one.find_resource("c")
    assert list(caught.value.available) == ["b", "a"]


def test_a_cycle_of_dispatchers_is_searched_once() -> None:
    one, two, three = Dispatcher(), Dispatcher(), Dispatcher()
    one.add_sub_dispatcher(two)
    two.add_sub_dispatcher(three)
    three.add_sub_dispatcher(one)
    with pytest.raises(UnresolvableDependency):
        one.find_resource("a")

    three.add_resource(lambda: "found", name="a")
    assert two.call("a") == "found"
    assert three.call("a") == "found"
    with pytest.raises(UnresolvableDependency) as caught:
        two.find_resource("missing")
    assert list(caught.value.available) == ["a"]


# -- error handlers ---------------------------------------------------------------------------------


class Converted(Exception):
    pass


def failing_graph(dispatcher: Dispatcher, is_async: bool) -> None:
    """``top`` needs ``broken`` (which divides by zero, sync or async) and adds 1 to it."""
    if is_async:

        async def broken() -> int:
            return 1 // 0

        dispatcher.add(broken)
    else:
        dispatcher.add_resource(lambda: 1 // 0, name="broken")
    dispatcher.add_resource(lambda broken: broken + 1, name="top")


def call_either(dispatcher: Dispatcher, is_async: bool, name: str) -> Any:
    return run(dispatcher.acall(name)) if is_async else dispatcher.call(name)


@pytest.mark.parametrize("is_async", [False, True], ids=["call", "acall"])
def test_an_exception_without_handlers_propagates(dispatcher: Dispatcher, is_async: bool) -> None:
    failing_graph(dispatcher, is_async)
    with pytest.raises(ZeroDivisionError):
        call_either(dispatcher, is_async, "top")


@pytest.mark.parametrize("is_async", [False, True], ids=["call", "acall"])
def test_a_handler_returning_a_value_replaces_the_result(dispatcher: Dispatcher, is_async: bool) -> None:
    seen: list[Exception] = []

    @dispatcher.error_handler
    def handle(error: Exception) -> int:
        seen.append(error)
        return 41

    assert callable(handle)
    failing_graph(dispatcher, is_async)
    assert call_either(dispatcher, is_async, "top") == 42
    assert [type(e) for e in seen] == [ZeroDivisionError]


@pytest.mark.parametrize("is_async", [False, True], ids=["call", "acall"])
def test_a_handler_returning_an_exception_leaves_the_original_raised(dispatcher: Dispatcher, is_async: bool) -> None:
    dispatcher.error_handler(lambda error: error)
    dispatcher.error_handler(lambda error: Converted())
    failing_graph(dispatcher, is_async)
    with pytest.raises(ZeroDivisionError):
        call_either(dispatcher, is_async, "top")


@pytest.mark.parametrize("is_async", [False, True], ids=["call", "acall"])
def test_a_handler_that_raises_converts_the_exception(dispatcher: Dispatcher, is_async: bool) -> None:
    @dispatcher.error_handler
    def convert(error: Exception) -> None:
        raise Converted from error

    failing_graph(dispatcher, is_async)
    with pytest.raises(Converted):
        call_either(dispatcher, is_async, "top")


def test_handlers_run_in_order_until_one_returns_a_value(dispatcher: Dispatcher) -> None:
    order: list[str] = []

    def passes(error: Exception) -> Exception:
        order.append("passes")
        return error

    def answers(error: Exception) -> str:
        order.append("answers")
        return "handled"

    def never(error: Exception) -> str:
        raise AssertionError("an earlier handler answered")

    for handler in (passes, answers, never):
        dispatcher.error_handler(handler)
    failing_graph(dispatcher, is_async=False)
    assert dispatcher.call("broken") == "handled"
    assert order == ["passes", "answers"]
    assert dispatcher.handle_errors(lambda x, y: x // y, 1, y=0) == "handled"
    assert dispatcher.handle_errors(lambda x, y: x // y, 6, y=2) == 3


def test_the_calling_dispatchers_handlers_cover_sub_dispatcher_functions() -> None:
    outer, inner = Dispatcher(), Dispatcher()
    outer.add_sub_dispatcher(inner)
    failing_graph(inner, is_async=False)
    outer.error_handler(lambda error: 0)
    assert outer.call("top") == 1
    with pytest.raises(ZeroDivisionError):
        inner.call("top")


# -- async_pool -------------------------------------------------------------------------------------


def test_async_pool_must_be_an_executor() -> None:
    with pytest.raises(TypeError, match=r"concurrent\.futures\.Executor.*acall"):
        Dispatcher(async_pool=object())  # type: ignore[arg-type]  # the mistake tested


def test_call_with_a_pool_runs_a_layers_functions_concurrently() -> None:
    both = threading.Barrier(2, timeout=DEADLINE)  # broken (an error) if the two ran one after the other
    with ThreadPoolExecutor(2) as pool:
        dispatcher = Dispatcher(async_pool=pool)

        @dispatcher.add
        def left() -> int:
            both.wait()
            return 1

        @dispatcher.add
        def right() -> int:
            both.wait()
            return 2

        @dispatcher.add
        def total(left: int, right: int) -> int:
            return left + right

        assert dispatcher.call("total") == 3


# -- acall ------------------------------------------------------------------------------------------


def test_acall_runs_sync_and_async_functions_and_uses_given_values() -> None:
    dispatcher = Dispatcher()
    ran: list[str] = []

    @dispatcher.add
    async def user(user_id: int) -> str:
        ran.append("user")
        return f"user{user_id}"

    @dispatcher.add
    def greeting(user: str) -> str:
        ran.append("greeting")
        return f"hi {user}"

    @dispatcher.add
    async def page(greeting: str, user: str) -> str:
        return f"{greeting} ({user})"

    assert run(dispatcher.acall("page", user_id=7)) == "hi user7 (user7)"
    assert ran == ["user", "greeting"]
    assert run(dispatcher.acall("page", user="ann")) == "hi ann (ann)"
    assert ran == ["user", "greeting", "greeting"]
    with pytest.raises(UnresolvableDependency, match="'user_id'"):
        run(dispatcher.acall("page"))


def test_acall_awaits_independent_async_functions_concurrently() -> None:
    """Each waits for the other to have started: run one after the other, they would never finish."""
    dispatcher = Dispatcher()
    started: dict[str, asyncio.Event] = {}

    async def meet(me: str, other: str) -> str:
        started[me].set()
        await started[other].wait()
        return me

    @dispatcher.add
    async def left() -> str:
        return await meet("left", "right")

    @dispatcher.add
    async def right() -> str:
        return await meet("right", "left")

    @dispatcher.add
    def both(left: str, right: str) -> str:
        return left + right

    async def main() -> str:
        started.update(left=asyncio.Event(), right=asyncio.Event())
        result: str = await dispatcher.acall("both")
        return result

    assert run(main()) == "leftright"


def in_default_executor(pool: ThreadPoolExecutor, coro: Coroutine[Any, Any, Any]) -> Any:
    """``coro`` run with ``pool`` as its loop's default executor (what ``acall`` uses without a pool)."""

    async def main() -> Any:
        asyncio.get_running_loop().set_default_executor(pool)
        return await coro

    return run(main())


def test_acall_without_a_pool_runs_sync_functions_no_async_one_separates_in_one_trip() -> None:
    main_thread = threading.get_ident()
    threads: dict[str, int] = {}
    with CountingPool() as pool:
        dispatcher = Dispatcher()

        def sync(name: str, requires: Sequence[str]) -> None:
            def func(*args: Any) -> str:
                threads[name] = threading.get_ident()
                return name

            dispatcher.add(func, name=name, requires=requires)

        for name in ("s1", "s2", "s3"):
            sync(name, [])

        @dispatcher.add
        async def fetched(s1: str) -> str:
            threads["fetched"] = threading.get_ident()
            return "fetched"

        sync("s4", ["s2"])
        sync("s5", ["s4"])
        sync("s6", ["fetched", "s5", "s3"])  # after fetched: a second trip

        plan = dispatcher.plan("s6", frozenset())
        assert [[s.name for s in layer] for layer in plan.layers] == [
            ["s1", "s2", "s3"],
            ["fetched", "s4"],
            ["s5"],
            ["s6"],
        ]
        assert in_default_executor(pool, dispatcher.acall("s6")) == "s6"
        assert pool.trips == 2
        assert threads["fetched"] == main_thread
        assert len({threads[n] for n in ("s1", "s2", "s3", "s4", "s5")}) == 1 and threads["s1"] != main_thread


def test_acall_of_sync_functions_only_takes_one_trip_without_a_pool() -> None:
    with CountingPool() as pool:
        dispatcher = Dispatcher()
        add_many(dispatcher, {"a": [], "b": [], "c": ["a", "b"], "d": ["c", "a"]})
        assert in_default_executor(pool, dispatcher.acall("d")) == "d[\"c['a[]', 'b[]']\", 'a[]']"
        assert pool.trips == 1


def test_acall_starts_each_function_once_its_own_inputs_are_ready() -> None:
    """``c`` needs only ``a``; ``b`` waits for ``c`` to have started. Stage by stage (``a`` and ``b``,
    then ``c``) ``c`` would start only after ``b`` finished: never."""
    dispatcher = Dispatcher()
    c_started = asyncio.Event()

    @dispatcher.add
    async def a() -> str:
        return "a"

    @dispatcher.add
    async def b() -> str:
        await c_started.wait()
        return "b"

    @dispatcher.add
    async def c(a: str) -> str:
        c_started.set()
        return "c" + a

    @dispatcher.add
    def result(c: str, b: str) -> str:
        return c + b

    assert run(dispatcher.acall("result")) == "cab"


def test_acall_with_a_pool_runs_independent_sync_functions_at_once() -> None:
    """Each waits in its thread for the others to have started: one after the other, they never would;
    ``c`` (sync, after the async ``a``) also runs while ``b`` still waits."""
    meet = threading.Barrier(3, timeout=DEADLINE)
    with ThreadPoolExecutor(3) as pool:
        dispatcher = Dispatcher(async_pool=pool)

        @dispatcher.add
        async def a() -> str:
            return "a"

        @dispatcher.add
        def b() -> str:
            meet.wait()
            return "b"

        @dispatcher.add
        def c(a: str) -> str:
            meet.wait()
            return "c" + a

        @dispatcher.add
        def d() -> str:
            meet.wait()
            return "d"

        @dispatcher.add
        def result(c: str, b: str, d: str) -> str:
            return c + b + d

        assert run(dispatcher.acall("result")) == "cabd"


def test_a_failure_stops_the_functions_waiting_for_it() -> None:
    dispatcher = Dispatcher()
    ran: list[str] = []

    @dispatcher.add
    async def a() -> str:
        raise Converted("a failed")

    @dispatcher.add
    async def b(a: str) -> str:
        ran.append("b")
        return a

    @dispatcher.add
    async def c(a: str) -> str:
        ran.append("c")
        return a

    @dispatcher.add
    async def d(b: str, c: str) -> str:
        return b + c

    with pytest.raises(Converted, match="a failed"):
        run(dispatcher.acall("d"))
    assert ran == []


def test_acall_uses_the_loops_default_executor_without_a_pool() -> None:
    dispatcher = Dispatcher()
    dispatcher.add_resource(threading.get_ident, name="thread", requires=())

    async def main() -> tuple[int, int]:
        return threading.get_ident(), await dispatcher.acall("thread")

    loop_thread, worker = run(main())
    assert worker != loop_thread


def test_a_failure_beside_other_functions_is_raised_once_they_finish() -> None:
    dispatcher = Dispatcher()
    finished: list[str] = []

    @dispatcher.add
    async def slow() -> int:
        await asyncio.sleep(0)
        finished.append("slow")
        return 1

    @dispatcher.add
    async def broken() -> int:
        raise Converted("broken")

    @dispatcher.add
    def sync_one() -> int:
        finished.append("sync_one")
        return 1

    @dispatcher.add
    async def total(slow: int, broken: int, sync_one: int) -> int:  # (a sync one would share sync_one's trip)
        return slow + broken + sync_one

    with pytest.raises(Converted, match="broken"):
        run(dispatcher.acall("total"))
    assert sorted(finished) == ["slow", "sync_one"]


def test_acall_with_a_sub_dispatcher_and_handlers() -> None:
    outer, inner = Dispatcher(), Dispatcher()
    outer.add_sub_dispatcher(inner)
    failing_graph(inner, is_async=True)
    outer.error_handler(lambda error: 0)
    assert run(outer.acall("top")) == 1


# -- plan -------------------------------------------------------------------------------------------


def test_the_plan_of_a_name_and_keyword_names_is_compiled_once() -> None:
    dispatcher = Dispatcher()
    add_many(dispatcher, {"a": ["b", "x"], "b": ["c"], "c": []})
    plan = dispatcher.plan("a", frozenset({"x"}))
    assert dispatcher.plan("a", frozenset({"x"})) is plan
    assert dispatcher.plan("a", frozenset({"x", "c"})) is not plan
    dispatcher.call("a", x=1)
    run(dispatcher.acall("a", x=1))
    assert dispatcher.plan("a", frozenset({"x"})) is plan

    assert plan.name == "a" and plan.given == frozenset({"x"})
    assert [step.name for step in plan.order] == ["c", "b", "a"]
    assert [[(s.name, s.requirements, s.is_async) for s in layer] for layer in plan.layers] == [
        [("c", (), False)],
        [("b", ("c",), False)],
        [("a", ("b", "x"), False)],
    ]
    name, function, requirements, is_async = plan.layers[0][0]  # a step unpacks as a 4-tuple
    assert (name, function, requirements, is_async) == ("c", dispatcher.find_resource("c").function, (), False)
    assert plan.inputs == frozenset({"x"})


def test_a_plan_is_recompiled_after_any_dispatcher_changes() -> None:
    outer, inner = Dispatcher(), Dispatcher()
    outer.add_sub_dispatcher(inner)
    add_many(inner, {"a": ["b"], "b": []})
    plan = outer.plan("a")
    assert outer.call("a") == "a['b[]']"
    outer.add_resource(lambda: "outer b", name="b")  # now found before inner's b
    assert outer.plan("a") is not plan
    assert outer.call("a") == "a['outer b']"


def test_the_plan_of_a_given_name_is_empty() -> None:
    dispatcher = Dispatcher()
    add_many(dispatcher, {"a": ["b"]})
    plan = dispatcher.plan("a", frozenset({"a"}))
    assert plan.order == () and plan.layers == () and plan.inputs == frozenset({"a"})
    assert run(dispatcher.acall("a", a="given")) == "given"


def test_the_package_keeps_pipedreams_import_names() -> None:
    import buildflow.pipedream as pipedream

    for name in (
        "Dispatcher",
        "PipedreamException",
        "DuplicateFunction",
        "CircularDependency",
        "CircularDispatcherDependency",
        "UnresolvableDependency",
        "ResourceError",
        "IncompleteCall",
    ):
        assert name in pipedream.__all__ and hasattr(pipedream, name)
