"""A stream's failing message comes again later each time, without holding the others back, and
a file change stream starts where it was applied: files already in the folder are not events, a
file that keeps failing is set aside (named in the log, counted in ``/_bf/metrics``, never
delivered again unless it changes). Flows are served by a real ``bfctl serve``; Pub/Sub on
Google's emulator and on the durable local log."""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import shutil
from pathlib import Path

import pytest
from support import REPO_ROOT, run_bfctl, serving, wait_until, write

from bfctl.runtime.redelivery import BASE_VARIABLE, MAX_VARIABLE, SUMMARY_SECONDS, Backoff, FailureLog
from bfctl.runtime.sources import Delivery
from buildflow.storage.log_subscription import LogSubscription, create

CLASSIFY_FLOW = """\
import dataclasses
from pathlib import Path

from buildflow import Flow
from buildflow.io.local import File, LocalFileChangeStream
from buildflow.types.portable import FileChangeEvent, FileFormat


@dataclasses.dataclass
class Label:
    image: str
    label: str


app = Flow()


@app.consumer(source=LocalFileChangeStream(file_path="images"), sink=File("rows/labels.csv", FileFormat.CSV))
def classify(event: FileChangeEvent) -> Label:
    name = Path(event.file_path).name
    print(f"delivered {name}", flush=True)
    if event.blob == b"broken":
        raise ValueError(f"cannot classify {name}")
    return Label(name, "cat")
"""

#: Retries a few milliseconds apart, so ten attempts take well under a second.
FAST_RETRIES = {BASE_VARIABLE: "0.02", MAX_VARIABLE: "0.1"}


def delivered(output: str, name: str) -> int:
    return output.splitlines().count(f"delivered {name}")


def given_up(server: object, consumer: str) -> float:
    _, body = server.get("/_bf/metrics")  # type: ignore[attr-defined]
    for line in body.splitlines():
        if line.startswith("buildflow_consumer_messages_given_up_total{") and f'consumer="{consumer}"' in line:
            return float(line.split()[-1])
    raise AssertionError(f"no given-up count for {consumer}:\n{body}")


def test_a_file_stream_starts_where_it_was_applied_and_sets_a_failing_file_aside(
    tmp_path: Path, bfctl_env: dict[str, str]
) -> None:
    write(tmp_path / "flow.py", CLASSIFY_FLOW)
    images = tmp_path / "images"
    images.mkdir()
    (images / "README.md").write_text("the images to classify")
    (images / "old.jpg").write_bytes(b"jpeg")
    code, output = run_bfctl(["apply", "flow.py", "--yes"], tmp_path, bfctl_env)
    assert code == 0, output
    env = {**bfctl_env, **FAST_RETRIES}

    with serving(["flow.py", "--port", "0", "--no-access-log"], tmp_path, env) as server:
        (images / "bad.jpg").write_bytes(b"broken")
        (images / "new.jpg").write_bytes(b"jpeg")
        server.wait_for(lambda line: line == "delivered new.jpg")
        server.wait_for(lambda line: "set aside" in line or line == "delivered bad.jpg", count=11)
        assert given_up(server, "classify") == 1
        assert server.stop() == 0
    first = server.output
    assert delivered(first, "bad.jpg") == 10, first  # then set aside
    assert delivered(first, "new.jpg") == 1
    assert delivered(first, "README.md") == delivered(first, "old.jpg") == 0  # there before apply
    failures = [line for line in first.splitlines() if "a message failed" in line]
    assert len(failures) == 2, failures  # the first failure and the last, not one per delivery
    assert "bad.jpg, delivery 1)" in failures[0] and "ValueError: cannot classify bad.jpg" in failures[0]
    assert "bad.jpg, delivery 10, the last): set aside, not delivered again" in failures[1], failures[1]

    (images / "late.jpg").write_bytes(b"jpeg")  # while no server runs
    with serving(["flow.py", "--port", "0", "--no-access-log"], tmp_path, env) as server:
        server.wait_for(lambda line: line == "delivered late.jpg")
        (images / "bad.jpg").write_bytes(b"fixed")  # a new version: an event again
        server.wait_for(lambda line: line == "delivered bad.jpg")
        assert server.stop() == 0
    second = server.output
    assert [line for line in second.splitlines() if line.startswith("delivered ")] == [
        "delivered late.jpg",  # the set-aside version did not come back with it
        "delivered bad.jpg",
    ], second
    labels = sorted(row["image"] for path in (tmp_path / "rows").glob("*.csv") for row in csv.DictReader(path.open()))
    assert labels == ["bad.jpg", "late.jpg", "new.jpg"]


REFUSED_FLOW = """\
import dataclasses

from buildflow import Flow
from buildflow.io.gcp import GCPPubSubSubscription, GCPPubSubTopic
from buildflow.io.local import File
from buildflow.types.portable import FileFormat


@dataclasses.dataclass
class Msg:
    n: int


topic = GCPPubSubTopic("local-project", "readings")
subscription = GCPPubSubSubscription("local-project", "readings-sub").options(topic=topic, ack_deadline_seconds=10)
app = Flow()


@app.collector("/publish", sink=topic)
def publish(msg: Msg) -> Msg:
    return msg


@app.consumer(subscription, File("out/stored.json", FileFormat.JSON))
def store(msg: Msg) -> Msg:
    print(f"handling {msg.n}", flush=True)
    if msg.n == 1:
        return Msg(n="not a number")  # the sink refuses this row, every time
    print(f"stored {msg.n}", flush=True)
    return msg
"""


@pytest.mark.parametrize("pubsub", ["emulator", "log"])
def test_a_message_whose_rows_are_refused_comes_again_later_each_time(
    tmp_path: Path, bfctl_env: dict[str, str], pubsub: str, destroyed: list[Path]
) -> None:
    write(tmp_path / "flow.py", REFUSED_FLOW)
    env = {**bfctl_env, "BFCTL_LOCAL_PUBSUB": pubsub}
    destroyed.append(tmp_path)  # the Pub/Sub emulator that --apply started

    def publish(server: object, n: int) -> None:
        body = json.dumps({"n": n}).encode()
        assert server.call("POST", "/publish", body) == (200, '{"success":true}')  # type: ignore[attr-defined]

    with serving(["flow.py", "--apply", "--port", "0", "--no-access-log"], tmp_path, env) as server:
        publish(server, 1)
        server.wait_for(lambda line: line == "handling 1")
        for n in range(2, 32):  # thirty round trips: the others are not held back meanwhile
            publish(server, n)
            server.wait_for(lambda line, n=n: line == f"stored {n}")  # type: ignore[misc]
        window = server.lines[: server.lines.index("stored 31")]
        server.wait_for(lambda line: line == "handling 1", count=3)  # it does come again, later
        assert server.stop() == 0
    # redelivered at once, it would come in every round trip; 1 s, 2 s, 4 s... apart, a few times
    assert window.count("handling 1") <= 6, "\n".join(window[-40:])
    failures = [line for line in server.lines if "a message failed" in line]
    assert len(failures) == 1, failures[:5]  # once in full; repeats are counted once a minute
    assert "(message " in failures[0] and "delivery 1) and will be retried in 1s" in failures[0], failures[0]
    assert "a returned row does not fit the sink" in failures[0], failures[0]


def test_a_nacked_log_message_waits_its_delay_while_the_others_are_taken(tmp_path: Path) -> None:
    log = tmp_path / "topic.jsonl"
    log.touch()
    record = tmp_path / "sub.json"
    create(record, log)
    log.write_bytes(b"".join(json.dumps({"n": n}).encode() + b"\n" for n in (1, 2, 3)))
    now = [1000.0]
    sub = LogSubscription(record, log, ack_deadline_seconds=30, clock=lambda: now[0])

    def take() -> list[tuple[int, int]]:
        return [(json.loads(lease.data)["n"], lease.attempt) for lease in sub.take(10)]

    first = sub.take(1)
    sub.nack([first[0].ack_id], Backoff(base=5, most=60).delay)
    assert take() == [(2, 1), (3, 1)]  # the failed one waits, the others do not
    now[0] += 4.9
    assert take() == []
    now[0] += 0.2
    assert take() == [(1, 2)]


def test_backoff_doubles_up_to_its_cap_and_gives_up_after_the_last_attempt() -> None:
    backoff = Backoff(base=1, most=60, max_attempts=10)
    assert [backoff.delay(a) for a in range(1, 11)] == [1, 2, 4, 8, 16, 32, 60, 60, 60, 0]
    assert [backoff.exhausted(a) for a in (1, 9, 10, 11, None)] == [False, False, True, True, False]
    assert Backoff().exhausted(1_000_000) is False  # no limit: retried as long as it lives


def test_backoff_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BASE_VARIABLE, "0.5")
    monkeypatch.setenv(MAX_VARIABLE, "4")
    assert [Backoff.from_env().delay(a) for a in (1, 2, 3, 4, 5)] == [0.5, 1, 2, 4, 4]
    monkeypatch.setenv(BASE_VARIABLE, "soon")
    with pytest.raises(ValueError, match="BFCTL_RETRY_BASE_SECONDS must be a positive number of seconds"):
        Backoff.from_env()


@dataclasses.dataclass
class Clock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_failure_log_names_each_message_once_then_counts_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    failures = FailureLog("consumer `c`", clock)
    failures.backoff = Backoff(base=1, most=60)
    with caplog.at_level(logging.WARNING, logger="buildflow.runtime"):
        for attempt in range(1, 1001):
            for key in ("a.jpg", "b.jpg"):
                failures.failed(Delivery(f"{key}-{attempt}", delivery_attempt=attempt, key=key), "it broke")
            clock.now += 0.1  # 100 s in all
        failures.handled([Delivery("a.jpg-1001", key="a.jpg")])
        failures.failed(Delivery("a.jpg-1002", delivery_attempt=1, key="a.jpg"), "it broke again")
    lines = [r.getMessage() for r in caplog.records]
    assert lines[:2] == [
        "consumer `c`: a message failed (a.jpg, delivery 1) and will be retried in 1s: it broke",
        "consumer `c`: a message failed (b.jpg, delivery 1) and will be retried in 1s: it broke",
    ]
    assert len(lines) == 4, lines
    assert lines[2].startswith("consumer `c`: ") and " more failed deliveries of 2 messages in the last 60s" in lines[2]
    assert lines[3].startswith("consumer `c`: a message failed (a.jpg, delivery 1)")  # news again after a success
    assert SUMMARY_SECONDS == 60


def test_the_watch_example_sets_a_file_that_is_not_json_aside_until_it_is_written_again(
    tmp_path: Path, bfctl_env: dict[str, str]
) -> None:
    project = tmp_path / "watch"
    local = shutil.ignore_patterns("__pycache__", ".buildflow", "incoming", "rows")  # what a run there left
    shutil.copytree(REPO_ROOT / "examples" / "watch", project, ignore=local)
    (project / "incoming").mkdir()
    (project / "incoming" / "README.md").write_text("Drop JSON files here.")  # not JSON: read, it would fail
    code, output = run_bfctl(["apply", "--yes"], project, bfctl_env)
    assert code == 0, output

    def rows() -> list[str]:
        return sorted(r["sensor"] for path in (project / "rows").glob("*.csv") for r in csv.DictReader(path.open()))

    with serving(["--port", "0", "--no-access-log"], project, {**bfctl_env, **FAST_RETRIES}) as server:
        (project / "incoming" / "broken.json").write_text("not json")
        (project / "incoming" / "good.json").write_text(json.dumps([{"sensor": "a", "value": 1}]))
        server.wait_for(lambda line: "broken.json, delivery 10, the last): set aside" in line)
        assert given_up(server, "read_file") == 1
        (project / "incoming" / "broken.json").write_text(json.dumps([{"sensor": "b", "value": 2}]))
        wait_until(lambda: rows() == ["a", "b"])
        assert server.stop() == 0
    failures = [line for line in server.lines if "read_file" in line and "failed" in line]
    assert len(failures) == 2 and "broken.json, delivery 1)" in failures[0], failures
    assert "README.md" not in server.output
