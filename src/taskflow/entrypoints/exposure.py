"""Whether an API may start as configured, and what it says about being open (decision 30).

With no key in the store the API answers anyone. That is fine on a loopback address, where
only this machine reaches it; on any other address ``taskflow api`` refuses to start unless
``TASKFLOW_AUTH=disabled`` says so explicitly, and then it warns at every start.
"""

from __future__ import annotations

import ipaddress
import logging

from taskflow.config import Settings
from taskflow.containers import Container
from taskflow.domain.errors import StoreUnavailable
from taskflow.entrypoints.errors import CannotStart

log = logging.getLogger("taskflow")

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach ``host``."""
    name = host.strip().strip("[]").lower()
    if name in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a host name: it may well resolve to a public address


async def check_exposure(container: Container, host: str) -> None:
    """Log how this API is protected; ``CannotStart`` when it would be open beyond this host."""
    settings: Settings = container.settings()
    if settings.auth == "disabled":
        log.warning(
            "authentication is disabled (TASKFLOW_AUTH=disabled): anyone who reaches "
            "the API can submit, read and change every task",
            extra={"host": host},
        )
        return
    try:
        keys_exist = await container.key_service().enforced()
    except StoreUnavailable as exc:
        if not is_loopback(host):  # open to others, perhaps: not without knowing
            raise CannotStart(
                f"cannot tell whether an API key exists ({exc.message}); is the database "
                "reachable and migrated (taskflow migrate)?"
            ) from None
        # Only this machine reaches it, and every request asks again: until the store
        # answers, requests that need it get a 503; then keys apply if any exist.
        log.warning(
            "could not read the API keys at start; requests are checked once the store answers",
            extra={"host": host, "error": exc.message},
        )
        return
    if keys_exist:
        log.info("api keys required", extra={"host": host})
    elif is_loopback(host):
        log.warning(
            "no API key exists: the API is open to every process on this machine until "
            "one is made (taskflow keys create)",
            extra={"host": host},
        )
    else:
        raise CannotStart(
            f"no API key exists and {host} is not a loopback address: make one with "
            "`taskflow keys create --name NAME --scopes submit,read,admin`, or set "
            "TASKFLOW_AUTH=disabled to serve without authentication"
        )
