"""The two line formats (JSON for servers, console for `taskflow dev`), the trace id on them,
the hook tracing replaces, and the bounds on what a life-cycle line carries."""

from __future__ import annotations

import json
import logging
import re
import uuid

from taskflow.entrypoints import logs
from taskflow.entrypoints.logs import ConsoleFormatter, FirstThrottles, JsonFormatter

TRACE = "0af7651916cd43dd8448eb211c80319c"
FACTS = {
    "task_id": uuid.UUID("0b6f2a4e-8c1d-4f0e-9a57-6d1c1f3e2b10"),
    "type": "mail.send",
    "attempt": 2,
    "queue": "mail",
    "worker_id": "host-1:4242:ab12",
    "error": {"type": "SMTPError", "message": "421 try later"},
    "exception": 'Traceback (most recent call last):\n  File "t.py", line 1\nSMTPError: 421\n',
}


def test_a_bound_trace_id_is_on_both_kinds_of_json_line_and_they_agree() -> None:
    formatter = JsonFormatter()
    token = logs.bind_trace_id(TRACE)
    try:
        event = json.loads(formatter.event_line("taskflow.api", logging.INFO, "task x", FACTS))
        record = logging.makeLogRecord(
            {"name": "taskflow.api", "levelno": logging.INFO, "levelname": "INFO"}
            | {"msg": "task x", **FACTS}
        )
        through_logging = json.loads(formatter.line(record))
    finally:
        logs.unbind_trace_id(token)
    assert event["trace_id"] == through_logging["trace_id"] == TRACE
    del event["ts"], through_logging["ts"]
    assert event == through_logging
    assert "trace_id" not in json.loads(formatter.event_line("l", logging.INFO, "e", {}))


def test_an_active_span_names_the_trace_before_the_request_and_every_format_asks_it() -> None:
    spans: list[str | None] = ["from-the-active-span"]
    logs.trace_ids_from(lambda: spans[0])
    token = logs.bind_trace_id(TRACE)
    try:
        line = JsonFormatter().event_line("taskflow.worker", logging.INFO, "task claimed", {})
        assert json.loads(line)["trace_id"] == "from-the-active-span"
        text = ConsoleFormatter().event_line("taskflow.worker", logging.INFO, "task claimed", {})
        assert text.decode().rstrip().endswith("trace_id=from-the-active-span")
        spans[0] = None  # no span active: the request's id
        assert logs.current_trace_id() == TRACE
    finally:
        logs.unbind_trace_id(token)
        logs.trace_ids_from(None)
    assert logs.current_trace_id() is None


def test_the_console_line_is_time_level_event_fields_then_the_traceback_below() -> None:
    token = logs.bind_trace_id(TRACE)
    try:
        text = ConsoleFormatter().event_line(
            "taskflow.worker", logging.WARNING, "task failed", FACTS
        )
    finally:
        logs.unbind_trace_id(token)
    first, *below = text.decode().splitlines()
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d\.\d{3} WARNING task failed task_id=0b6f2a4e-8c1d-4f0e-9a57-6d1c1f3e2b10 "
        r"type=mail\.send attempt=2 queue=mail worker_id=host-1:4242:ab12 "
        r"error=\{'type': 'SMTPError', 'message': '421 try later'\} trace_id=" + TRACE,
        first,
    ), first
    assert below == [
        "Traceback (most recent call last):",
        '  File "t.py", line 1',
        "SMTPError: 421",
    ]


def test_a_console_line_without_a_traceback_is_one_line() -> None:
    facts = {k: v for k, v in FACTS.items() if k not in ("exception", "error")}
    text = ConsoleFormatter().event_line("taskflow.worker", logging.INFO, "task claimed", facts)
    assert text.count(b"\n") == 1
    assert b" INFO    task claimed task_id=" in text


def test_the_logged_traceback_is_the_tail_of_it_within_the_bound() -> None:
    trace = "Traceback (most recent call last):\n" + "  frame\n" * 2000 + "ValueError: end\n"
    logged = logs.traceback_facts(trace)["exception"]
    assert len(logged.encode()) <= logs.LOG_TRACEBACK_BYTES
    assert logged.endswith("ValueError: end\n")
    assert logs.traceback_facts("short\n") == {"exception": "short\n"}
    assert logs.traceback_facts(None) == {}


def test_a_throttled_attempt_is_first_once_and_the_memory_stays_bounded() -> None:
    seen = FirstThrottles(size=2)
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    assert seen.first_of(a, 0)
    assert not seen.first_of(a, 0)
    assert seen.first_of(a, 1)  # its next attempt, held back again: news again
    assert seen.first_of(b, 0)
    assert seen.first_of(c, 0)  # over the bound: the oldest is forgotten
    assert seen.first_of(a, 0)
