"""Cloud Run's contract, kept by a real ``bfctl serve`` subprocess: the port from ``$PORT``,
0.0.0.0 on Cloud Run only, and the startup probe path."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from support import run_bfctl, serving, write

FLOW = """
from buildflow import Flow

app = Flow()
service = app.service()


@service.endpoint("/hello", method="GET")
def hello() -> str:
    return "hello"
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(("k_service", "host"), [("notes", "0.0.0.0"), (None, "127.0.0.1")])  # noqa: S104
def test_port_comes_from_the_environment(
    tmp_path: Path, bfctl_env: dict[str, str], k_service: str | None, host: str
) -> None:
    write(tmp_path / "main.py", FLOW)
    port = _free_port()
    env = {**bfctl_env, "PORT": str(port)}
    env.pop("K_SERVICE", None)
    if k_service:
        env["K_SERVICE"] = k_service

    with serving(["main.py"], tmp_path, env) as server:
        assert server.url == f"http://{host}:{port}"
        server.url = f"http://127.0.0.1:{port}"
        assert server.get("/hello") == (200, '"hello"')
        assert server.get("/_bf/health") == (200, '{"status":"ok"}')
        assert server.stop() == 0


def test_flags_win_over_the_environment(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    write(tmp_path / "main.py", FLOW)
    env = {**bfctl_env, "PORT": str(_free_port()), "K_SERVICE": "notes"}

    with serving(["main.py", "--host", "127.0.0.1", "--port", "0"], tmp_path, env) as server:
        assert server.url.startswith("http://127.0.0.1:")
        assert not server.url.endswith(f":{env['PORT']}")
        assert server.get("/hello")[0] == 200


def test_a_port_that_is_not_a_number_is_a_clear_error(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    write(tmp_path / "main.py", FLOW)
    code, output = run_bfctl(["serve", "main.py"], tmp_path, {**bfctl_env, "PORT": "eighty"})
    assert code == 1
    assert output.startswith("Error: PORT='eighty' is not a TCP port number"), output
    assert "Traceback" not in output
