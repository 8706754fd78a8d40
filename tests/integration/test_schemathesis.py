"""Schemathesis against a real `taskflow api`: no 5xx, and every answer as the document says.

Schemathesis (`schemathesis run`) reads the API's own ``/schema/openapi.json`` from the running
process and generates requests for every operation in it, valid and invalid ones, through its
examples, coverage, fuzzing and stateful phases. Each response must pass five checks: no 5xx, a
status code the operation documents, the documented content type, a body matching the documented
schema, and the documented headers.

Authentication: the ``auth_headers`` fixture makes an API key with every scope (``taskflow keys
create``), waits until the running API refuses a request without it, and every request of the
run carries it as ``Authorization: Bearer``.

Run it alone: ``.venv/bin/pytest -q tests/integration/test_schemathesis.py -p no:cacheprovider``
(it needs the PostgreSQL and Redis of the integration tests). The number of examples per
operation is fixed and generation deterministic, so a run is repeatable; a failure prints
Schemathesis's report, with a ``curl`` command reproducing each finding.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import ROOT, Stack, StackFactory
from tests.integration.processes import run_cli, wait_for

# A schedule firing every second, so the schedule routes and the listings have something to show.
SETTINGS = {"TASKFLOW_TASKS": "tests.integration.periodic_tasks:tasks", "PYTHONPATH": ROOT}
pytestmark = [pytest.mark.integration, pytest.mark.e2e]

SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
)
# Per operation and phase; the whole run stays within a few minutes on two busy cores.
MAX_EXAMPLES = 50


@pytest.fixture(scope="module")
def api(module_stack_factory: StackFactory) -> Stack:
    built = module_stack_factory(**SETTINGS)
    built.start_worker()
    built.start_api()
    return built


@pytest.fixture(scope="module")
def auth_headers(api: Stack) -> dict[str, str]:
    """What every request sends to authenticate: an admin key, made once the API runs."""
    made = run_cli(["keys", "create", "--name", "schemathesis", "--scopes", "admin"], api.env)
    assert made.returncode == 0, made.stderr
    key = dict(line.split(": ", 1) for line in made.stdout.splitlines())["key"]

    def closed() -> bool:
        return httpx.get(f"{api.base_url}/api/tasks", timeout=10).status_code == 401

    wait_for(closed, timeout=30, what="the API to require the key")
    return {"Authorization": f"Bearer {key}"}


def test_every_operation_answers_as_documented(
    api: Stack, auth_headers: dict[str, str], tmp_path: Path
) -> None:
    headers = [arg for name, value in auth_headers.items() for arg in ("-H", f"{name}: {value}")]
    command = [
        SCHEMATHESIS,
        "run",
        f"{api.base_url}/schema/openapi.json",
        *headers,
        f"--checks={','.join(CHECKS)}",
        f"--max-examples={MAX_EXAMPLES}",
        "--generation-deterministic",
        "--suppress-health-check=too_slow,filter_too_much",
        "--workers=1",
        "--request-timeout=30",
        "--no-color",
        f"--report-dir={tmp_path}",
    ]
    run = subprocess.run(
        command, capture_output=True, text=True, timeout=600, cwd=tmp_path, check=False
    )
    assert run.returncode == 0, f"{run.stdout[-20000:]}\n{run.stderr[-4000:]}\n{api.dump_logs()}"
