"""Issue 13, item 5: no code from data.

The lint rule of pyproject.toml refuses pickle, marshal, shelve, yaml.load, eval, exec and
imports by name in every directory `make lint` checks; and a task type, whether a request or
a stored row names it, resolves through the Registry only, never by importing what it names.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from litestar.testing import TestClient

from taskflow.containers import Container
from taskflow.domain.model import TaskError, TaskStatus
from taskflow.entrypoints.http.app import create_app
from tests.unit.test_metrics import container as in_memory
from tests.unit.test_worker import Env, facts, run_one

container = in_memory  # the fixture: the app on the in-memory store and queue

ROOT = Path(__file__).resolve().parents[2]
RUFF = Path(sys.executable).parent / "ruff"

#: Each line is one construct the rule must report, with the rule that reports it.
OFFENDERS = {
    "import pickle": "TID251",
    "import marshal": "TID251",
    "import shelve": "TID251",
    "from _pickle import loads": "TID251",
    "import cloudpickle": "TID251",
    "import importlib": "",
    "import yaml": "",
    "yaml.load(text)": "TID251",
    "yaml.unsafe_load(text)": "TID251",
    "yaml.load(text, Loader=yaml.Loader)": "S506",
    "eval(text)": "S307",
    "exec(text)": "S102",
    "pickle.loads(data)": "S301",
    "marshal.loads(data)": "S302",
    "importlib.import_module(text)": "TID251",
}
SOURCE = "text, data = '1', b''\n" + "\n".join(OFFENDERS) + "\n"


@pytest.mark.parametrize("directory", ["src/taskflow", "tests/unit", "benchmarks", "examples"])
def test_the_lint_rule_reports_every_way_to_run_code_from_data(
    directory: str, tmp_path: Path
) -> None:
    offender = tmp_path / "offender.py"
    offender.write_text(SOURCE)
    # Checked as if it sat in `directory`, so that per-file-ignores there count too.
    found = subprocess.run(
        [
            *(str(RUFF), "check", "--no-cache", "--output-format", "json", "--exit-zero"),
            *("--stdin-filename", f"{directory}/offender_{uuid.uuid4().hex}.py", "-"),
        ],
        input=offender.read_text(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    reported: dict[int, set[str]] = {}
    for finding in json.loads(found.stdout):
        reported.setdefault(finding["location"]["row"], set()).add(finding["code"])
    for row, (line, code) in enumerate(OFFENDERS.items(), start=2):
        if code:
            assert code in reported.get(row, set()), (directory, line, reported.get(row))


@pytest.fixture
def canary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An importable module that leaves a mark when imported; its name, unique to this test."""
    name = f"canary_{uuid.uuid4().hex}"
    mark = tmp_path / "imported"
    (tmp_path / f"{name}.py").write_text(
        f"open({str(mark)!r}, 'w').close()\ndef run(*args):\n    open({str(mark)!r}, 'w').close()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    assert not mark.exists(), "a task type was imported by name"
    assert name not in sys.modules


def names_of_code(module: str) -> list[str]:
    return [
        f"{module}.run",
        f"{module}:run",
        module,
        "os.system",
        "builtins.eval",
        "subprocess.Popen",
        "pickle.loads",
    ]


def test_a_submitted_type_naming_code_is_400_and_imports_nothing(
    canary: str, container: Container
) -> None:
    with TestClient(app=create_app(container)) as client:
        for name in names_of_code(canary):
            answer = client.post("/api/tasks", json={"type": name, "payload": {}})
            assert answer.status_code == 400, (name, answer.text)
            assert answer.json()["errors"][0]["field"] == "type", answer.text
            batch = client.post("/api/tasks/batch", json={"tasks": [{"type": name}]})
            assert batch.status_code == 400, (name, batch.text)


def test_a_stored_error_type_naming_code_is_shown_as_text_only(
    canary: str, container: Container
) -> None:
    worker = container.execution_service()

    async def fail_as(name: str) -> None:
        [claimed] = await worker.claim(["default"], limit=1, timeout=0)
        await worker.fail(claimed, TaskError(name, "planted"))

    with TestClient(app=create_app(container)) as client:
        for name in names_of_code(canary):
            body = {"type": "debug.echo", "payload": {}, "max_retries": 0}
            task_id = client.post("/api/tasks", json=body).json()["id"]
            asyncio.run(fail_as(name))
            shown = client.get(f"/api/tasks/{task_id}").json()
            assert (shown["status"], shown["error"]) == (
                "FAILED",
                {"type": name, "message": "planted"},
            )
            page = client.get(f"/dashboard/tasks/{task_id}")
            assert page.status_code == 200
            assert name in page.text


async def test_a_stored_type_naming_code_fails_its_attempt_and_imports_nothing(
    canary: str,
) -> None:
    env = Env()
    for name in names_of_code(canary):
        task = await env.submit("t.order", {"order_id": "o-1", "qty": 1}, max_retries=0)
        stored = await env.get(task)
        await env.repo.save(replace(stored, type=name, version=stored.version + 1))

        await run_one(env.worker())

        assert facts(await env.get(task)) == (TaskStatus.FAILED, 1, 0, "UnknownTaskType")
    assert env.probe.payloads == []
