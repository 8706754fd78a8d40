"""Send an e-mail over SMTP.

    SMTP_HOST=mail.internal SMTP_PORT=25 MAIL_FROM=noreply@example.com \\
    TASKFLOW_TASKS=examples.mailer.tasks:tasks taskflow dev

    taskflow submit mail.send --wait \\
        --payload '{"to": "ana@example.com", "subject": "Welcome", "body": "Hello Ana"}'

Delivery is at-least-once: a worker killed after the SMTP server accepted the message, but
before the task was recorded as done, has its task run again once the lease expires. The
handler below makes that re-run harmless:

1. The Message-ID is made from the task id, so every attempt of a task sends the same one.
2. Before sending, it looks the task up in a durable record (``ledger.py``): a task recorded as
   sent is not sent again.
3. It records the send as soon as the server has accepted the message (250 after DATA), before
   even saying goodbye (QUIT).

The guarantee, honestly: one message per task, except when a worker dies in the short window
between the server's 250 and the record's commit (one SQLite write). Then the next attempt
cannot know whether the message went out and sends it again, with the same Message-ID, so
that mail clients and de-duplicating filters see one message. If a lost e-mail is better than
a duplicate for you, raise ``Fail`` instead where ``state == "sending"``, and look at those
tasks by hand.
"""

from __future__ import annotations

import os
import smtplib
from email.message import EmailMessage
from pathlib import Path

import msgspec

from examples.mailer.ledger import SentLedger
from taskflow import Fail, Registry, TaskContext

tasks = Registry()


class Mail(msgspec.Struct, forbid_unknown_fields=True):
    to: str
    subject: str
    body: str


class SmtpSettings(msgspec.Struct, frozen=True):
    """Where to send from and through, read from the environment when a task runs."""

    host: str
    port: int
    sender: str
    ledger: Path

    @classmethod
    def from_env(cls) -> SmtpSettings:
        return cls(
            host=os.environ.get("SMTP_HOST", "localhost"),
            port=int(os.environ.get("SMTP_PORT", "25")),
            sender=os.environ.get("MAIL_FROM", "taskflow@localhost"),
            ledger=Path(os.environ.get("MAILER_LEDGER", "mailer-ledger.sqlite3")),
        )


# rate_limit: at most 10 sends a second (the mail provider's quota), counted across every worker;
# a burst of submissions waits its turn in the queue instead of being refused by the provider.
@tasks.task("mail.send", max_retries=5, rate_limit="10/s")
def send(payload: Mail, ctx: TaskContext) -> dict[str, object]:
    # A plain `def`: smtplib and sqlite3 block, so taskflow runs this in its thread pool.
    # No `timeout_seconds`: a thread cannot be stopped, so an attempt that timed out would go
    # on talking to the server while its retry sends too. smtplib's `timeout` below bounds
    # each step of the conversation instead.
    settings = SmtpSettings.from_env()
    ledger = SentLedger(settings.ledger)
    task_id = str(ctx.task_id)
    message_id = f"<{task_id}@{settings.sender.rpartition('@')[2] or 'localhost'}>"

    state = ledger.state(task_id)
    if state == "sent":
        # An earlier attempt's message was accepted; its worker died before finishing.
        return {"message_id": message_id, "sent_now": False}
    ledger.mark_sending(task_id, message_id)

    message = EmailMessage()
    message["From"] = settings.sender
    message["To"] = payload.to
    message["Subject"] = payload.subject
    message["Message-ID"] = message_id
    message.set_content(payload.body)

    with smtplib.SMTP(settings.host, settings.port, timeout=30) as smtp:
        try:
            smtp.send_message(message)  # returns once the server has answered 250 to DATA
        except smtplib.SMTPRecipientsRefused as exc:
            raise Fail(f"the server refused {payload.to}") from exc  # retrying will not help
        ledger.mark_sent(task_id)  # before QUIT: the server has the message whatever comes next
    # Any other error (connection refused, a 4xx "try later") raises and is retried with backoff.
    return {"message_id": message_id, "sent_now": True, "resent": state == "sending"}
