"""The examples/ task modules, run by real `taskflow api` and `taskflow worker` processes.

The processes find the `examples` package through PYTHONPATH (the repository root), as a
user's own project would be found; `taskflow` does not package the examples.
"""

from __future__ import annotations

import asyncio
import csv
import email
import gzip
import hashlib
import signal
import threading
from collections.abc import Iterator
from datetime import date
from email.message import Message
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from aiosmtpd.controller import Controller

from examples.mailer.ledger import SentLedger
from examples.mailer.tasks import Mail, send
from examples.reports.tasks import SalesReport, sales_csv
from examples.uploads.tasks import Upload, process
from taskflow import Fail, TaskContext
from taskflow.domain.model import Progress
from tests.integration.conftest import FAULT_SETTINGS, FINAL, ROOT, Stack, StackFactory
from tests.integration.processes import Process, base_env, free_port, wait_for, wait_http_ok


class Inbox:
    """An aiosmtpd handler that keeps every message it accepts.

    After ``hold_quit()``, its answer to QUIT waits until ``release`` is set: the client then
    sits between the server's acceptance of the message and the end of the conversation,
    where a test can kill it.
    """

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.quit_arrived = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def hold_quit(self) -> None:
        self.release.clear()

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"

    async def handle_QUIT(self, server: object, session: object, envelope: object) -> str:
        self.quit_arrived.set()
        await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 120)
        return "221 Bye"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    inbox.release.set()
    controller.stop()


def _examples_env(name: str, **settings: str) -> dict[str, str]:
    return {"TASKFLOW_TASKS": f"examples.{name}.tasks:tasks", "PYTHONPATH": ROOT, **settings}


def _stack(factory: StackFactory, name: str, **settings: str) -> Stack:
    stack = factory(**_examples_env(name, **settings))
    stack.start_api()
    return stack


def _attempt_outcomes(stack: Stack, task_id: str) -> list[str | None]:
    response = httpx.get(f"{stack.base_url}/api/tasks/{task_id}/attempts", timeout=10)
    assert response.status_code == 200, response.text
    return [a["outcome"] for a in response.json()["items"]]


def test_mailer_sends_one_message_with_the_task_id_as_message_id(
    stack_factory: StackFactory, smtp: tuple[Inbox, int], tmp_path: Path
) -> None:
    inbox, port = smtp
    stack = _stack(
        stack_factory,
        "mailer",
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(port),
        MAIL_FROM="noreply@shop.example",
        MAILER_LEDGER=str(tmp_path / "ledger.sqlite3"),
    )
    stack.start_worker()
    body = {"to": "ana@example.com", "subject": "Welcome", "body": "Hello Ana"}
    task = stack.submit({"type": "mail.send", "payload": body})

    [done] = stack.wait_status([task["id"]])
    assert done["status"] == "SUCCESS", done
    message_id = f"<{task['id']}@shop.example>"
    assert done["result"] == {"message_id": message_id, "sent_now": True, "resent": False}
    [message] = inbox.messages
    assert message["Message-ID"] == message_id
    assert (message["From"], message["To"], message["Subject"]) == (
        "noreply@shop.example",
        "ana@example.com",
        "Welcome",
    )
    assert str(message.get_payload()).strip() == "Hello Ana"


def test_mailer_rerun_after_worker_sigkill_once_the_server_accepted_sends_nothing_more(
    stack_factory: StackFactory, smtp: tuple[Inbox, int], tmp_path: Path
) -> None:
    inbox, port = smtp
    stack = _stack(
        stack_factory,
        "mailer",
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(port),
        MAILER_LEDGER=str(tmp_path / "ledger.sqlite3"),
        **{k: v for k, v in FAULT_SETTINGS.items() if k not in ("TASKFLOW_TASKS", "PYTHONPATH")},
    )
    inbox.hold_quit()
    doomed = stack.start_worker()
    body = {"to": "bo@example.com", "subject": "Your invoice", "body": "Attached."}
    task = stack.submit({"type": "mail.send", "payload": body})

    # The server has the message and holds its goodbye: the task is still running.
    wait_for(inbox.quit_arrived.is_set, timeout=60, what="the worker to send and say QUIT")
    assert len(inbox.messages) == 1
    assert stack.task(task["id"])["status"] == "PROCESSING"
    doomed.signal(signal.SIGKILL)
    doomed.popen.wait(30)
    inbox.release.set()

    stack.start_worker()  # takes the task over once the dead worker's lease has expired
    [done] = stack.wait_status([task["id"]], timeout=90)
    assert done["status"] == "SUCCESS", done
    assert done["attempts"] == 2
    assert done["result"] == {"message_id": f"<{task['id']}@localhost>", "sent_now": False}
    assert _attempt_outcomes(stack, task["id"]) == ["WORKER_LOST", "SUCCESS"]
    assert len(inbox.messages) == 1


def _context(
    task_id: UUID,
    attempt: int,
    loop: asyncio.AbstractEventLoop,
    progress: list[Progress] | None = None,
) -> TaskContext:
    """What a worker hands a handler; the progress it reports goes to ``progress``."""

    async def record(report: Progress) -> None:
        if progress is not None:
            progress.append(report)

    return TaskContext(
        task_id=task_id,
        type="examples",
        queue="default",
        attempt=attempt,
        token=uuid4(),
        sink=record,
        loop=loop,
    )


async def test_mailer_resends_with_the_same_message_id_when_the_last_send_is_unknown(
    smtp: tuple[Inbox, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An attempt that died between 'sending' and 'sent' left no way to know: send again."""
    inbox, port = smtp
    ledger_path = tmp_path / "ledger.sqlite3"
    monkeypatch.setenv("SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("SMTP_PORT", str(port))
    monkeypatch.setenv("MAILER_LEDGER", str(ledger_path))
    task_id = uuid4()
    message_id = f"<{task_id}@localhost>"
    SentLedger(ledger_path).mark_sending(str(task_id), message_id)
    mail = Mail(to="cy@example.com", subject="Hi", body="Hello")
    loop = asyncio.get_running_loop()  # the worker's: a plain def handler runs beside it

    resent = send(mail, _context(task_id, 2, loop))
    again = send(mail, _context(task_id, 3, loop))

    assert resent == {"message_id": message_id, "sent_now": True, "resent": True}
    assert again == {"message_id": message_id, "sent_now": False}
    assert [m["Message-ID"] for m in inbox.messages] == [message_id]
    assert SentLedger(ledger_path).state(str(task_id)) == "sent"


def test_reports_writes_the_csv_and_reports_progress(
    stack_factory: StackFactory, tmp_path: Path
) -> None:
    out = tmp_path / "reports"
    stack = _stack(stack_factory, "reports", REPORTS_DIR=str(out))
    stack.start_worker()
    payload = {"customer_id": "c-42", "day": "2026-11-30", "rows": 12_345}
    task = stack.submit({"type": "reports.sales_csv", "payload": payload})

    [done] = stack.wait_status([task["id"]])
    assert done["status"] == "SUCCESS", done
    path = out / "sales-c-42-2026-11-30.csv"
    assert done["result"] == {"path": str(path), "rows": 12_345}
    assert done["progress"] == {"fraction": 1.0, "message": "12345 rows written"}
    with path.open(newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 12_345
    assert {r["customer_id"] for r in rows} == {"c-42"}
    assert rows[-1]["order_id"] == "20261130-0012344"
    assert [p.name for p in out.iterdir()] == [path.name]  # no temporary file left


async def test_reports_tells_its_progress_after_each_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPORTS_DIR", str(tmp_path))
    reports: list[Progress] = []
    ctx = _context(uuid4(), 1, asyncio.get_running_loop(), reports)
    report = SalesReport(customer_id="c-1", day=date(2026, 11, 30), rows=12_000)

    result = await sales_csv(report, ctx)

    assert result == {"path": str(tmp_path / "sales-c-1-2026-11-30.csv"), "rows": 12_000}
    assert [(p.fraction, p.message) for p in reports] == [
        (5_000 / 12_000, "5000 of 12000 rows"),
        (10_000 / 12_000, "10000 of 12000 rows"),
        (1.0, "12000 of 12000 rows"),
        (1.0, "12000 rows written"),
    ]


def test_reports_refuses_a_customer_id_that_is_not_a_file_name(
    stack_factory: StackFactory, tmp_path: Path
) -> None:
    stack = _stack(stack_factory, "reports", REPORTS_DIR=str(tmp_path))
    payload = {"customer_id": "../etc", "day": str(date(2026, 11, 30)), "rows": 1}
    response = httpx.post(
        f"{stack.base_url}/api/tasks", json={"type": "reports.sales_csv", "payload": payload}
    )
    assert response.status_code == 400, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["payload.customer_id"]


def test_uploads_checksums_and_compresses_the_same_way_on_every_run(
    stack_factory: StackFactory, tmp_path: Path
) -> None:
    inbox, outbox = tmp_path / "uploads", tmp_path / "processed"
    (inbox / "2026").mkdir(parents=True)
    original = b"".join(b"line %d of the upload\n" % n for n in range(200_000))  # about 4.6 MB
    (inbox / "2026" / "invoice-17.txt").write_bytes(original)
    stack = _stack(stack_factory, "uploads", UPLOADS_DIR=str(inbox), UPLOADS_OUTPUT_DIR=str(outbox))
    stack.start_worker()

    submission = {"type": "uploads.process", "payload": {"path": "2026/invoice-17.txt"}}
    first = stack.submit(submission)
    [done] = stack.wait_status([first["id"]])
    assert done["status"] == "SUCCESS", done
    artefact = outbox / "2026" / "invoice-17.txt.gz"
    compressed = artefact.read_bytes()
    assert done["result"] == {
        "sha256": hashlib.sha256(original).hexdigest(),
        "bytes": len(original),
        "artefact": str(artefact),
        "artefact_bytes": len(compressed),
    }
    assert gzip.decompress(compressed) == original

    again = stack.submit(submission)
    [redone] = stack.wait_status([again["id"]])
    assert redone["result"] == done["result"]
    assert artefact.read_bytes() == compressed
    assert [p.name for p in artefact.parent.iterdir()] == [artefact.name]


async def test_uploads_cancelled_mid_file_leaves_the_old_artefact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPLOADS_DIR", str(tmp_path))
    (tmp_path / "big.bin").write_bytes(b"x" * (3 << 20))  # three blocks
    artefact = tmp_path / "processed" / "big.bin.gz"
    artefact.parent.mkdir()
    artefact.write_bytes(b"the previous run's artefact")
    ctx = _context(uuid4(), 1, asyncio.get_running_loop())
    ctx.mark_cancelled()
    with pytest.raises(Fail, match="cancelled"):
        process(Upload(path="big.bin"), ctx)
    assert artefact.read_bytes() == b"the previous run's artefact"
    assert list(artefact.parent.iterdir()) == [artefact]


def test_uploads_fails_at_once_for_a_path_that_is_not_an_upload(
    stack_factory: StackFactory, tmp_path: Path
) -> None:
    inbox = tmp_path / "uploads"
    (inbox / "processed").mkdir(parents=True)
    (inbox / "processed" / "x.txt").write_text("an artefact, not an upload")
    (tmp_path / "secret.txt").write_text("not for the task")
    stack = _stack(stack_factory, "uploads", UPLOADS_DIR=str(inbox))
    stack.start_worker()
    paths = ["../secret.txt", "missing.txt", "processed/x.txt"]
    ids = [stack.submit({"type": "uploads.process", "payload": {"path": p}})["id"] for p in paths]
    for done in stack.wait_status(ids):
        assert (done["status"], done["attempts"], done["error"]["type"]) == ("FAILED", 1, "Fail")


def test_the_report_example_runs_in_taskflow_dev_too(tmp_path: Path) -> None:
    """SQLite and the in-process queue: the report's progress goes to SQLite."""
    port = free_port()
    env = base_env(**_examples_env("reports", REPORTS_DIR=str(tmp_path / "reports")))
    dev = Process(["dev", "--port", str(port)], env, tmp_path / "dev.log", cwd=tmp_path)
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_http_ok(f"{base_url}/health/ready", timeout=60, process=dev)
        payload = {"customer_id": "c-7", "day": "2026-12-01", "rows": 6_000}
        response = httpx.post(
            f"{base_url}/api/tasks", json={"type": "reports.sales_csv", "payload": payload}
        )
        assert response.status_code == 202, response.text

        def finished() -> dict[str, Any] | None:
            task: dict[str, Any] = httpx.get(
                base_url + response.headers["location"], timeout=5
            ).json()
            return task if task["status"] in FINAL else None

        done = wait_for(finished, timeout=60, what="the report in taskflow dev")
    finally:
        assert dev.stop() == 0, dev.output()[-3000:]
    assert done["status"] == "SUCCESS", done
    assert done["result"]["rows"] == 6_000
    assert done["progress"] == {"fraction": 1.0, "message": "6000 rows written"}
    assert (tmp_path / "taskflow.db").exists()
