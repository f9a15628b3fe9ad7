"""CPU time of process trees during a load run: which process a scenario's work lands in
(our server, or the database it writes to), per request."""

from __future__ import annotations

from pathlib import Path

import psutil


def tree_cpu(pid: int) -> float:
    """User + system seconds of ``pid`` and its living descendants so far."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def postmaster(project: Path) -> int:
    """The pid of the embedded PostgreSQL serving ``project`` (its postmaster.pid file)."""
    from bfctl.providers.local.postgres import EmbeddedPostgres

    server = next((project / ".buildflow").rglob("admin-password")).parent
    return int((EmbeddedPostgres(server).pgdata / "postmaster.pid").read_text().splitlines()[0])
