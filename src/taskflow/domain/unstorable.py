"""Text a task may not hold: the character U+0000, which PostgreSQL cannot store.

JSON allows ``"\\u0000"`` in a string, and so does Python, but PostgreSQL's ``jsonb`` and
``text`` refuse it (SQLSTATE 22P05); in a group commit, one such row would fail every row
written with it. So a value the task is made of (payload, metadata, result) holding it is
refused with ``UnstorableValue``, and a message (progress, error) has it replaced by U+FFFD.

The API refuses a submitted payload or metadata holding it before any store sees it, so that
the in-memory store answers as the SQL store does (``refuse_unstorable``, on the JSON it has
encoded anyway to measure the value). The SQL store applies the same rule to everything it
writes (results, ``taskflow.enqueue``, any caller), on SQLite too, so both keep the same tasks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from taskflow.domain.errors import UnstorableValue

NUL = "\x00"
_ESCAPE = b"\\u0000"


def suspect(document: bytes) -> bool:
    """Whether the JSON ``document`` may hold U+0000: it shows the escape.

    A string holding a backslash followed by ``u0000`` shows it too; the walk tells them
    apart. A search for the backslash alone comes first: it is many times faster.
    """
    return b"\\" in document and _ESCAPE in document


def refusal(value: Any, path: str) -> UnstorableValue | None:
    """The error for ``value`` (a JSON-like value named ``path``) when it holds U+0000."""
    found = _walk(value, path)
    if found is None:
        return None
    return UnstorableValue(
        f"{found} holds the character U+0000, which the task store cannot keep", field=found
    )


def refuse_unstorable(document: bytes, value: Any, path: str) -> None:
    """``UnstorableValue`` when ``value``, whose JSON is ``document``, holds U+0000."""
    if suspect(document):
        refused = refusal(value, path)
        if refused is not None:
            raise refused


def without_nul(text: str) -> str:
    """``text`` with every U+0000 replaced by U+FFFD, the replacement character."""
    return text.replace(NUL, "\ufffd") if NUL in text else text


def _walk(value: Any, path: str) -> str | None:
    if isinstance(value, str):
        return path if NUL in value else None
    if isinstance(value, Mapping):
        for key, item in value.items():
            if NUL in str(key):
                return path
            found = _walk(item, f"{path}.{key}")
            if found:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _walk(item, f"{path}[{index}]")
            if found:
                return found
    return None
