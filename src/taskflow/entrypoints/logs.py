"""Logging set-up: one JSON object per line in production, readable lines in development.

A worker logs a line or two per task, so a line must cost it little (issue 10): life-cycle
lines skip the LogRecord when only our handler would read it (`EventLog`), a line is encoded
by msgspec straight to bytes with a timestamp formatted once a second, and it is written to
stderr by a thread of its own (`LineWriter`), which `finish` and ``logging.shutdown`` drain
before a process ends.

Every line written while the API serves a request carries that request's ``trace_id``
(`current_trace_id`; the HTTP middleware in ``http/request_ids.py`` binds it).
"""

from __future__ import annotations

import logging
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import msgspec

from taskflow.domain.attempts import bounded_traceback
from taskflow.domain.flow import Popped
from taskflow.domain.model import Task
from taskflow.domain.redaction import without_passwords
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

#: The tail of a failed attempt's traceback that its log line carries: small enough that the
#: whole line fits in one pipe write (``PIPE_BUF``); the attempt history keeps 16 KiB of it.
LOG_TRACEBACK_BYTES = 3 * 1024

_trace_id: ContextVar[str | None] = ContextVar("taskflow_trace_id", default=None)


def bind_trace_id(trace_id: str) -> Token[str | None]:
    """Put ``trace_id`` on every line this context writes, until `unbind_trace_id`."""
    return _trace_id.set(trace_id)


def unbind_trace_id(token: Token[str | None]) -> None:
    _trace_id.reset(token)


#: While tracing is on: the active span's trace id, asked before the request's (`trace_ids_from`).
_span_trace_ids: list[Callable[[], str | None]] = []


def trace_ids_from(source: Callable[[], str | None] | None) -> None:
    """Let ``source`` (the active span's trace id, while tracing is on) name the trace of the
    lines written within a span, before the request's own id; None: the request's id only."""
    _span_trace_ids[:] = [] if source is None else [source]


def current_trace_id() -> str | None:
    """The trace id the lines written now carry: the active span's while tracing is on, else
    the request's being served, or None."""
    for source in _span_trace_ids:
        found = source()
        if found is not None:
            return found
    return _trace_id.get()


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
        trace_id = current_trace_id()
        if trace_id is not None:
            entry["trace_id"] = trace_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD:
                entry[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = without_passwords(self.formatException(record.exc_info))
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
        }
        trace_id = current_trace_id()
        if trace_id is not None:
            entry["trace_id"] = trace_id
        entry.update(facts)
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
    """For people at a terminal (``taskflow dev``): time, level, event, then ``key=value``
    fields on one line; a traceback follows on the lines below it."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created).strftime("%H:%M:%S.%f")[:-3]
        extras = _extras(record)
        trace = extras.pop("exception", None)
        trace_id = current_trace_id()
        if trace_id is not None and "trace_id" not in extras:
            extras["trace_id"] = trace_id
        fields = " ".join(f"{k}={v}" for k, v in extras.items())
        line = f"{stamp} {record.levelname:<7} {record.getMessage()} {fields}".rstrip()
        if record.exc_info:
            line += "\n" + without_passwords(self.formatException(record.exc_info))
        elif trace is not None:
            line += "\n" + str(trace).rstrip("\n")
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
    # httpx writes each request's whole URL at INFO: a webhook's query string may hold a token
    # (the "webhook delivered" line says what happened without it).
    for noisy in ("alembic", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(root.level, logging.WARNING))


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

    def debug(self, event: str, facts: Mapping[str, Any]) -> None:
        self._log(logging.DEBUG, event, facts)

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

    ``worker_id``: the worker involved, for a task that holds no lease (its attempt ended, its
    lease expired, or a flow limit held it back); otherwise the holder of its lease, if any.
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


def retry_facts(task: Task) -> dict[str, Any]:
    """When a task whose attempt failed runs again: ``retry`` (its number), ``run_at`` and
    ``delay_seconds`` (from the failure)."""
    return {
        "retry": task.retry_count,
        "run_at": task.run_at.isoformat(),
        "delay_seconds": round((task.run_at - task.updated_at).total_seconds(), 3),
    }


def error_facts(task: Task) -> dict[str, str] | None:
    return None if task.error is None else {"type": task.error.type, "message": task.error.message}


def traceback_facts(trace: str | None) -> dict[str, str]:
    """The ``exception`` fact of a failed attempt's line: the tail of its traceback."""
    return {} if trace is None else {"exception": bounded_traceback(trace, LOG_TRACEBACK_BYTES)}


class FirstThrottles:
    """Which throttled attempts this worker has reported: a task held back by a flow limit
    is reported at INFO once per attempt, and at DEBUG each time it is held back again (one
    waiting for a concurrency slot is looked at again every 0.1-0.2 s).

    Bounded: past ``size`` attempts, the oldest is forgotten (and may be reported again).
    """

    def __init__(self, size: int = 20_000) -> None:
        self._size = size
        self._seen: OrderedDict[tuple[UUID, int], None] = OrderedDict()

    def first_of(self, task_id: UUID, attempt: int) -> bool:
        """Whether this is the first time the attempt after ``attempt`` is held back."""
        key = (task_id, attempt)
        if key in self._seen:
            return False
        self._seen[key] = None
        if len(self._seen) > self._size:
            self._seen.popitem(last=False)
        return True
