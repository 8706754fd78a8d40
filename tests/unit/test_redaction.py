"""Issue 13, item 6: a URL's password is masked wherever a URL may be shown."""

from __future__ import annotations

import logging
import sys

import pytest

from taskflow.adapters.sql.engine import _unavailable_message
from taskflow.domain.redaction import without_passwords
from taskflow.entrypoints.http.health import check
from taskflow.entrypoints.logs import ConsoleFormatter, JsonFormatter
from taskflow.entrypoints.runtime import _safe_url

PW = "PLANTED-pw"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "postgresql+asyncpg://app:PLANTED-pw@db:5432/tf",
            "postgresql+asyncpg://app:***@db:5432/tf",
        ),
        ("redis://:PLANTED-pw@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("rediss://default:PLANTED-pw@cache/0", "rediss://default:***@cache/0"),
        ("postgresql://a:PLANTED@pw@db/tf", "postgresql://a:***@db/tf"),  # an unescaped @
        ("postgresql://a:PLANTED-pw/x@db/tf", "postgresql://a:***@db/tf"),  # a malformed one
        (
            "postgresql+asyncpg://db/tf?user=a&password=PLANTED-pw&ssl=1",
            "postgresql+asyncpg://db/tf?user=a&password=***&ssl=1",
        ),
        (
            "from string 'postgresql://a:PLANTED-pw@db/tf' here",
            "from string 'postgresql://a:***@db/tf' here",
        ),
        (
            "postgresql+asyncpg://postgres@127.0.0.1:5432/tf",
            "postgresql+asyncpg://postgres@127.0.0.1:5432/tf",
        ),
        ("sqlite+aiosqlite:///./taskflow.db", "sqlite+aiosqlite:///./taskflow.db"),
        ("http://127.0.0.1:8000/api", "http://127.0.0.1:8000/api"),
        ("no URL at all", "no URL at all"),
        (
            "rediss://cache:6380/0?ssl_keyfile=/k&ssl_password=PLANTED-pw",
            "rediss://cache:6380/0?ssl_keyfile=/k&ssl_password=***",
        ),
        ("postgresql://db/tf?sslpassword=PLANTED-pw", "postgresql://db/tf?sslpassword=***"),
    ],
)
def test_the_password_of_a_url_is_masked(text: str, shown: str) -> None:
    assert without_passwords(text) == shown
    assert _safe_url(text) == shown


async def test_a_failed_readiness_check_masks_a_url_in_its_message() -> None:
    async def probe() -> None:
        raise ValueError(f"cannot parse 'redis://:{PW}@cache:6379/0'")

    found = await check(probe)
    assert found.status == "down"
    assert found.error == "ValueError: cannot parse 'redis://:***@cache:6379/0'"


def test_a_store_unavailable_message_masks_a_url() -> None:
    message = _unavailable_message(OSError(f"cannot reach postgresql://a:{PW}@db/tf"))
    assert PW not in message
    assert "postgresql://a:***@db/tf" in message


@pytest.mark.parametrize("formatter", [JsonFormatter(), ConsoleFormatter()])
def test_a_logged_traceback_masks_a_url(formatter: logging.Formatter) -> None:
    try:
        raise ValueError(f"Could not parse URL from string 'postgresql://a:{PW}@db/tf'")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed", None, exc_info)
    line = formatter.format(record)
    assert "Traceback" in line
    assert PW not in line
