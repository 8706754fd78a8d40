"""msgspec's validation messages as a field path and a plain sentence.

msgspec says ``Expected `int` <= 9 - at `$.tasks[1].priority``; a user should read
``tasks[1].priority must be at most 9``. Both the HTTP schema (Litestar decodes bodies with
msgspec) and the Registry (a payload checked against its type's Struct) go through here, so
every 400 speaks the same way.
"""

from __future__ import annotations

import re

_AT = re.compile(r"\s+- at `\$(?P<path>[^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]+)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<name>[^`]+)`$")
_TYPE = re.compile(r"^Expected `(?P<want>[^`]+)`, got `(?P<got>[^`]+)`$")
_BOUND = re.compile(r"^Expected `(?P<want>[^`]+)` (?P<op>>=|<=|>|<) (?P<n>[-\d.e+]+)$")
_LENGTH = re.compile(r"^Expected `(?P<want>[^`]+)` of length (?P<op>>=|<=) (?P<n>\d+)$")
_REGEX = re.compile(r"^Expected `str` matching regex '(?P<regex>.*)'$")

_NOUNS = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "bool": "true or false",
    "object": "an object",
    "array": "an array",
    "null": "null",
    "datetime": "an RFC 3339 timestamp",
    "uuid": "a UUID",
}
_BOUNDS = {">=": "at least", "<=": "at most", ">": "greater than", "<": "less than"}


def describe(message: str, *, root: str = "") -> tuple[str, str]:
    """The field (a dotted path under ``root``) and a sentence naming it, for one message."""
    field, text = _split(message, root)
    name = field or "the request body"
    if found := _MISSING.match(text):
        field = _join(field, found["name"])
        return field, f"{field} is required"
    if found := _UNKNOWN.match(text):
        field = _join(field, found["name"])
        return field, f"{field} is not a known field"
    return field or "body", f"{name} {_requirement(text)}"


def _requirement(text: str) -> str:
    if found := _TYPE.match(text):
        return f"must be {_noun(found['want'])}, got {_noun(found['got'])}"
    if found := _LENGTH.match(text):
        unit = "character" if found["want"] == "str" else "item"
        plural = "" if found["n"] == "1" else "s"
        return f"must have {_BOUNDS[found['op']]} {found['n']} {unit}{plural}"
    if found := _BOUND.match(text):
        return f"must be {_BOUNDS[found['op']]} {found['n']}"
    if found := _REGEX.match(text):
        return f"must match {found['regex'].replace(chr(92) * 2, chr(92))}"
    if text.startswith("Invalid RFC3339"):
        return "must be an RFC 3339 timestamp with a time zone"
    return "is invalid: " + text.replace("`", "")


def _split(message: str, root: str) -> tuple[str, str]:
    text = message.strip()
    found = _AT.search(text)
    path = ""
    if found:
        path = found["path"]
        text = text[: found.start()]
    return _join(root, path.lstrip(".")) if path.startswith(".") else root + path, text


def _join(base: str, name: str) -> str:
    if not base:
        return name
    return f"{base}{name}" if name.startswith("[") else f"{base}.{name}"


def _noun(kind: str) -> str:
    parts = [p.strip() for p in kind.split("|")]
    return " or ".join(_NOUNS.get(p, p) for p in parts)
