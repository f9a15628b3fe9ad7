"""File change streams on the local target: the watched folder made and removed with care, the
bucket's folder stand-in as a GCSFileChangeStream, and the readers' record under the stack."""

from __future__ import annotations

from pathlib import Path

from bfctl.providers.local import LocalProvider
from buildflow.io.gcp import GCSBucket, GCSFileChangeStream
from buildflow.io.local import LocalFileChangeStream
from buildflow.types.gcp import GCSChangeStreamEventType
from buildflow.types.local import FileChangeStreamEventType


def test_apply_makes_the_watched_folder_and_destroy_removes_it_when_empty(tmp_path: Path) -> None:
    folder = tmp_path / "inbox" / "new"
    stream = LocalFileChangeStream(str(folder), [FileChangeStreamEventType.CREATED, FileChangeStreamEventType.DELETED])
    provider = LocalProvider(tmp_path, "dev")
    plan = provider.plan([stream])
    assert [(c.resource_type, c.action) for c in plan.changes] == [("local.FileChangeStream", "create")]
    outputs = provider.apply(plan)[stream.primitive_id()]
    stack = tmp_path / ".buildflow" / "local" / "dev"
    assert folder.is_dir()
    assert outputs == {
        "engine": "watch",
        "path": str(folder),
        "event_types": ["CREATED", "DELETED"],
        "record": str(stack / "sources" / f"file-changes_{str(folder).replace('/', '_')}.json"),
        "settle_seconds": 2.0,
    }
    assert [c.action for c in provider.plan([stream]).changes] == ["noop"]
    assert Path(outputs["record"]).is_file()  # where the stream starts: the folder's files are not events

    provider.destroy()
    assert not (tmp_path / "inbox").exists()  # both folders were made by apply, and empty
    assert not Path(outputs["record"]).exists()


def test_destroy_keeps_a_folder_with_files_or_one_apply_did_not_make(tmp_path: Path) -> None:
    made, existing = tmp_path / "made", tmp_path / "existing"
    existing.mkdir()
    streams = [LocalFileChangeStream(str(made)), LocalFileChangeStream(str(existing))]
    provider = LocalProvider(tmp_path, "dev")
    provider.apply(provider.plan(streams))
    (made / "data.csv").write_text("a,b\n")

    provider.destroy()
    assert (made / "data.csv").read_text() == "a,b\n"
    assert existing.is_dir()


def test_a_deleted_folder_is_made_again_by_the_next_apply(tmp_path: Path) -> None:
    folder = tmp_path / "drop"
    stream = LocalFileChangeStream(str(folder))
    provider = LocalProvider(tmp_path, "dev")
    provider.apply(provider.plan([stream]))
    folder.rmdir()
    assert [c.action for c in provider.plan([stream]).changes] == ["create"]
    provider.apply(provider.plan([stream]))
    assert folder.is_dir()


def test_a_bucket_change_stream_points_at_the_bucket_folder(tmp_path: Path) -> None:
    bucket = GCSBucket("my-project", "uploads")
    stream = GCSFileChangeStream(
        bucket, [GCSChangeStreamEventType.OBJECT_FINALIZE, GCSChangeStreamEventType.OBJECT_DELETE]
    )
    provider = LocalProvider(tmp_path, "dev")
    plan = provider.plan([bucket, stream])
    assert [(c.resource_type, c.action) for c in plan.changes] == [
        ("gcp.storage.Bucket", "create"),
        ("gcp.storage.Notification", "create"),
    ]
    outputs = provider.apply(plan)
    stack = tmp_path / ".buildflow" / "local" / "dev"
    assert outputs[stream.primitive_id()] == {
        "engine": "folder",
        "path": outputs[bucket.primitive_id()]["path"],
        "bucket": "uploads",
        "event_types": ["OBJECT_DELETE", "OBJECT_FINALIZE"],
        "record": str(stack / "sources" / "gcs___uploads_notifications.json"),
        "settle_seconds": 2.0,
    }
    assert outputs[bucket.primitive_id()]["path"] == str(stack / "gcs" / "uploads")

    provider.destroy()
    assert not stack.exists()
