"""``make bench``'s sections are independent: one that fails or hangs loses no other's figures."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from bench.sections import Section, run_sections


def _fails(_workdir: Path) -> Any:
    raise RuntimeError("the emulator went away")


def _hangs(workdir: Path) -> Any:
    (workdir / "pid").write_text(str(os.getpid()))
    while True:
        time.sleep(60)


def test_a_failing_and_a_hanging_section_lose_no_other_figures(tmp_path: Path) -> None:
    shown: list[Any] = []
    out = tmp_path / "results.json"
    work = tmp_path / "work"
    work.mkdir()
    sections = [
        Section("first", lambda _dir: {"req/s": 1.0}, shown.append),
        Section("broken", _fails, shown.append),
        Section("hung", _hangs, shown.append),
        Section("last", lambda _dir: {"req/s": 2.0}, shown.append),
    ]
    report: dict[str, Any] = {"machine": "here"}
    run_sections(sections, work, report, out, limit=2.0)
    written = json.loads(out.read_text())
    assert written["first"] == {"req/s": 1.0}
    assert written["last"] == {"req/s": 2.0}
    assert written["broken"] == {"error": "RuntimeError: the emulator went away"}
    assert written["hung"] == {"error": "hung: stopped after 2 s"}
    assert written["machine"] == "here"
    assert shown == [{"req/s": 1.0}, {"req/s": 2.0}]
    hung_pid = int((work / "hung" / "pid").read_text())
    assert not Path(f"/proc/{hung_pid}").exists()


def test_each_section_is_written_as_it_completes(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    work = tmp_path / "work"
    work.mkdir()

    def second(_dir: Path) -> dict[str, Any]:
        return {"written before": json.loads(out.read_text())}

    run_sections(
        [Section("first", lambda _dir: {"n": 1}, print), Section("second", second, print)],
        work,
        {},
        out,
        limit=60.0,
    )
    assert json.loads(out.read_text())["second"] == {"written before": {"first": {"n": 1}}}
