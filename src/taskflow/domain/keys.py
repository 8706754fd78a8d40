"""API keys and what they allow (docs/security.md, "Authentication and API keys").

A key is ``tf_`` and 43 URL-safe characters of randomness, shown once. The store keeps its
SHA-256, never the key: 256 random bits need no slow password hash, and a lookup by hash costs
the submit path nothing worth measuring.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

KEY_PREFIX = "tf_"
#: How much of a key ``keys list`` shows, its ``tf_`` included: enough to tell keys apart.
DISPLAY_PREFIX_LENGTH = 10
KEY_NAME_MAX_LENGTH = 100
TENANT_MAX_LENGTH = 64
DEFAULT_TENANT = "default"


class Scope(StrEnum):
    """What a key may do. ``admin`` includes ``read`` and ``submit``."""

    SUBMIT = "submit"
    READ = "read"
    ADMIN = "admin"


def parse_scopes(text: str) -> frozenset[Scope]:
    """``submit,read,admin`` (any of them, at least one); ValueError naming a wrong one."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise ValueError("name at least one scope: submit, read or admin")
    allowed = {scope.value for scope in Scope}
    for name in names:
        if name not in allowed:
            raise ValueError(f"unknown scope {name!r}: the scopes are submit, read and admin")
    return frozenset(Scope(name) for name in names)


def check_key_fields(name: str, tenant: str) -> None:
    """ValueError when a key's name or tenant cannot be stored."""
    problem = _text_problem("name", name, KEY_NAME_MAX_LENGTH) or tenant_problem(tenant)
    if problem:
        raise ValueError(problem)


def tenant_problem(tenant: str) -> str | None:
    """Why ``tenant`` cannot name a tenant, or None."""
    return _text_problem("tenant", tenant, TENANT_MAX_LENGTH)


def _text_problem(what: str, value: str, longest: int) -> str | None:
    if not value or len(value) > longest or not value.isprintable():
        return f"the {what} must be 1 to {longest} printable characters"
    return None


def hash_key(secret: str) -> str:
    """What the store keeps of a key: the SHA-256 of the whole key, in hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiKey:
    """A key as stored: everything but the key itself."""

    id: UUID
    name: str
    prefix: str
    hash: str
    scopes: frozenset[Scope]
    tenant: str
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def principal(self) -> Principal:
        return Principal(key_id=self.id, name=self.name, scopes=self.scopes, tenant=self.tenant)


@dataclass(frozen=True, slots=True, kw_only=True)
class Principal:
    """Who makes a request: the key's id (None while the API is open), name, scopes, tenant."""

    key_id: UUID | None
    name: str
    scopes: frozenset[Scope]
    tenant: str

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes or Scope.ADMIN in self.scopes

    @property
    def is_operator(self) -> bool:
        """Whether it sees the fleet (queues, workers, metrics: every tenant's work at once)
        and manages every tenant's keys: a key of the default tenant (decision 36)."""
        return self.tenant == DEFAULT_TENANT


#: Whoever calls an open API (no key exists yet, or TASKFLOW_AUTH=disabled).
ANONYMOUS = Principal(key_id=None, name="anonymous", scopes=frozenset(Scope), tenant=DEFAULT_TENANT)
