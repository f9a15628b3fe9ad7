"""Property-based fuzzing of every route of the examples: whatever a client sends, the answer
is never a 5xx, and every error is JSON."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import urllib.parse
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.app import FlowApp
from runtime.testing import TestClient

ROOT = Path(__file__).resolve().parent.parent
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "120")),
    deadline=None,
    derandomize=os.environ.get("CI") == "true",
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
METHODS = st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND", "HEAD"])
TEXT = st.text(max_size=40)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
BODIES = st.one_of(
    st.none(),
    st.binary(max_size=200),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(
        st.sampled_from(["title", "body", "name", "price", "qty", "user", "kind", "tags"]), JSON_VALUES, max_size=5
    ).map(lambda v: json.dumps(v).encode()),
    st.integers(2000, 5000).map(lambda n: b'{"title": "' + b"x" * n + b'"}'),  # over the 1 KiB limit below
)


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.app


def _paths(route: str):
    segments = st.one_of(
        TEXT.filter(bool),
        st.integers().map(str),
        st.uuids().map(str),
        st.sampled_from(["..", "%00", "1e309", "-1", "0x10", "true"]),
    )
    names = re.findall(r"\{(\w+)[^}]*\}", route)
    return st.fixed_dictionaries(dict.fromkeys(names, segments)).map(
        lambda values: re.sub(r"\{(\w+)[^}]*\}", lambda m: urllib.parse.quote(values[m.group(1)], safe=""), route)
    )


def _request_strategy(flow_app: FlowApp, exclude: frozenset[str]):
    routes = [route for _method, route in flow_app.routes() if route not in exclude] + ["/nowhere", "/_bf/health"]
    return st.tuples(
        st.sampled_from(routes).flatmap(_paths),
        METHODS,
        st.dictionaries(st.sampled_from(["limit", "q", "verbose", "ids", "x"]), TEXT, max_size=3),
        BODIES,
    )


def _check(client: TestClient, request) -> None:
    path, method, query, body = request
    r = client.request(method, path, params=query, content=body, headers={"Content-Type": "application/json"})
    assert r.status_code < 500, (method, path, query, body, r.status_code, r.text)
    if r.status_code >= 400 and method != "HEAD":
        assert r.headers["Content-Type"].startswith("application/json"), (method, path, r.headers)
        r.json()


def _fuzz(client: TestClient, exclude: frozenset[str] = frozenset()) -> None:
    @FUZZ
    @given(_request_strategy(client.flow_app, exclude))
    def run(request) -> None:
        _check(client, request)

    run()


def test_fuzz_hello_example():
    with TestClient(_load(ROOT / "examples" / "hello" / "main.py", "fuzz_hello"), max_body=1024) as client:
        _fuzz(client)


def test_fuzz_request_parsing_routes():
    from test_http import make_app

    with TestClient(make_app(), max_body=1024) as client:
        _fuzz(client, exclude=frozenset({"/boom", "/unserializable"}))  # they fail on purpose


@pytest.fixture(scope="module")
def notes_outputs(tmp_path_factory):
    """The notes example's database applied on the local target in a scratch project."""
    from bfctl.infra import declared_primitives
    from buildflow.dependencies.flow_dependencies import ResourceOutputs
    from providers import get_provider

    app = _load(ROOT / "examples" / "notes" / "main.py", "fuzz_notes")
    project = tmp_path_factory.mktemp("fuzz-notes")
    shutil.copytree(ROOT / "examples" / "notes" / "migrations", project / "migrations")  # apply runs them
    provider = get_provider("local", project, "dev")
    outputs = provider.apply(provider.plan(declared_primitives(app, "local")))
    yield app, ResourceOutputs(outputs, "local")
    provider.destroy()


def test_fuzz_notes_example(notes_outputs):
    app, outputs = notes_outputs
    with TestClient(app, outputs=outputs, max_body=1024) as client:
        _fuzz(client)
        assert client.post("/notes", json={"title": "still works"}).status_code == 200


def test_default_body_limit_is_413_json():
    """Over the default 10 MiB, a route that takes a body answers 413 as JSON, whether the body
    is a declared parameter or read by the handler itself."""
    from test_http import make_app

    too_big = b'{"name": "' + b"x" * (11 * 1024 * 1024) + b'", "price": 1}'
    with TestClient(make_app()) as client:
        for method, path in [("POST", "/items"), ("PUT", "/echo")]:
            r = client.request(method, path, content=too_big, headers={"Content-Type": "application/json"})
            assert r.status_code == 413, (path, r.status_code, r.text)
            assert r.headers["Content-Type"].startswith("application/json")
            assert str(10 * 1024 * 1024) in r.json()["detail"]
