"""Dashboard sessions (decision 35): what a browser keeps after signing in with an API key.

A session is ``<key id>.<expiry>.<tag>``: the tag is an HMAC-SHA256 over the id and the
expiry (Unix seconds) under a secret derived from the key's stored hash. Nothing is kept on
the server, so any API process can check a session with the key's row alone; revoking the key
ends its sessions as soon as each process looks the key up again. The key itself is never in
the session: the tag cannot be turned back into it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from uuid import UUID

#: How long a session lasts after signing in.
SESSION_SECONDS = 12 * 3600
_LABEL = b"taskflow dashboard session v1"
_LONGEST = 120  # a UUID, ten digits, 43 characters of tag and two dots, with room to spare


@dataclass(frozen=True, slots=True)
class Session:
    key_id: UUID
    expires: int
    tag: str


def _tag(key_hash: str, key_id: UUID, expires: int) -> str:
    secret = hmac.new(key_hash.encode(), _LABEL, hashlib.sha256).digest()
    digest = hmac.new(secret, f"{key_id}.{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def make_session(key_id: UUID, key_hash: str, expires: int) -> str:
    """The session of the key with this id and stored hash, good until ``expires``."""
    return f"{key_id}.{expires}.{_tag(key_hash, key_id, expires)}"


def read_session(text: str) -> Session | None:
    """The parts of a session as a browser sent it; None when it is not one."""
    if len(text) > _LONGEST:
        return None
    raw_id, _, rest = text.partition(".")
    raw_expires, _, tag = rest.partition(".")
    if not tag or not raw_expires.isascii() or not raw_expires.isdigit():
        return None
    try:
        key_id = UUID(raw_id)
    except ValueError:
        return None
    return Session(key_id=key_id, expires=int(raw_expires), tag=tag)


def session_matches(session: Session, key_hash: str) -> bool:
    """Whether the session was made for the key with this stored hash (constant time)."""
    expected = _tag(key_hash, session.key_id, session.expires)
    return hmac.compare_digest(expected.encode(), session.tag.encode("utf-8", "replace"))
