"""Stand-ins for programs the tests cannot install: the Pulumi CLI (``fakes/pulumi``)."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

FAKES = Path(__file__).resolve().parent
EVENTS = FAKES / "events"


def pulumi_path(bin_dir: Path, path: str | None = None) -> str:
    """``path`` (by default this process's PATH) with the stand-in ``pulumi`` first, run by this
    interpreter in isolated mode.

    The launcher skips the shebang's ``python3`` lookup and site-packages, which makes each
    of the dozen calls an operation needs several times faster.
    """
    bin_dir.mkdir(parents=True, exist_ok=True)
    launcher = bin_dir / "pulumi"
    launcher.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -I {shlex.quote(str(FAKES / "pulumi"))} "$@"\n')
    launcher.chmod(0o755)
    return f"{bin_dir}{os.pathsep}{os.environ['PATH'] if path is None else path}"


def pulumi_env(bfctl_env: dict[str, str], bin_dir: Path, **settings: str) -> dict[str, str]:
    """``bfctl_env`` with the stand-in ``pulumi`` first on PATH and ``settings`` (passphrase,
    scenario, log) added: no ``PULUMI_*`` setting of the developer's shell leaks into the test."""
    env = {k: v for k, v in bfctl_env.items() if not k.startswith("PULUMI_")}
    env.update(PATH=pulumi_path(bin_dir), **settings)
    return env


def notes_pulumi_env(bfctl_env: dict[str, str], tmp_path: Path, passphrase: str) -> dict[str, str]:
    """The stand-in ``pulumi`` playing the notes example's first apply, logging its calls to
    ``tmp_path/pulumi-calls.jsonl``."""
    return pulumi_env(
        bfctl_env,
        tmp_path / "bin",
        PULUMI_CONFIG_PASSPHRASE=passphrase,
        FAKE_PULUMI_LOG=str(tmp_path / "pulumi-calls.jsonl"),
        FAKE_PULUMI_SCENARIO=str(EVENTS / "notes_create.json"),
    )
