"""TASKFLOW_TRACING=on in a real process: the SDK set up from the OTEL_* variables, as
docs/operations.md ("Tracing") shows it, with the console exporter."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx

from tests.integration.processes import (
    Process,
    base_env,
    free_port,
    run_cli,
    wait_for,
    wait_http_ok,
)

PRODUCER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PRODUCER_SPAN = "00f067aa0ba902b7"
# The console exporter writes each span as an indented JSON object, from "{" to "}" alone.
SPAN = re.compile(r"^\{$.*?^\}$", re.MULTILINE | re.DOTALL)


def exported(output: str) -> list[dict[str, Any]]:
    return [json.loads(match) for match in SPAN.findall(output)]


def test_dev_with_tracing_on_prints_one_trace_from_the_request_to_the_handler(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = base_env(TASKFLOW_TRACING="on", OTEL_TRACES_EXPORTER="console", OTEL_SERVICE_NAME="")
    dev = Process(["dev", "--port", str(port)], env, tmp_path / "dev.log", cwd=tmp_path)
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/health/live", timeout=60, process=dev)
        response = httpx.post(
            f"http://127.0.0.1:{port}/api/tasks",
            json={"type": "debug.fail", "payload": {"fail_attempts": 1}},
            headers={"traceparent": f"00-{PRODUCER_TRACE}-{PRODUCER_SPAN}-01"},
        )
        assert response.status_code == 202, response.text
        url = f"http://127.0.0.1:{port}/api/tasks/{response.json()['id']}"
        wait_for(
            lambda: httpx.get(url).json()["status"] == "SUCCESS",
            timeout=60,
            interval=0.1,
            what="the task to succeed on its second attempt",
        )
    finally:
        code = dev.stop()  # the exporter's last batch is written at exit
    output = dev.log_path.read_text(errors="replace")
    assert code == 0, output
    spans = exported(output)
    names = sorted(span["name"] for span in spans)
    assert names == ["dispatch", "dispatch", "execute", "execute", "submit"], output
    assert {span["context"]["trace_id"] for span in spans} == {f"0x{PRODUCER_TRACE}"}
    assert {span["resource"]["attributes"]["service.name"] for span in spans} == {"taskflow"}
    [submit] = [span for span in spans if span["name"] == "submit"]
    assert submit["parent_id"] == f"0x{PRODUCER_SPAN}"
    statuses = sorted(s["status"]["status_code"] for s in spans if s["name"] == "execute")
    assert statuses == ["ERROR", "UNSET"]


def test_tracing_on_with_an_exporter_not_installed_stops_with_one_line(tmp_path: Path) -> None:
    env = base_env(TASKFLOW_TRACING="on", OTEL_TRACES_EXPORTER="zipkin")
    done = run_cli(["dev", "--port", str(free_port())], env, timeout=60, cwd=tmp_path)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("taskflow: error: OTEL_TRACES_EXPORTER: no span exporter named")
