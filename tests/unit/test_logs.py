"""Log lines: the JSON encoder, and the writer thread that keeps every line whole and in order."""

from __future__ import annotations

import io
import json
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from taskflow.domain.model import Lease, Task
from taskflow.entrypoints import logs
from taskflow.entrypoints.log_writer import CHUNK_BYTES, LineWriter
from taskflow.entrypoints.logs import EventLog, JsonFormatter, task_facts


class Writes(io.RawIOBase):
    """A binary stream that keeps each write apart, to check how lines are grouped."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.writes.append(bytes(data))
        return len(data)

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in b"".join(self.writes).splitlines()]


def record(message: str = "task claimed", **extra: Any) -> logging.LogRecord:
    return logging.getLogger("taskflow.test").makeRecord(
        "taskflow.test", logging.INFO, __file__, 1, message, (), None, extra=extra
    )


@pytest.fixture
def stream() -> Writes:
    return Writes()


@pytest.fixture
def writer(stream: Writes) -> Iterator[LineWriter]:
    handler = LineWriter(stream, JsonFormatter())
    yield handler
    handler.close()


@pytest.fixture
def test_log(writer: LineWriter) -> Iterator[logging.Logger]:
    log = logging.getLogger(f"taskflow.test.{uuid.uuid4().hex}")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(writer)
    yield log
    log.removeHandler(writer)


def test_a_line_is_one_json_object_with_the_standard_fields_then_the_extras() -> None:
    line = JsonFormatter().line(record(task_id="t1", attempt=2))
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    entry = json.loads(line)
    assert list(entry) == ["ts", "level", "logger", "event", "task_id", "attempt"]
    assert entry["level"] == "INFO"
    assert entry["logger"] == "taskflow.test"
    assert (entry["event"], entry["task_id"], entry["attempt"]) == ("task claimed", "t1", 2)


@pytest.mark.parametrize(
    "created", [0.0, 1_764_559_000.0, 1_764_559_000.5, 1_764_559_000.999999, 1_764_559_061.25]
)
def test_the_timestamp_is_the_records_time_in_utc_to_the_microsecond(created: float) -> None:
    formatter = JsonFormatter()
    for at in (created, created + 1.000_002, created):  # the cached second changes, and back
        entry = json.loads(formatter.line(logging.makeLogRecord({"created": at, "msg": "x"})))
        stamp = datetime.fromisoformat(entry["ts"])
        assert stamp.utcoffset() == timedelta(0)
        assert abs(stamp - datetime.fromtimestamp(at, UTC)) <= timedelta(microseconds=1)
        assert entry["ts"][:19] == datetime.fromtimestamp(at, UTC).isoformat()[:19]


def test_a_value_json_cannot_hold_is_written_as_text_and_the_line_kept() -> None:
    entry = json.loads(JsonFormatter().line(record(where=object, when=datetime(2026, 1, 1))))
    assert entry["where"] == "<class 'object'>"
    assert entry["when"] == "2026-01-01T00:00:00"


def test_the_traceback_is_in_the_line_and_the_json_escapes_its_newlines() -> None:
    try:
        raise KeyError("k")
    except KeyError:
        failed = logging.getLogger("t").makeRecord(
            "t", logging.WARNING, __file__, 1, "task failed", (), sys.exc_info()
        )
    line = JsonFormatter().line(failed)
    assert line.count(b"\n") == 1
    exception = json.loads(line)["exception"]
    assert exception.startswith("Traceback (most recent call last):")
    assert "test_the_traceback_is_in_the_line" in exception
    assert exception.endswith("KeyError: 'k'")


def test_lines_come_out_in_order_whole_and_in_writes_a_pipe_keeps_whole(
    test_log: logging.Logger, writer: LineWriter, stream: Writes
) -> None:
    for n in range(2000):
        test_log.info("task claimed", extra={"n": n, "pad": "x" * (n % 300)})
    writer.flush()
    assert [entry["n"] for entry in stream.lines()] == list(range(2000))
    for write in stream.writes:
        assert write.endswith(b"\n")
        assert len(write) <= CHUNK_BYTES or write.count(b"\n") == 1
    assert len(stream.writes) < 2000 // 4  # many lines per write, not one each


def test_lines_logged_one_by_one_are_written_many_at_a_time(
    test_log: logging.Logger, writer: LineWriter, stream: Writes
) -> None:
    # As a worker logs: a line now and then, the loop busy in between. The writer must not
    # wake up and write for each of them.
    for n in range(100):
        test_log.info("task claimed", extra={"n": n})
        time.sleep(0.001)
    writer.flush()
    assert [entry["n"] for entry in stream.lines()] == list(range(100))
    assert len(stream.writes) < 50


def test_a_line_longer_than_a_chunk_is_written_whole(
    test_log: logging.Logger, writer: LineWriter, stream: Writes
) -> None:
    test_log.info("before")
    test_log.info("long", extra={"pad": "y" * (3 * CHUNK_BYTES)})
    test_log.info("after")
    writer.flush()
    assert [entry["event"] for entry in stream.lines()] == ["before", "long", "after"]


def test_threads_logging_at_once_keep_each_line_whole_and_each_threads_order(
    test_log: logging.Logger, writer: LineWriter, stream: Writes
) -> None:
    def produce(name: str) -> None:
        for n in range(500):
            test_log.info("line", extra={"producer": name, "n": n, "pad": "z" * (n % 97)})

    threads = [threading.Thread(target=produce, args=(f"t{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.flush()
    entries = stream.lines()  # json.loads fails on a split or interleaved line
    for name in ("t0", "t1", "t2", "t3"):
        assert [e["n"] for e in entries if e["producer"] == name] == list(range(500))


def test_a_traceback_logged_in_another_thread_is_formatted_there(
    test_log: logging.Logger, writer: LineWriter, stream: Writes
) -> None:
    def fail() -> None:
        try:
            raise ValueError("in a handler thread")
        except ValueError:
            test_log.exception("task failed")

    thread = threading.Thread(target=fail)
    thread.start()
    thread.join()
    writer.flush()
    [entry] = stream.lines()
    assert entry["exception"].endswith("ValueError: in a handler thread")


def test_close_writes_what_waits_and_later_lines_are_written_at_once(
    test_log: logging.Logger, writer: LineWriter, stream: Writes
) -> None:
    for n in range(100):
        test_log.info("before close", extra={"n": n})
    writer.close()
    assert len(stream.lines()) == 100
    test_log.info("after close")
    assert stream.lines()[-1]["event"] == "after close"  # no flush: written by the caller


def test_logging_shutdown_writes_every_waiting_line() -> None:
    stream = Writes()
    handler = LineWriter(stream, JsonFormatter())
    log = logging.getLogger(f"taskflow.test.{uuid.uuid4().hex}")
    log.propagate = False
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    for n in range(300):
        log.info("line", extra={"n": n})
    logging.shutdown([lambda: handler])  # type: ignore[list-item]  # what atexit does
    assert [e["n"] for e in stream.lines()] == list(range(300))
    log.removeHandler(handler)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
def test_a_forked_child_writes_its_own_lines_without_a_writer_thread(tmp_path: Any) -> None:
    path = tmp_path / "child.log"
    with path.open("wb", buffering=0) as out:
        handler = LineWriter(out, JsonFormatter())
        log = logging.getLogger(f"taskflow.test.{uuid.uuid4().hex}")
        log.propagate = False
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child: it leaves without any clean-up
            log.info("from the child")
            os._exit(0)
        os.waitpid(pid, 0)
        handler.close()
        log.removeHandler(handler)
    assert [json.loads(line)["event"] for line in path.read_bytes().splitlines()] == [
        "from the child"
    ]


def test_configure_again_stops_the_previous_writer_thread() -> None:
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    try:
        logs.configure("INFO", "json")
        [first] = root.handlers
        logs.configure("WARNING", "console")
        [second] = root.handlers
        assert isinstance(first, LineWriter)
        assert isinstance(second, LineWriter)
        assert not first._thread.is_alive()
        logs.finish()
        assert not second._thread.is_alive()
    finally:
        root.handlers[:] = saved
        root.setLevel(level)


def test_task_facts_name_the_task_its_queue_and_the_worker_holding_it() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    task = Task.new(id=uuid.uuid4(), type="t.echo", payload={}, queue="mail", now=now)
    assert task_facts(task) == {
        "task_id": task.id,
        "type": "t.echo",
        "attempt": 0,
        "queue": "mail",
    }
    held = task.claim(Lease(uuid.uuid4(), "host:1:a", now + timedelta(seconds=30)), now=now)
    assert task_facts(held)["worker_id"] == "host:1:a"
    assert task_facts(task, worker_id="host:2:b")["worker_id"] == "host:2:b"


def test_an_event_line_says_what_the_record_of_the_same_event_would(
    test_log: logging.Logger, writer: LineWriter, stream: Writes
) -> None:
    facts = {"task_id": "t1", "type": "t.echo", "attempt": 1, "queue": "default"}
    EventLog(test_log).info("task claimed", facts)  # no record: only the writer listens
    test_log.info("task claimed", extra=facts)
    writer.flush()
    direct, recorded = stream.lines()
    assert direct.pop("ts")[:19] == recorded.pop("ts")[:19]
    assert direct == recorded


def test_an_event_is_a_record_for_anyone_else_listening(
    test_log: logging.Logger, writer: LineWriter, stream: Writes, caplog: pytest.LogCaptureFixture
) -> None:
    test_log.propagate = True  # caplog listens at the root
    with caplog.at_level(logging.INFO):
        EventLog(test_log).info("task succeeded", {"task_id": "t2"})
    record = caplog.records[0]
    assert (record.getMessage(), record.task_id) == ("task succeeded", "t2")  # type: ignore[attr-defined]
    assert record.funcName == "test_an_event_is_a_record_for_anyone_else_listening"
    writer.flush()
    assert [e["task_id"] for e in stream.lines()] == ["t2"]


def test_an_event_with_a_traceback_is_formatted_from_a_record(
    test_log: logging.Logger, writer: LineWriter, stream: Writes
) -> None:
    try:
        raise RuntimeError("handler broke")
    except RuntimeError as exc:
        failure = exc
    EventLog(test_log).warning("task failed", {"task_id": "t3"}, exc_info=failure)
    writer.flush()
    [entry] = stream.lines()
    assert (entry["level"], entry["task_id"]) == ("WARNING", "t3")
    assert entry["exception"].endswith("RuntimeError: handler broke")


def test_an_event_below_the_level_or_filtered_out_is_not_written(
    test_log: logging.Logger, writer: LineWriter, stream: Writes
) -> None:
    test_log.setLevel(logging.WARNING)
    EventLog(test_log).info("task claimed", {"task_id": "below"})
    test_log.setLevel(logging.INFO)
    test_log.addFilter(lambda record: getattr(record, "task_id", "") != "filtered")
    EventLog(test_log).info("task claimed", {"task_id": "filtered"})
    EventLog(test_log).info("task claimed", {"task_id": "kept"})
    writer.flush()
    assert [e["task_id"] for e in stream.lines()] == ["kept"]
