"""Logging set-up: one JSON object per line in production, readable lines in development.

A worker logs a line or two per task, so a line must cost it little (issue 10): life-cycle
lines skip the LogRecord when only our handler would read it (`EventLog`), a line is encoded
by msgspec straight to bytes with a timestamp formatted once a second, and it is written to
stderr by a thread of its own (`LineWriter`), which `finish` and ``logging.shutdown`` drain
before a process ends.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec

from taskflow.domain.flow import Popped
from taskflow.domain.model import Task
from taskflow.entrypoints.log_writer import LineWriter

# Attributes every LogRecord has; anything else was passed through `extra=` and is ours.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn repeats its message with terminal colours
}
# A value msgspec cannot encode is written as its str(), not lost with its line.
_encoder = msgspec.json.Encoder(enc_hook=str)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    """``ts``, ``level``, ``logger``, ``event``, the record's extra fields, ``exception``."""

    def __init__(self) -> None:
        super().__init__()
        self._second: tuple[int, str] = (-1, "")  # the last whole second seen, formatted

    def line(self, record: logging.LogRecord) -> bytes:
        """The record as one line of JSON, its newline included."""
        entry: dict[str, Any] = {
            "ts": self._timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD:
                entry[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return _encoder.encode(entry) + b"\n"

    def event_line(self, logger: str, level: int, event: str, facts: Mapping[str, Any]) -> bytes:
        """The line ``line`` makes of a record of ``event`` with ``facts``, now."""
        entry = {
            "ts": self._timestamp(time.time()),
            "level": logging.getLevelName(level),
            "logger": logger,
            "event": event,
            **facts,
        }
        return _encoder.encode(entry) + b"\n"

    def format(self, record: logging.LogRecord) -> str:
        return self.line(record)[:-1].decode()

    def _timestamp(self, created: float) -> str:
        """``created`` in ISO 8601, UTC, to the microsecond: as ``isoformat`` writes it."""
        second = int(created)
        cached, text = self._second
        if second != cached:
            text = datetime.fromtimestamp(second, UTC).isoformat()[:19]
            self._second = (second, text)
        return f"{text}.{int((created - second) * 1_000_000):06d}+00:00"


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created).strftime("%H:%M:%S.%f")[:-3]
        fields = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        line = f"{stamp} {record.levelname:<7} {record.getMessage()} {fields}".rstrip()
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line

    def line(self, record: logging.LogRecord) -> bytes:
        return (self.format(record) + "\n").encode(errors="backslashreplace")

    def event_line(self, logger: str, level: int, event: str, facts: Mapping[str, Any]) -> bytes:
        levelname = logging.getLevelName(level)
        fields = {"name": logger, "levelno": level, "levelname": levelname, "msg": event}
        return self.line(logging.makeLogRecord({**facts, **fields}))


def configure(level: str, fmt: str) -> None:
    formatter = JsonFormatter() if fmt == "json" else ConsoleFormatter()
    handler = LineWriter(sys.stderr, formatter)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in root.handlers:
        if isinstance(old, LineWriter):
            old.close()  # its lines out and its thread stopped before the new one takes over
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn's own access log would double every request line; our events carry the facts.
    logging.getLogger("uvicorn.access").disabled = True
    # Alembic announces its dialect and DDL mode at INFO on every start, even with nothing to do.
    logging.getLogger("alembic").setLevel(max(root.level, logging.WARNING))


def finish() -> None:
    """Write every line still waiting; from now on each line is written as it is logged.

    For a process about to end, which may not give the writer thread another turn: uvicorn,
    say, ends an API process by raising the signal it caught again, and no exit handler runs.
    """
    for handler in logging.getLogger().handlers:
        if isinstance(handler, LineWriter):
            handler.close()


class EventLog:
    """Life-cycle lines (a task claimed, succeeded, failed…): one or two per task at least,
    so they must cost the worker little.

    When nothing but the `LineWriter` of `configure` would see the record, the line is
    encoded and queued without making a LogRecord, at a fraction of the cost; a test's
    caplog, a handler or a filter someone added, or a traceback to format, gets a record
    through `logging` as usual. The line written is the same either way.
    """

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger

    def info(self, event: str, facts: Mapping[str, Any]) -> None:
        self._log(logging.INFO, event, facts)

    def warning(
        self, event: str, facts: Mapping[str, Any], *, exc_info: BaseException | None = None
    ) -> None:
        self._log(logging.WARNING, event, facts, exc_info)

    def _log(
        self,
        level: int,
        event: str,
        facts: Mapping[str, Any],
        exc_info: BaseException | None = None,
    ) -> None:
        if self.logger.disabled or not self.logger.isEnabledFor(level):
            return
        writer = None if exc_info is not None else _sole_writer(self.logger, level)
        if writer is None:
            # stacklevel: the record names the caller of info() or warning(), not this line.
            self.logger.log(level, event, exc_info=exc_info, extra=facts, stacklevel=3)
        else:
            writer.write_event(self.logger.name, level, event, facts)


def _sole_writer(logger: logging.Logger, level: int) -> LineWriter | None:
    """The one handler a record of ``logger`` at ``level`` would reach, if it is ours and
    no filter is on the way; otherwise None."""
    found = None
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters:
            return None
        for handler in current.handlers:
            if not isinstance(handler, LineWriter) or handler.filters or level < handler.level:
                return None
            if found is not None:
                return None
            found = handler
        if not current.propagate:
            break
        current = current.parent
    return found


def task_facts(task: Task | Popped, *, worker_id: str | None = None) -> dict[str, Any]:
    """What every life-cycle log line says about its task.

    ``worker_id``: the worker that ran the attempt, for a task whose lease is already gone;
    otherwise the holder of its lease, if it has one.
    """
    facts: dict[str, Any] = {
        "task_id": task.id,  # a UUID: msgspec writes it faster than str() would
        "type": task.type,
        "attempt": task.attempts,
        "queue": task.queue,
    }
    lease = task.lease if isinstance(task, Task) else None  # a Popped one is not held
    holder = worker_id or (None if lease is None else lease.worker_id)
    if holder is not None:
        facts["worker_id"] = holder
    return facts


def error_facts(task: Task) -> dict[str, str] | None:
    return None if task.error is None else {"type": task.error.type, "message": task.error.message}
