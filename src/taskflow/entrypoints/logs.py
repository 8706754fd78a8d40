"""Logging set-up: one JSON object per line in production, readable lines in development."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import msgspec

from taskflow.domain.model import Task

# Attributes every LogRecord has; anything else was passed through `extra=` and is ours.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn repeats its message with terminal colours
}
_encoder = msgspec.json.Encoder()


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="microseconds"),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
            **_extras(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _encoder.encode(entry).decode()


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created).strftime("%H:%M:%S.%f")[:-3]
        fields = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        line = f"{stamp} {record.levelname:<7} {record.getMessage()} {fields}".rstrip()
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn's own access log would double every request line; our events carry the facts.
    logging.getLogger("uvicorn.access").disabled = True
    # Alembic announces its dialect and DDL mode at INFO on every start, even with nothing to do.
    logging.getLogger("alembic").setLevel(max(root.level, logging.WARNING))


def task_facts(task: Task) -> dict[str, Any]:
    """What every life-cycle log line says about its task."""
    return {"task_id": str(task.id), "type": task.type, "attempt": task.attempts}


def error_facts(task: Task) -> dict[str, str] | None:
    return None if task.error is None else {"type": task.error.type, "message": task.error.message}
