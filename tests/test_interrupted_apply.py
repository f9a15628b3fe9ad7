"""``bfctl apply`` killed with SIGKILL at several points: the next plan is right, the dead
process's lock is detected, and the next apply converges. Stopped with Ctrl+C, it says so, and
what it half-made is finished by the next apply or removed by destroy."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from support import REPO_ROOT, run_bfctl, wait_until

from bfctl.providers.local.postgres import EmbeddedPostgres

KILL_POINTS = [
    r"… create\s+my-project:notes-db$",  # while the PostgreSQL cluster is being made
    r"✓ created my-project:notes-db ",  # between two resources
    r"… create\s+my-project:notes-db\.notes$",
    r"✓ created my-project:notes-db\.notes ",
]


@pytest.mark.parametrize("kill_at", KILL_POINTS)
def test_apply_killed_then_converges(kill_at: str, tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    project = tmp_path / "notes"
    shutil.copytree(REPO_ROOT / "examples" / "notes", project, ignore=shutil.ignore_patterns(".buildflow"))
    apply = subprocess.Popen(
        [sys.executable, "-m", "bfctl", "apply", "--yes"],
        cwd=project,
        env=bfctl_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert apply.stdout is not None  # stdout=PIPE
    seen = []
    for line in apply.stdout:
        seen.append(line.rstrip())
        if re.search(kill_at, line.rstrip()):
            apply.send_signal(signal.SIGKILL)
            break
    apply.wait(timeout=60)
    apply.stdout.close()
    assert apply.returncode == -signal.SIGKILL, "\n".join(seen)

    code, out = run_bfctl(["plan", "--detailed-exitcode"], project, bfctl_env)
    assert code == 2 and "to create" in out, out  # what is left, no error

    code, out = run_bfctl(["apply", "--yes"], project, bfctl_env)
    assert code == 1 and "lock" in out.lower() and "--break-lock" in out, out  # the dead holder is named

    try:
        code, out = run_bfctl(["apply", "--yes", "--break-lock"], project, bfctl_env)
        assert code == 0, out
        code, out = run_bfctl(["plan", "--detailed-exitcode"], project, bfctl_env)
        assert code == 0 and "3 unchanged" in out, out
    finally:
        assert run_bfctl(["destroy", "--yes", "--break-lock"], project, bfctl_env)[0] == 0


@pytest.mark.parametrize("then", ["destroy", "apply"])
def test_ctrl_c_while_the_server_is_made_says_what_to_do_and_either_command_works(
    then: str, tmp_path: Path, bfctl_env: dict[str, str]
) -> None:
    project = tmp_path / "notes"
    shutil.copytree(REPO_ROOT / "examples" / "notes", project, ignore=shutil.ignore_patterns(".buildflow"))
    server = EmbeddedPostgres(project / ".buildflow" / "local" / "dev" / "my-project_notes-db")
    # in a session of its own, as a terminal's foreground job: Ctrl+C reaches bfctl and the initdb it runs
    apply = subprocess.Popen(
        [sys.executable, "-m", "bfctl", "apply", "--yes"],
        cwd=project,
        env=bfctl_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )

    def making_the_server() -> bool:
        """The server's folder has its admin password: initdb runs next."""
        return server.password_file.exists() or apply.poll() is not None

    try:
        wait_until(making_the_server)
        os.killpg(apply.pid, signal.SIGINT)
        out, _ = apply.communicate(timeout=60)
    finally:
        if apply.poll() is None:
            apply.kill()
    assert apply.returncode == 130, out
    assert "interrupted; run `bfctl apply` again to finish, or `bfctl destroy`" in out

    try:
        if then == "apply":
            code, out = run_bfctl(["apply", "--yes"], project, bfctl_env)
            assert code == 0 and "Apply complete" in out, out
            code, out = run_bfctl(["plan", "--detailed-exitcode"], project, bfctl_env)
            assert code == 0 and "3 unchanged" in out, out
    finally:
        code, out = run_bfctl(["destroy", "--yes"], project, bfctl_env)
    assert code == 0 and "✓ deleted my-project:notes-db " in out, out
    assert not server.directory.exists() and not server.server_directory.exists()
