"""HttpWebhookSender against a local receiver: signed per Standard Webhooks (checked with the
known vector and with the snippet docs/api.md prints), and addresses checked at each try."""

from __future__ import annotations

import base64
import ipaddress
import time

from taskflow.adapters.clock import SystemClock
from taskflow.adapters.webhooks import HttpWebhookSender, signature
from taskflow.domain.callbacks import CallbackHosts, IpAddress
from tests.webhook_receiver import Receiver, documented_verify

# The example of the Standard Webhooks specification (and of its reference libraries).
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
LOCAL = CallbackHosts.parse(["127.0.0.1"])


def test_the_signature_matches_the_standard_webhooks_vector() -> None:
    key = base64.b64decode(VECTOR_SECRET.removeprefix("whsec_"))
    signed = signature(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", b'{"test": 2432232314}')
    assert signed == VECTOR_SIGNATURE


def test_the_documented_snippet_verifies_the_vector_and_refuses_a_forgery() -> None:
    verify = documented_verify()
    headers = {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": VECTOR_SIGNATURE,
    }
    body = b'{"test": 2432232314}'
    assert verify(VECTOR_SECRET, headers, body, tolerance=10**10)
    assert not verify(VECTOR_SECRET, headers, body + b" ", tolerance=10**10)
    assert not verify(VECTOR_SECRET, headers, body)  # too old


def _sender(hosts: CallbackHosts = LOCAL, **options: object) -> HttpWebhookSender:
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    return HttpWebhookSender(secret=key, hosts=hosts, clock=SystemClock(), **options)  # type: ignore[arg-type]


async def test_a_delivery_arrives_signed_and_the_documented_snippet_verifies_it() -> None:
    with Receiver(200) as receiver:
        sender = _sender()
        sent = await sender.send(receiver.url, b'{"id": "t-1"}', message_id="msg_abc")
        await sender.close()
    assert (sent.ok, sent.status_code, sent.problem()) == (True, 200, None)
    [got] = receiver.received
    assert got.path == "/hooks/taskflow"
    assert got.body == b'{"id": "t-1"}'
    assert got.headers["content-type"] == "application/json"
    assert got.headers["webhook-id"] == "msg_abc"
    assert abs(int(got.headers["webhook-timestamp"]) - time.time()) < 60
    assert got.headers["host"] == receiver.url.split("/")[2]
    assert documented_verify()(SECRET, got.headers, got.body)
    assert not documented_verify()(
        "whsec_" + base64.b64encode(b"x" * 32).decode(), got.headers, got.body
    )


async def test_a_non_2xx_answer_and_a_redirect_are_failed_tries() -> None:
    with Receiver(500, 302) as receiver:
        sender = _sender()
        first = await sender.send(receiver.url, b"{}", message_id="m")
        second = await sender.send(receiver.url, b"{}", message_id="m")
        await sender.close()
    assert (first.ok, first.status_code, first.problem()) == (
        False,
        500,
        "the receiver answered 500",
    )
    assert (second.ok, second.status_code) == (False, 302)


async def test_a_host_resolving_to_a_private_address_is_refused_at_the_try() -> None:
    """DNS rebinding: the name passed the check at submission, then resolves elsewhere."""

    async def rebound(host: str, port: int) -> list[IpAddress]:
        return [ipaddress.ip_address("10.0.0.7")]

    sender = _sender(CallbackHosts(), resolver=rebound)
    sent = await sender.send("https://hooks.example.com/x", b"{}", message_id="m")
    await sender.close()
    assert sent.status_code is None
    assert sent.problem() == (
        "hooks.example.com resolves to 10.0.0.7, which is not a public address and not in "
        "TASKFLOW_CALLBACK_ALLOWED_HOSTS"
    )


async def test_a_loopback_receiver_not_listed_is_refused_and_a_closed_port_is_an_error() -> None:
    with Receiver(200) as receiver:
        sender = _sender(CallbackHosts())
        refused = await sender.send(receiver.url, b"{}", message_id="m")
        await sender.close()
    assert refused.status_code is None
    assert "127.0.0.1" in (refused.problem() or "")
    assert receiver.received == []
    sender = _sender()
    closed = await sender.send("http://127.0.0.1:9/x", b"{}", message_id="m")
    await sender.close()
    assert closed.status_code is None
    assert (closed.problem() or "").startswith("ConnectError")
