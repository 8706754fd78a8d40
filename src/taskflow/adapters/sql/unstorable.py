"""Text PostgreSQL cannot store: the character U+0000.

JSON allows ``"\\u0000"`` in a string, and so does Python, but PostgreSQL's ``jsonb`` and
``text`` refuse it (SQLSTATE 22P05). A value holding it must be refused, or cleaned, before it
reaches the store: in a group commit, one such row would fail every row written with it.
"""

from __future__ import annotations

from typing import Any

import msgspec

NUL = "\x00"
_ENCODED_NUL = b"\\u0000"
_encode = msgspec.json.Encoder().encode


def nul_path(value: Any, path: str, *, encoded: bytes | None = None) -> str | None:
    """Where in ``value`` (a JSON-like value named ``path``) a string holds U+0000, or None.

    Looks in the JSON encoding (``encoded``, when the caller has it already) and walks the
    value only when the encoding shows the escape, which a string holding a backslash followed
    by ``u0000`` shows too.
    """
    if _ENCODED_NUL not in (_encode(value) if encoded is None else encoded):
        return None
    return _walk(value, path)


def without_nul(text: str) -> str:
    """``text`` with every U+0000 replaced by U+FFFD, the replacement character."""
    return text.replace(NUL, "\ufffd") if NUL in text else text


def _walk(value: Any, path: str) -> str | None:
    if isinstance(value, str):
        return path if NUL in value else None
    if isinstance(value, dict):
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
