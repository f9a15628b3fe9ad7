"""Local servers whose project was deleted without ``bfctl destroy``, or whose resources' folders
were: none keeps running.

PostgreSQL: under root the cluster lives outside the project (providers/local/postgres.py says
why), so deleting the project stops nothing: without a sweep the server would run, and its data
stay on disk, until someone found it. As another user the cluster goes with the project, and the
server stops by itself within a minute, once it finds its lock file gone.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import psutil
import pytest

from bfctl.providers.local import LocalProvider
from bfctl.providers.local.buckets import BucketFamily
from bfctl.providers.local.postgres import EmbeddedPostgres
from bfctl.providers.local.pubsub import MODE_VARIABLE
from buildflow.io.gcp import GCPPubSubTopic, GCSBucket

#: Seconds for the server to go: at once under root, within PostgreSQL's one-minute lock file
#: check as another user (a bound on failure only).
STOPPED_WITHIN = 90


def _postmaster(server: EmbeddedPostgres) -> psutil.Process:
    return psutil.Process(int((server.pgdata / "postmaster.pid").read_text().splitlines()[0]))


def test_the_next_server_started_stops_and_deletes_one_whose_project_is_gone(tmp_path: Path) -> None:
    abandoned = EmbeddedPostgres(tmp_path / "deleted-project" / ".buildflow" / "local" / "dev" / "db")
    kept = EmbeddedPostgres(tmp_path / "project" / ".buildflow" / "local" / "dev" / "db")
    try:
        abandoned.initialize()
        abandoned.start()
        postmaster = _postmaster(abandoned)
        shutil.rmtree(tmp_path / "deleted-project")
        assert postmaster.is_running()

        kept.initialize()
        kept.start()
        postmaster.wait(timeout=STOPPED_WITHIN)
        assert not abandoned.server_directory.exists()
        assert kept.running_port() is not None  # the sweep took only the abandoned one
    finally:
        kept.remove()
        abandoned.remove()


def test_the_pubsub_emulator_of_a_deleted_project_stops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The emulator (gcloud, and the JVM it runs) is Google's: its guard stops it."""
    monkeypatch.setenv(MODE_VARIABLE, "emulator")
    provider = LocalProvider(tmp_path / "deleted-project")
    provider.apply(provider.plan([GCPPubSubTopic("my-project", "events")]))
    started = psutil.Process(json.loads(provider.pubsub.service.pid_file.read_text())["pid"])
    emulator = [started, *started.children(recursive=True)]
    assert any("java" in p.name() for p in emulator), emulator

    shutil.rmtree(provider.project_dir)
    _, alive = psutil.wait_procs(emulator, timeout=STOPPED_WITHIN)
    assert not alive


def test_destroy_stops_the_storage_emulator_when_the_buckets_folders_were_deleted_by_hand(tmp_path: Path) -> None:
    provider = LocalProvider(tmp_path)
    provider.apply(provider.plan([GCSBucket("my-project", "uploads")]))
    provider.ensure_running()  # as serving does: the emulator starts
    emulator = psutil.Process(json.loads(BucketFamily(provider).service.pid_file.read_text())["pid"])

    shutil.rmtree(tmp_path / ".buildflow" / "local" / "dev" / "gcs" / "uploads")
    provider.destroy()
    _, alive = psutil.wait_procs([emulator], timeout=STOPPED_WITHIN)
    assert not alive
