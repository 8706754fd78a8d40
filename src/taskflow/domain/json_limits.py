"""Limits on the shape of a JSON document a client sends: nesting, numbers, duplicate keys.

Each check reads the raw bytes with a test that runs at C speed (a count, a search) and
settles the common case; only a document the cheap test cannot clear is parsed again to
decide exactly (decision 32). ``json_problem`` answers why a document is refused, as
(where, why), or None when it is fine. A document that is not JSON at all is not this
module's business: the decoder refuses it.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

#: Objects and arrays inside one another, the body's own object counted (docs/api.md).
MAX_JSON_DEPTH: Final = 64
#: The integers every JSON parser and both task stores keep exactly: signed 64 bits.
MIN_JSON_INTEGER: Final = -(2**63)
MAX_JSON_INTEGER: Final = 2**63 - 1

_OPENERS = frozenset(b"[{")
_ALL_BUT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"[]{}")
# A document up to this size is searched for keys by a regular expression, a larger one by
# splitting at colons: the first costs per byte, the second per colon.
_SMALL = 4096
_STRING = re.compile(rb'"([^"\\]*(?:\\.[^"\\]*)*)"\s*(:)?')
_BACKSLASH = ord("\\")
# Every digit as "0", for a search of 19 in a row: the shortest run that may write an integer
# beyond 64 bits (two passes in C, many times faster than a regular expression).
_DIGITS_AS_ZERO: Final = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGITS: Final = b"0" * 19


class _Refused(ValueError):
    def __init__(self, where: str, why: str) -> None:
        super().__init__(why)
        self.where = where
        self.why = why


def json_problem(document: bytes) -> tuple[str, str] | None:
    """Why ``document`` is refused, as (where, why), or None."""
    openers = document.count(b"[") + document.count(b"{")  # at least the depth
    if openers > MAX_JSON_DEPTH and too_deep(document):
        return "body", f"JSON nesting is deeper than {MAX_JSON_DEPTH} levels (the limit)"
    long_digits = _LONG_DIGITS in document.translate(_DIGITS_AS_ZERO)
    if not long_digits and _keys_distinct(document):
        return None
    try:
        if long_digits:
            json.loads(document, object_pairs_hook=_unique_keys, parse_int=_bounded_int)
        else:  # the integers are fine: spare a call for each
            json.loads(document, object_pairs_hook=_unique_keys)
    except _Refused as refused:
        return refused.where, refused.why
    except (ValueError, RecursionError):  # not JSON: the decoder says why
        return None
    return None


def too_deep(document: bytes) -> bool:
    """Whether the arrays and objects of ``document`` nest deeper than the limit, brackets in
    strings aside. A loop over the brackets: only for a document with more openers than the
    limit."""
    brackets = _STRING.sub(b"", document).translate(None, _ALL_BUT_BRACKETS)
    depth = 0
    for byte in brackets:
        depth += 1 if byte in _OPENERS else -1
        if depth > MAX_JSON_DEPTH:
            return True
    return False


def _keys_distinct(document: bytes) -> bool:
    """True when no two keys anywhere in ``document`` are written alike and none is escaped:
    then no object can repeat a key. False means "parse to know"."""
    if len(document) <= _SMALL:
        return _small_keys_distinct(document)
    return _large_keys_distinct(document)


def _small_keys_distinct(document: bytes) -> bool:
    # Every string in order with the colon after it, if any: no two alike (a value repeated
    # also answers "parse to know"). One pass in C; its cost grows with the strings' length.
    if b"\\" in document:
        return False
    strings = _STRING.findall(document)
    return len(set(strings)) == len(strings)


def _large_keys_distinct(document: bytes) -> bool:
    # Every key ends a piece of the document split at its colons (white space aside); a piece
    # that does not end with a quote ends inside a string. Its cost grows with the number of
    # colons. Whatever it cannot read plainly (an escape, a colon inside a key) answers False.
    pieces = document.split(b":")
    pieces.pop()
    seen = set()
    for piece in pieces:
        text = piece if piece.endswith(b'"') else piece.rstrip(b" \t\r\n")
        if not text.endswith(b'"'):
            continue
        start = text.rfind(b'"', 0, -1)
        if start < 1 or text[start - 1] == _BACKSLASH:
            return False
        key = text[start + 1 : -1]
        if key in seen or b"\\" in key:
            return False
        seen.add(key)
    return True


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        twice = next(key for key, _ in pairs if key in seen or seen.add(key))  # type: ignore[func-returns-value]
        raise _Refused("body", f"the key {twice[:64]!r} appears twice in one object")
    return found


def _bounded_int(text: str) -> int:
    # Length first: int() refuses more than 4300 digits with an error of its own.
    if len(text.lstrip("-")) > 19 or not MIN_JSON_INTEGER <= int(text) <= MAX_JSON_INTEGER:
        shown = text if len(text) <= 24 else f"{text[:20]}... ({len(text)} digits)"
        raise _Refused(
            "body",
            f"the integer {shown} is out of range: integers must lie in "
            f"{MIN_JSON_INTEGER}..{MAX_JSON_INTEGER}",
        )
    return 0
