"""Limits on the shape of a JSON document a client sends: nesting, numbers, duplicate keys.

Each check reads the raw bytes with a test that runs at C speed (a count, a search) and
settles the common case; only a document the cheap test cannot clear is parsed again to
decide exactly (decision 32). ``json_problem`` answers why a document is refused, as
(where, why), or None when it is fine. A document that is not JSON at all is not this
module's business: the decoder refuses it.

A batch repeats its keys in every task, which the cheap test for duplicate keys cannot tell
from a key repeated in one object. Before parsing again in Python (half a millisecond for 500
tasks, a sixth of the batch's CPU in the API), such a document is decoded and encoded again
by a fast codec (``Recode``): decoding keeps each key of an object once, so the document has a
key written twice in one object exactly when the round trip loses a colon.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, Final

#: Objects and arrays inside one another, the body's own object counted (docs/api.md).
MAX_JSON_DEPTH: Final = 64
#: The integers every JSON parser and both task stores keep exactly: signed 64 bits.
MIN_JSON_INTEGER: Final = -(2**63)
MAX_JSON_INTEGER: Final = 2**63 - 1

_OPENERS = frozenset(b"[{")
_ALL_BUT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"[]{}")
_SQUARE = bytes.maketrans(b"{}", b"[]")
# A document up to this size is searched for keys by a regular expression, a larger one by
# splitting at colons: the first costs per byte, the second per colon.
_SMALL = 4096
_STRING = re.compile(rb'"([^"\\]*(?:\\.[^"\\]*)*)"\s*(:)?')
_BACKSLASH = ord("\\")
# Every digit as "0", for a search of 19 in a row: the shortest run that may write an integer
# beyond 64 bits (two passes in C, many times faster than a regular expression).
_DIGITS_AS_ZERO: Final = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGITS: Final = b"0" * 19


#: Decodes a JSON document and encodes it again; ValueError when it is not JSON.
Recode = Callable[[bytes], bytes]


def recode_json(document: bytes) -> bytes:
    """``Recode`` with the standard library: slower than a native codec, always at hand."""
    return json.dumps(json.loads(document)).encode()


class _Refused(ValueError):
    def __init__(self, where: str, why: str) -> None:
        super().__init__(why)
        self.where = where
        self.why = why


def json_problem(document: bytes, recode: Recode = recode_json) -> tuple[str, str] | None:
    """Why ``document`` is refused, as (where, why), or None."""
    openers = document.count(b"[") + document.count(b"{")  # at least the depth
    if openers > MAX_JSON_DEPTH and too_deep(document):
        return "body", f"JSON nesting is deeper than {MAX_JSON_DEPTH} levels (the limit)"
    long_digits = _LONG_DIGITS in document.translate(_DIGITS_AS_ZERO)
    if not long_digits and (_keys_distinct(document) or _no_key_lost(document, recode)):
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
    strings aside: only asked of a document with more openers than the limit.

    Both kinds of bracket are counted alike (as a parser descends into either), written as
    ``[`` and ``]``. Each pass deletes the innermost pairs, ``[]``, one level: brackets that nest
    no deeper than the limit are all gone within as many passes. What is left then (or what a
    pass cannot shorten: brackets that do not pair) is decided by a loop over the brackets.
    """
    if b"\\" in document:  # a string may hold an escaped quote: find the strings exactly
        outside = _STRING.sub(b"", document)
    else:  # every other quote opens a string
        outside = b"".join(document.split(b'"')[::2])
    brackets = inner = outside.translate(_SQUARE, _ALL_BUT_BRACKETS)
    for _ in range(MAX_JSON_DEPTH):
        shorter = inner.replace(b"[]", b"")
        if not shorter:
            return False
        if len(shorter) == len(inner):
            break
        inner = shorter
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


def _no_key_lost(document: bytes, recode: Recode) -> bool:
    """True when decoding ``document`` keeps every key it writes: no object repeats one. Only
    for a document without a backslash, whose strings and their colons ``recode`` writes back
    as they were (an escape could write a colon the document hides). False: parse to know."""
    if b"\\" in document:
        return False
    try:
        again = recode(document)
    except (ValueError, RecursionError):  # not JSON to this codec: the exact parse decides
        return False
    # Numbers, white space and escapes of other characters carry no colon: one fewer is a key
    # written twice (with its value), the only colons a round trip can lose.
    return again.count(b":") == document.count(b":")


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
