"""``@tasks.task(...)`` gives a DeclaredTask: still the handler when called, and a typed
``enqueue`` whose payload is checked by mypy before the program runs and by the registry
before anything is sent."""

from __future__ import annotations

import asyncio
import inspect
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Annotated, Any

import msgspec
import pytest

import taskflow
from taskflow import AsyncClient, Client, DeclaredTask, InvalidSubmission, Registry, TaskContext
from tests.unit.client_fakes import FakeTime, ScriptedApi, answer, task_json

tasks = Registry()


class Invoice(msgspec.Struct):
    order_id: str
    amount_cents: Annotated[int, msgspec.Meta(ge=0)]


@tasks.task("billing.send_invoice", queue="billing")
async def send_invoice(payload: Invoice, ctx: TaskContext) -> dict[str, str]:
    """Sends the invoice."""
    return {"sent": payload.order_id}


@tasks.task("reports.build")
def build_report(payload: dict[str, Any], ctx: TaskContext) -> int:
    return len(payload)


def scripted() -> tuple[Client, ScriptedApi]:
    api = ScriptedApi([answer(202, task_json(type="billing.send_invoice"))])
    return Client("http://api.test", transport=api.transport, sleep=FakeTime().sleep), api


def test_the_declared_task_is_still_the_handler() -> None:
    assert isinstance(send_invoice, DeclaredTask)
    assert send_invoice.name == "billing.send_invoice"
    assert (send_invoice.__name__, send_invoice.__doc__) == ("send_invoice", "Sends the invoice.")
    ctx: Any = object()
    assert asyncio.run(send_invoice(Invoice("A-1", 5), ctx)) == {"sent": "A-1"}
    assert build_report({"a": 1}, ctx) == 1


def test_the_worker_still_gets_the_plain_function() -> None:
    definition = tasks.get("billing.send_invoice")
    assert definition is not None
    assert definition.handler is send_invoice.__wrapped__  # type: ignore[attr-defined]
    assert inspect.iscoroutinefunction(definition.handler)
    assert (definition.is_async, definition.payload_type) == (True, Invoice)


def test_one_function_may_be_declared_in_a_second_registry() -> None:
    other = Registry()
    again = other.task("billing.resend")(send_invoice)
    definition = other.get("billing.resend")
    assert definition is not None
    assert definition.handler is send_invoice.__wrapped__  # type: ignore[attr-defined]
    assert again.definition.payload_type is Invoice


def test_enqueue_submits_the_payload_with_the_options() -> None:
    client, api = scripted()
    task = send_invoice.enqueue(Invoice("A-17", 990), client=client, priority=7)
    assert task.type == "billing.send_invoice"
    assert api.bodies() == [
        {
            "type": "billing.send_invoice",
            "payload": {"order_id": "A-17", "amount_cents": 990},
            "priority": 7,
        }
    ]


def test_enqueue_async_submits_through_the_async_client() -> None:
    api = ScriptedApi([answer(202, task_json())])
    client = AsyncClient("http://api.test", transport=api.transport)
    asyncio.run(build_report.enqueue_async({"rows": 3}, client=client, idempotency_key="r-1"))
    assert api.bodies()[0]["payload"] == {"rows": 3}
    assert api.requests[0].headers["Idempotency-Key"] == "r-1"


def test_a_payload_of_another_kind_is_a_type_error_and_nothing_is_sent() -> None:
    client, api = scripted()
    with pytest.raises(
        TypeError, match=r"^billing\.send_invoice: the payload must be Invoice, got str$"
    ):
        send_invoice.enqueue("A-17", client=client)  # type: ignore[arg-type]
    assert api.requests == []


def test_a_payload_off_its_schema_is_refused_as_the_api_would_and_nothing_is_sent() -> None:
    client, api = scripted()
    with pytest.raises(InvalidSubmission) as refused:
        send_invoice.enqueue(Invoice("A-17", -1), client=client)
    assert refused.value.status == 400
    assert [e.field for e in refused.value.errors] == ["payload.amount_cents"]
    assert "must be at least 0" in refused.value.errors[0].message
    with pytest.raises(InvalidSubmission):
        send_invoice.enqueue({"order_id": "A-17"}, client=client)  # type: ignore[arg-type]
    assert api.requests == []


def test_mypy_refuses_a_payload_of_the_wrong_type(tmp_path: Path) -> None:
    common = """
        import msgspec
        from taskflow import Client, Registry, TaskContext

        tasks = Registry()

        class Invoice(msgspec.Struct):
            order_id: str

        @tasks.task("billing.send_invoice")
        async def send_invoice(payload: Invoice, ctx: TaskContext) -> None: ...

        client = Client()
    """
    (tmp_path / "right.py").write_text(
        textwrap.dedent(common)
        + 'send_invoice.enqueue(Invoice("A-17"), client=client, priority=3)\n'
    )
    (tmp_path / "wrong.py").write_text(
        textwrap.dedent(common) + 'send_invoice.enqueue({"order_id": "A-17"}, client=client)\n'
    )
    (tmp_path / "mypy.ini").write_text("[mypy]\n")
    checked = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            "mypy.ini",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--follow-imports",
            "silent",
            "right.py",
            "wrong.py",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"MYPYPATH": str(Path(taskflow.__file__).parents[1]), "PATH": ""},
        timeout=240,
        check=False,
    )
    errors = [line for line in checked.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 1, checked.stdout + checked.stderr
    assert errors[0].startswith('wrong.py:14: error: Argument 1 to "enqueue" of "DeclaredTask"')
    assert '"Invoice"' in errors[0]
