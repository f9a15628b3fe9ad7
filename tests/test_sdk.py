"""The declaration API as BuildFlow 0.3 modules use it: pure data, no server needed."""

import pytest

import buildflow
from buildflow import Flow, Service
from buildflow.dependencies import Scope, dependency, global_scoped, no_scoped, process_scoped, replica_scoped
from buildflow.dependencies.scopes import scope_of
from buildflow.processors import Method, join_route


def test_endpoint_decorator_returns_the_function_unchanged():
    app = Flow()
    svc = app.service()

    def handler():
        return "x"

    assert svc.endpoint(route="/", method="POST")(handler) is handler
    assert svc.endpoint("/g", "get")(handler) is handler
    assert [(e.route, e.method) for e in svc.endpoints] == [("/", Method.POST), ("/g", Method.GET)]
    assert handler() == "x"


def test_service_options_both_styles():
    class Autoscale:
        num_replicas = 3
        min_replicas = 1

    app = Flow()
    assert app.service(num_cpus=0.5).options.num_cpus == 0.5
    assert app.service("/base", autoscale_options=Autoscale()).num_replicas == 3
    with pytest.raises(ValueError, match="max_replicas must be >= min_replicas"):
        app.service(min_replicas=5, max_replicas=2, num_replicas=5)
    with pytest.raises(TypeError, match="Unknown option"):
        app.service(num_gpus=1)


def test_add_service_and_module_decorators():
    app = Flow()
    svc = Service(base_route="/s")
    svc.add_endpoint(buildflow.endpoint("/e", method="GET")(lambda: 1))
    app.add_service(svc)
    app.add_collector(buildflow.collector("/c", method="POST")(lambda: None))
    assert [s.base_route for s in app.services] == ["/s"]
    assert app.collectors[0].route == "/c"


def test_collector_rules():
    app = Flow()

    def collect():
        return None

    assert app.collector(route="/", method="POST", sink=None)(collect) is collect
    with pytest.raises(RuntimeError, match=r"ProcessorGroup\(collect\) already exists"):
        app.collector("/other", method="POST")(collect)
    with pytest.raises(NotImplementedError, match="Websocket collectors"):
        app.collector("/ws", method="websocket")
    with pytest.raises(NotImplementedError, match="Websocket collectors"):
        buildflow.collector("/ws", method="websocket")


def test_method_parsing():
    assert Method.parse("websocket") is Method.WEBSOCKET
    with pytest.raises(ValueError, match="Unknown HTTP method 'FETCH'"):
        Method.parse("FETCH")


def test_manage_rejects_non_primitives():
    with pytest.raises(ValueError, match="manage\\(\\) takes primitives"):
        Flow().manage("not a primitive")


def test_dependency_marking_forms():
    @dependency(scope=Scope.REPLICA)
    class A:
        pass

    @dependency(Scope.GLOBAL)
    def b():
        return 1

    @dependency("no_scope")
    class C:
        pass

    @dependency
    class D:
        pass

    assert (scope_of(A), scope_of(b), scope_of(C), scope_of(D)) == (
        Scope.REPLICA,
        Scope.GLOBAL,
        Scope.NO_SCOPE,
        Scope.PROCESS,
    )
    assert isinstance(A(), A)  # still the class: type checkers and tests keep working


def test_scope_aliases_used_by_buildflow_samples():
    @global_scoped
    class G:
        pass

    @replica_scoped
    class R:
        pass

    @process_scoped
    class P:
        pass

    @no_scoped
    class N:
        pass

    assert [scope_of(x) for x in (G, R, P, N)] == [Scope.GLOBAL, Scope.REPLICA, Scope.PROCESS, Scope.NO_SCOPE]
    assert [s.value for s in Scope] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("base", "route", "joined"),
    [("/", "/", "/"), ("/", "/a", "/a"), ("/api", "/", "/api"), ("/api/", "/a/", "/api/a/"), ("/api", "a", "/api/a")],
)
def test_join_route(base, route, joined):
    assert join_route(base, route) == joined


def test_sdk_import_loads_no_server_code():
    import subprocess
    import sys

    code = (
        "import buildflow, buildflow.dependencies, buildflow.requests, sys; "
        "print(sorted(m for m in ('aiohttp', 'runtime', 'providers', 'bfctl') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
