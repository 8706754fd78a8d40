"""``HttpWebhookSender``: completion webhooks signed per Standard Webhooks and POSTed with httpx.

Before each try the callback's host is resolved and every address it resolves to is checked
(``CallbackHosts.delivery_problem``); the request then goes to the address that was checked,
with the URL's host name kept in the ``Host`` header and in TLS (SNI and certificate checks),
so a name cannot be made to resolve elsewhere between the check and the connection (DNS
rebinding). Redirects are not followed: a ``3xx`` is a failed try like any non-``2xx``. A try
takes at most three times ``timeout_seconds``: one to resolve, two for the request.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import socket
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from taskflow.domain.callbacks import CallbackHosts, IpAddress, parse_address
from taskflow.domain.deliveries import Sent
from taskflow.domain.ports import Clock

Resolve = Callable[[str, int], Awaitable[list[IpAddress]]]


def signature(secret: bytes, message_id: str, timestamp: str, body: bytes) -> str:
    """The ``webhook-signature`` header: ``v1,`` and the base64 HMAC-SHA256, keyed with
    ``secret``, of ``{message_id}.{timestamp}.{body}``."""
    signed = b".".join((message_id.encode(), timestamp.encode(), body))
    digest = hmac.new(secret, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


async def resolve(host: str, port: int) -> list[IpAddress]:
    """Every address ``host`` resolves to now (OSError when none)."""
    found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = [parse_address(str(info[4][0])) for info in found]
    return [address for address in addresses if address is not None]


class HttpWebhookSender:
    """The ``WebhookSender`` port over HTTP(S)."""

    def __init__(
        self,
        *,
        secret: bytes,
        hosts: CallbackHosts,
        clock: Clock,
        timeout_seconds: float = 10.0,
        resolver: Resolve = resolve,
    ) -> None:
        self._secret = secret
        self._hosts = hosts
        self._clock = clock
        self._resolve = resolver
        self._timeout = timeout_seconds
        # No proxy from the environment (it would connect elsewhere than the checked address),
        # and no kept connections: pooled by address, one made for one host name could carry
        # the request of another name on the same address.
        self._client = httpx.AsyncClient(
            timeout=timeout_seconds,
            follow_redirects=False,
            trust_env=False,
            limits=httpx.Limits(max_keepalive_connections=0),
        )

    async def send(self, url: str, body: bytes, *, message_id: str) -> Sent:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            addresses = await asyncio.wait_for(self._resolve(host, port), self._timeout)
        except (OSError, TimeoutError) as exc:
            return Sent(None, f"cannot resolve {host}: {exc or 'timed out'}")
        problem = self._hosts.delivery_problem(host, addresses)
        if problem or not addresses:
            return Sent(None, problem or f"{host} resolves to no address")
        timestamp = str(int(self._clock.now().timestamp()))
        headers = {
            "content-type": "application/json",
            "host": parts.netloc,
            "user-agent": "taskflow-webhooks",
            "webhook-id": message_id,
            "webhook-timestamp": timestamp,
            "webhook-signature": signature(self._secret, message_id, timestamp, body),
        }
        address = addresses[0]
        pinned = f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"
        target = urlunsplit(parts._replace(netloc=pinned, fragment=""))
        extensions: dict[str, Any] = {"sni_hostname": host} if parts.scheme == "https" else {}
        try:
            request = self._client.build_request(
                "POST", target, content=body, headers=headers, extensions=extensions
            )
            # httpx bounds each step (connect, write, each read), not the whole: a receiver
            # that trickles its answer byte by byte is cut off here.
            response = await asyncio.wait_for(
                self._client.send(request, stream=True), 2 * self._timeout
            )
            await response.aclose()  # the answer's body is not read: only its status counts
        except TimeoutError:
            return Sent(None, f"no answer within {2 * self._timeout:g} s")
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            return Sent(None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        return Sent(response.status_code)

    async def close(self) -> None:
        await self._client.aclose()
