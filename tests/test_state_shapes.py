"""A state file whose resources hold values of the wrong type (edited by hand, merged badly)
is refused on load with the one-sentence recovery message a corrupt file gets, by the real CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from support import run_bfctl, write

FLOW = """
from buildflow import Flow
from buildflow.io.gcp import GCSBucket

app = Flow()
app.manage(*[GCSBucket("my-project", name) for name in NAMES])
"""
STATE = Path(".buildflow/state/local-dev.json")
BACKUP = Path(".buildflow/state/local-dev.json.bak")

# (what is changed, the value it gets, the reason the message gives)
SHAPES: list[tuple[str, Any, str]] = [
    ("resource_type", [], "resource 1 (gcs://first) has a list as `resource_type`, not a string"),
    ("resource_id", 5, "resource 1 has a number as `resource_id`, not a string"),
    ("outputs", None, "resource 1 (gcs://first) has a null as `outputs`, not an object"),
    ("outputs", [], "resource 1 (gcs://first) has a list as `outputs`, not an object"),
    ("properties", "x", "resource 1 (gcs://first) has a string as `properties`, not an object"),
    ("private", [1], "resource 1 (gcs://first) has a list as `private`, not an object"),
    ("parents", "gcs://x", "resource 1 (gcs://first) has a string as `parents`, not a list of strings"),
    ("parents", [["a"]], "resource 1 (gcs://first) has a list as an item of `parents`, not a string"),
    (
        "secret_properties",
        {"a": 1},
        "resource 1 (gcs://first) has an object as `secret_properties`, not a list of strings",
    ),
    ("resource_type", None, "resource 1 (gcs://first) has a null as `resource_type`, not a string"),
    ("resource", "gcs://first", "resource 1 is a string, not an object"),
    ("resource", None, "resource 1 is a null, not an object"),
    ("resource", {"resource_id": "gcs://first"}, "resource 1 (gcs://first) has no `resource_type`"),
    ("target", 7, "its `target` is a number, not a string"),
    ("stack", ["dev"], "its `stack` is a list, not a string"),
    ("serial", True, "its `serial` is a boolean, not a number"),
]


def _damaged(good: dict[str, Any], field: str, value: Any) -> dict[str, Any]:
    data = json.loads(json.dumps(good))
    if field in ("target", "stack", "serial"):
        data[field] = value
    elif field == "resource":
        data["resources"][0] = value
    else:
        data["resources"][0][field] = value
    return data


def test_a_state_file_with_wrong_types_gets_the_recovery_message(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    write(tmp_path / "main.py", FLOW.replace("NAMES", '["first"]'))
    assert run_bfctl(["apply", "main.py", "--yes"], tmp_path, bfctl_env)[0] == 0
    write(tmp_path / "main.py", FLOW.replace("NAMES", '["first", "second"]'))
    assert run_bfctl(["apply", "main.py", "--yes"], tmp_path, bfctl_env)[0] == 0  # a backup beside it
    good = json.loads((tmp_path / STATE).read_text())

    for field, value, reason in SHAPES:
        (tmp_path / STATE).write_text(json.dumps(_damaged(good, field, value)))
        code, out = run_bfctl(["plan", "main.py"], tmp_path, bfctl_env)

        assert code == 1, (field, value, out)
        assert out.startswith(f"Error: The state file {STATE} cannot be read ({reason}); "), (field, value, out)
        assert f"copy it over the state file to recover (`cp {BACKUP} {STATE}`)" in out, out
        assert len(out.strip().splitlines()) == 1 and "Traceback" not in out, out

    (tmp_path / BACKUP).replace(tmp_path / STATE)  # the advice, followed
    code, out = run_bfctl(["plan", "main.py", "--detailed-exitcode"], tmp_path, bfctl_env)
    assert code == 2 and "create    gcp.storage.Bucket  gcs://second" in out, out
    assert run_bfctl(["destroy", "--yes"], tmp_path, bfctl_env)[0] == 0
