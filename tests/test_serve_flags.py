"""``bfctl serve``'s command line read without Typer (``bfctl.flags``) gives what Typer gives,
and leaves to Typer whatever it cannot read plainly (help, errors, unusual spellings).

Typer's reading is the one ``bfctl serve`` has always had: its command, built from the same
declarations, parses each command line here and the two results are compared.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer.main
from support import run_bfctl

from bfctl import cli
from bfctl.flags import SERVE, serve_arguments


def _typer_command() -> Any:
    return typer.main.get_command(cli.app).commands["serve"]  # type: ignore[attr-defined]


def _typer_reads(args: list[str]) -> dict[str, Any]:
    return dict(_typer_command().make_context("serve", list(args)).params)


def test_every_option_of_serve_is_a_flag_with_typers_names_and_defaults() -> None:
    params = {p.name: p for p in _typer_command().params if p.name != "target"}
    assert set(params) == set(SERVE)
    for name, flag in SERVE.items():
        param = params[name]
        names = [*param.opts, *param.secondary_opts]
        assert sorted(names) == sorted(flag.names()), name
        assert param.default == flag.default, name
        assert (param.envvar or None) == flag.envvar, name


PLAIN = [
    [],
    ["main.py:app"],
    ["main.py:app", "--no-access-log", "--workers", "1", "--port", "8123"],
    ["--port=0", "main:app", "--host", "::1", "--access-log"],
    ["main", "--grace", "2.5", "--idle-timeout", "0.01", "--threads", "3", "--loop", "asyncio"],
    ["--log-format", "json", "--stack", "prod", "--target", "gcp", "--gcp-project", "p", "--gcp-region", "r"],
    ["app.py", "--apply", "--dashboard", "--grace", "0"],
    ["app.py", "--no-dashboard", "--port", "65535", "--host", ""],
    ["app.py", "--host=", "--log-format=text", "--threads=1"],
]


@pytest.mark.parametrize("args", PLAIN, ids=" ".join)
def test_a_plain_command_line_reads_as_typer_reads_it(args: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BFCTL_WORKERS", raising=False)
    assert serve_arguments(args, {}) == _typer_reads(args)


def test_the_worker_count_comes_from_the_environment_unless_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BFCTL_WORKERS", "3")
    for args in (["main:app"], ["main:app", "--workers", "2"]):
        read = serve_arguments(args, {"BFCTL_WORKERS": "3"})
        assert read == _typer_reads(args)
        assert read is not None and read["workers"] == (3 if len(args) == 1 else 2)


LEFT_TO_TYPER = [
    ["--help"],
    ["-h"],
    ["main:app", "--port", "65536"],  # out of range: Typer says so
    ["main:app", "--port", "eighty"],
    ["main:app", "--port", " 80"],
    ["main:app", "--workers", "0"],
    ["main:app", "--idle-timeout", "0"],
    ["main:app", "--grace", "1e3"],
    ["main:app", "--port", "80", "--port", "81"],  # given twice
    ["main:app", "other:app"],
    ["main:app", "--port"],
    ["main:app", "--host", "--port"],
    ["main:app", "--no-access-log=1"],
    ["main:app", "--unknown"],
    ["main:app", "--"],
]


@pytest.mark.parametrize("args", LEFT_TO_TYPER, ids=" ".join)
def test_anything_else_is_left_to_typer(args: list[str]) -> None:
    assert serve_arguments(args, {}) is None


@pytest.mark.parametrize("value", ["", "two", "0"])
def test_a_worker_count_in_the_environment_that_is_not_one_is_left_to_typer(value: str) -> None:
    assert serve_arguments(["main:app"], {"BFCTL_WORKERS": value}) is None


def test_bfctl_serve_hands_what_it_cannot_read_to_typer(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    """The ``bfctl`` command itself: Typer's usage error, exit 2, and nothing served."""
    code, output = run_bfctl(["serve", "main:app", "--port", "70000"], tmp_path, bfctl_env)
    assert code == 2, output
    assert "Error: Invalid value for '--port'" in output and "65535" in output
