"""Property-based fuzzing of every route of the examples: whatever a client sends, the answer
is never a 5xx, and every error is JSON. Bodies come as JSON, as forms (multipart parts with
hostile headers, odd charsets and transfer encodings) and under any media type."""

from __future__ import annotations

import functools
import gzip
import http.client
import importlib.util
import json
import os
import re
import shutil
import socket
import sys
import time
import urllib.parse
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import serving

from bfctl.runtime.app import FlowApp
from bfctl.testing import TestClient
from buildflow import Flow
from buildflow.requests import File, Form, Request, UploadFile

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
#: Content-Type of a body: JSON most often.
MEDIA_TYPES = st.sampled_from(
    [
        "application/json",
        "application/json",
        "application/json; charset=utf-8",
        "application/problem+json",
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/octet-stream",
        "json",
    ]
)
#: Content-Encoding of a request: none most often.
CODINGS = st.sampled_from([None, None, None, "gzip", "deflate", "br", "identity", "no-such-coding"])


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
        MEDIA_TYPES,
        CODINGS,
    )


def _check(client: TestClient, request) -> None:
    path, method, query, body, media_type, coding = request
    headers = {"Content-Type": media_type} | ({"Content-Encoding": coding} if coding else {})
    r = client.request(method, path, params=query, content=body, headers=headers)
    assert r.status_code < 500, (method, path, query, body, headers, r.status_code, r.text)
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
    from flows.http_app import make_app

    with TestClient(make_app(), max_body=1024) as client:
        _fuzz(client, exclude=frozenset({"/boom", "/unserializable"}))  # they fail on purpose


@pytest.fixture(scope="module")
def notes_outputs(tmp_path_factory):
    """The notes example's database applied on the local target in a scratch project."""
    from bfctl.infra import declared_primitives
    from bfctl.providers import get_provider
    from buildflow.dependencies.flow_dependencies import ResourceOutputs

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
    from flows.http_app import make_app

    too_big = b'{"name": "' + b"x" * (11 * 1024 * 1024) + b'", "price": 1}'
    with TestClient(make_app()) as client:
        for method, path in [("POST", "/items"), ("PUT", "/echo")]:
            r = client.request(method, path, content=too_big, headers={"Content-Type": "application/json"})
            assert r.status_code == 413, (path, r.status_code, r.text)
            assert r.headers["Content-Type"].startswith("application/json")
            assert str(10 * 1024 * 1024) in r.json()["detail"]


# -- forms: multipart and urlencoded bodies whose parts carry hostile headers ------------------

BOUNDARY = "fuzzB"
PART_HEADERS = st.sampled_from(
    [
        b'Content-Disposition: form-data; name="doc"; filename="a\x00b.txt"',
        b'Content-Disposition: form-data; name="doc"; filename="notes.txt"',
        b'Content-Disposition: form-data; name="note"',
        b'Content-Disposition: form-data; name="tags"',
        b"Content-Disposition: form-data",
        b"Content-Disposition: attachment; name=",
        b"garbage header line",
        b"Content-Type: text/plain; charset=utf-8",
        b"Content-Type: text/plain; charset=latin-1",
        b"Content-Type: text/plain; charset=no-such-charset",
        b"Content-Type: text/plain; charset=utf-16",
        b"Content-Type: multipart/mixed; boundary=inner",
        b"Content-Transfer-Encoding: base64",
        b"Content-Transfer-Encoding: quoted-printable",
        b"Content-Transfer-Encoding: 8bit",
        b"Content-Transfer-Encoding: no-such-encoding",
        b"Content-Encoding: gzip",
        b"Content-Encoding: no-such-coding",
        b"Content-Length: 99999",
    ]
)
PART_BODIES = st.one_of(
    st.binary(max_size=40), st.sampled_from([b"hello", b"aGVsbG8=", b"=ZZ=", b"\xff\xfe\x00", b"7"])
)
PARTS = st.lists(st.tuples(st.lists(PART_HEADERS, min_size=1, max_size=4), PART_BODIES), max_size=4)
MULTIPART = PARTS.map(
    lambda parts: (
        b"".join(
            b"--" + BOUNDARY.encode() + b"\r\n" + b"\r\n".join(headers) + b"\r\n\r\n" + body + b"\r\n"
            for headers, body in parts
        )
        + b"--"
        + BOUNDARY.encode()
        + b"--\r\n"
    )
)
URLENCODED = st.one_of(
    st.binary(max_size=60),
    st.dictionaries(st.sampled_from(["note", "tags", "count", "doc"]), TEXT, max_size=3).map(
        lambda v: urllib.parse.urlencode(v).encode()
    ),
)
CHARSETS = st.sampled_from(["", "; charset=utf-8", "; charset=latin-1", "; charset=no-such-charset", "; charset="])
FORM_REQUESTS = st.one_of(
    st.tuples(MULTIPART, CHARSETS.map(lambda c: f"multipart/form-data; boundary={BOUNDARY}{c}")),
    st.tuples(URLENCODED, CHARSETS.map(lambda c: f"application/x-www-form-urlencoded{c}")),
)


def form_flow() -> Flow:
    """Form routes whose handlers cannot fail by themselves: any 5xx is the runtime's."""
    app = Flow()
    service = app.service()

    @service.endpoint("/upload", method="POST")
    async def upload(doc: UploadFile, note: str = Form(""), count: int = Form(0)) -> dict:
        return {"name": doc.filename, "size": len(await doc.read()), "note": note, "count": count}

    @service.endpoint("/fields", method="POST")
    def fields(tags: list[str] = Form([]), raw: bytes = File(b"")) -> dict:
        return {"tags": tags, "raw": len(raw)}

    @service.endpoint("/read", method="POST")
    async def read(request: Request) -> dict:
        return {"fields": sorted((await request.form()).keys())}

    @service.endpoint("/text", method="POST")
    async def text(request: Request) -> dict:
        return {"length": len(await request.text())}

    return app


def send(base_url: str, method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, str, bytes]:
    """A request sent as given, no header added (http.client adds no Content-Type): the status,
    the answer's Content-Type and body."""
    url = urllib.parse.urlsplit(base_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers)
        answer = connection.getresponse()
        return answer.status, answer.getheader("Content-Type", ""), answer.read()
    finally:
        connection.close()


def _check_answer(status: int, content_type: str, content: bytes, sent: object) -> None:
    assert status < 500, (sent, status, content)
    if status >= 400:
        assert content_type.startswith("application/json"), (sent, status, content_type, content)
        json.loads(content)


def test_fuzz_form_bodies_with_hostile_parts_headers_charsets_and_codings():
    with TestClient(form_flow(), max_body=4096) as client:

        @FUZZ
        @given(st.sampled_from(["/upload", "/fields", "/read", "/text"]), FORM_REQUESTS, CODINGS)
        def run(path, form, coding) -> None:
            body, content_type = form
            headers = {"Content-Type": content_type} | ({"Content-Encoding": coding} if coding else {})
            _check_answer(*send(client.base_url, "POST", path, body, headers), (path, headers, body))

        run()


def _part(headers: bytes, body: bytes = b"x") -> bytes:
    return b"--B\r\n" + headers + b"\r\n\r\n" + body + b"\r\n--B--\r\n"


MULTIPART_B = "multipart/form-data; boundary=B"
#: Bodies probing found answered with a 500: (path, Content-Type, body).
BROKEN_BODIES = {
    "a NUL in a filename": (
        "/upload",
        MULTIPART_B,
        _part(b'Content-Disposition: form-data; name="doc"; filename="a\x00b"'),
    ),
    "a garbage part header line": (
        "/upload",
        MULTIPART_B,
        _part(b'Content-Disposition: form-data; name="note"\r\ngarbage line'),
    ),
    "an unknown Content-Transfer-Encoding": (
        "/fields",
        MULTIPART_B,
        _part(b'Content-Disposition: form-data; name="tags"\r\nContent-Transfer-Encoding: foo'),
    ),
    "an unknown charset in a part": (
        "/fields",
        MULTIPART_B,
        _part(b'Content-Disposition: form-data; name="tags"\r\nContent-Type: text/plain; charset=foo'),
    ),
    "an unknown charset of a urlencoded form": (
        "/fields",
        "application/x-www-form-urlencoded; charset=foo",
        b"tags=a",
    ),
    "an unknown charset read by the handler": ("/text", "text/plain; charset=foo", b"words"),
    "a form read by the handler with an unknown charset": (
        "/read",
        MULTIPART_B,
        _part(b'Content-Disposition: form-data; name="tags"\r\nContent-Type: text/plain; charset=foo'),
    ),
}


@pytest.mark.parametrize("case", list(BROKEN_BODIES))
def test_malformed_bodies_are_4xx_json_not_500(case, caplog):
    path, content_type, body = BROKEN_BODIES[case]
    with TestClient(form_flow()) as client:
        status, answer_type, content = send(client.base_url, "POST", path, body, {"Content-Type": content_type})
    assert 400 <= status < 500, (status, content)
    assert answer_type.startswith("application/json")
    assert json.loads(content)["detail"]
    assert "Traceback" not in caplog.text


def test_a_handlers_own_lookup_and_decode_errors_are_still_500s():
    """The errors a broken body raises are the handler's bugs when its own code raises them."""
    app = Flow()
    service = app.service()

    @service.endpoint("/lookup", method="POST")
    async def lookup(request: Request) -> str:
        await request.form()
        return b"x".decode("no-such-charset")

    @service.endpoint("/decode", method="POST")
    def decode(tags: list[str] = Form([])) -> str:
        return b"\xff".decode()

    with TestClient(app) as client:
        for path in ("/lookup", "/decode"):
            assert client.post(path, data={"tags": "a"}).status_code == 500


@functools.cache
def _gzip_bomb() -> bytes:
    """256 MiB of zeros gzipped: about a thousandth of that on the wire, 25 times the body limit."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = bytes(1 << 20)
    return b"".join(compressor.compress(chunk) for _ in range(256)) + compressor.flush()


def _read_answer(sock: socket.socket) -> tuple[int, bytes]:
    """The status and the bytes of an answer read from a raw socket, until the server's own
    deadline-bound close or the end of a JSON body."""
    sock.settimeout(30)
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1]), data


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br"])
def test_a_compressed_body_is_refused_before_it_is_read_and_others_are_served_meanwhile(coding):
    """A gzip bomb is never expanded: a compressed body is answered 415 while most of it is still
    unsent, and other requests are answered while it is in flight."""
    from flows.http_app import make_app

    bomb = _gzip_bomb()
    with TestClient(make_app()) as client:
        url = urllib.parse.urlsplit(client.base_url)
        with socket.create_connection((url.hostname, url.port)) as sock:
            head = (
                f"POST /items HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Encoding: {coding}\r\nContent-Length: {len(bomb)}\r\n\r\n"
            )
            sock.sendall(head.encode() + bomb[: len(bomb) // 4])
            assert client.get("/text").json() == "plain"
            status, answer = _read_answer(sock)
        assert status == 415, answer
        assert b"Accept-Encoding: identity" in answer
        assert coding.encode() in answer.partition(b"\r\n\r\n")[2]
        gzipped_form = send(
            client.base_url,
            "POST",
            "/items",
            gzip.compress(b'{"name": "a", "price": 1}'),
            {"Content-Type": "application/json", "Content-Encoding": coding},
        )
        assert gzipped_form[0] == 415
        identity = {"Content-Type": "application/json", "Content-Encoding": "identity"}
        assert send(client.base_url, "POST", "/items", b'{"name": "a", "price": 1}', identity)[0] == 200


def test_gzip_that_is_not_gzip_is_refused_and_handlers_reading_it_get_the_bytes_as_sent(caplog):
    """Forms are refused like JSON bodies; a handler that reads the body itself gets the bytes as
    sent, as Starlette hands them over (nothing is decompressed), and nothing is logged."""
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Content-Encoding": "gzip"}
    with TestClient(form_flow()) as client:
        status, answer_type, content = send(client.base_url, "POST", "/fields", b"tags=a", headers)
        assert (status, answer_type) == (415, "application/json"), content
        assert send(client.base_url, "POST", "/read", b"tags=a", headers)[2] == b'{"fields":["tags"]}'
        assert send(client.base_url, "POST", "/text", b"tags=a", headers)[2] == b'{"length":6}'
    assert "Traceback" not in caplog.text


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "text/plain; charset=utf-8", "application/x-www-form-urlencoded", "multipart/form-data; boundary=B"],
)
def test_a_json_body_under_another_media_type_is_415_naming_it(content_type):
    """A cross-site page may post text/plain or a form without asking (no CORS preflight): a JSON
    parameter is read only from a JSON media type."""
    from flows.http_app import make_app

    with TestClient(make_app()) as client:
        status, _type, content = send(
            client.base_url, "POST", "/items", b'{"name": "a", "price": 1}', {"Content-Type": content_type}
        )
    assert status == 415, content
    assert content_type.partition(";")[0] in json.loads(content)["detail"]


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "application/merge-patch+json", None]
)
def test_a_json_body_is_read_under_a_json_media_type_or_none(content_type):
    """``application/json``, ``application/*+json``, or no Content-Type at all, as FastAPI reads
    it (``requests.post(url, data=json.dumps(...))`` sends none)."""
    from flows.http_app import make_app

    headers = {} if content_type is None else {"Content-Type": content_type}
    with TestClient(make_app()) as client:
        status, _type, content = send(client.base_url, "POST", "/items", b'{"name": "a", "price": 1}', headers)
        assert (status, json.loads(content)["name"]) == (200, "a"), content
        # no body at all under any media type: the parameter is missing, as before
        status, _type, content = send(client.base_url, "POST", "/items", b"", {"Content-Type": "text/plain"})
        assert status == 422, content


def _trickled_until_closed(sock: socket.socket, seconds: float = 30.0) -> int:
    """Header lines sent, the next one whenever the server stays silent for 0.1 s, until it
    closes the connection (a bound on failure only); the number of lines sent."""
    sock.settimeout(0.1)
    deadline = time.monotonic() + seconds
    sent = 0
    while time.monotonic() < deadline:
        try:
            assert sock.recv(1024) == b"", "the server answered an unfinished request head"
            return sent
        except TimeoutError:
            try:
                sock.sendall(b"X-Slow-%d: x\r\n" % sent)
            except (BrokenPipeError, ConnectionResetError):
                return sent
            sent += 1
        except ConnectionResetError:
            return sent
    pytest.fail(f"a connection trickling its headers was still open after {seconds}s")


@pytest.mark.parametrize("how", ["bfctl serve", "app.run()"])
def test_a_client_trickling_its_headers_or_idle_is_dropped_while_others_are_served(how, tmp_path, bfctl_env):
    """``--idle-timeout`` (``app.run(idle_timeout=...)``) bounds the time to send a whole request
    head, and idle keep-alive."""
    main = (ROOT / "examples" / "hello" / "main.py").read_text(encoding="utf-8")
    (tmp_path / "main.py").write_text(main.replace("app.run()", "app.run(serve_port=0, idle_timeout=0.5)"))
    args, command = ["main.py", "--port", "0", "--idle-timeout", "0.5", "--no-access-log"], None
    if how == "app.run()":
        args, command = [], [sys.executable, "main.py"]
    with serving(args, tmp_path, bfctl_env, command=command) as server:
        url = urllib.parse.urlsplit(server.url)
        with (
            socket.create_connection((url.hostname, url.port)) as slow,
            socket.create_connection((url.hostname, url.port)) as idle,
        ):
            slow.sendall(b"GET /bob HTTP/1.1\r\nHost: x\r\n")
            idle.sendall(b"GET /bob HTTP/1.1\r\nHost: x\r\n\r\n")
            assert server.get("/sally")[0] == 200
            assert _trickled_until_closed(slow) >= 1
            idle.settimeout(30)
            answer = b""
            while chunk := idle.recv(65536):  # the answer, then the close once idle
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200"), answer
        assert server.get("/sally")[0] == 200


@pytest.mark.parametrize("path", ["/items", "/text"])
def test_a_request_aiohttp_cannot_parse_is_400_and_one_warning_line(path, caplog):
    """Broken HTTP framing (a chunk size that is no number) never reaches the flow: aiohttp
    answers 400, and the log says so in one line, not with an error's traceback."""
    from flows.http_app import make_app

    with TestClient(make_app()) as client:
        url = urllib.parse.urlsplit(client.base_url)
        with socket.create_connection((url.hostname, url.port)) as sock:
            sock.sendall(
                f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                'Transfer-Encoding: chunked\r\n\r\n5\r\n{{"a":\r\nzz\r\n'.encode()
            )
            sock.settimeout(30)
            answer = sock.recv(65536)
    assert answer.startswith((b"HTTP/1.0 400", b"HTTP/1.1 400")), answer
    assert "Traceback" not in caplog.text
    assert [r.getMessage() for r in caplog.records if r.name == "aiohttp.server" and r.levelname == "WARNING"]


def test_clients_as_buildflow_users_wrote_them_still_post_json():
    """BuildFlow's own tests and samples post with ``requests.post(url, json=...)``; scripts
    also post ``data=json.dumps(...)``, which sends no Content-Type."""
    import requests
    from flows.http_app import make_app

    item = {"name": "a", "price": 1}
    with TestClient(make_app()) as client:
        assert requests.post(client.base_url + "/items", json=item, timeout=30).json()["name"] == "a"
        assert requests.post(client.base_url + "/items", data=json.dumps(item), timeout=30).json()["name"] == "a"
        as_form = requests.post(client.base_url + "/items", data=item, timeout=30)
        assert as_form.status_code == 415 and "application/x-www-form-urlencoded" in as_form.json()["detail"]
