"""API keys over HTTP (admin only): ``GET /api/keys``, ``POST /api/keys``,
``DELETE /api/keys/{id}`` (docs/api.md, "API keys over HTTP"). The first key is made with
``taskflow keys create``; these manage the others."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.di import NamedDependency, Provide
from litestar.exceptions import PermissionDeniedException
from litestar.params import JSONBody

from taskflow.containers import Container
from taskflow.domain.errors import InvalidSubmission
from taskflow.domain.keys import ApiKey, parse_scopes
from taskflow.domain.services.keys import KeyService
from taskflow.entrypoints.http.auth import principal_of, tenant_of
from taskflow.entrypoints.http.body_limits import json_body
from taskflow.entrypoints.http.openapi import problem_responses
from taskflow.entrypoints.http.path_params import KeyIdPath
from taskflow.entrypoints.http.schemas import timestamp


def provide_keys(container: Container) -> Provide:
    """The ``keys`` dependency: the process's one ``KeyService`` (its cache is the check's)."""

    def keys() -> KeyService:
        return container.key_service()

    return Provide(keys, sync_to_thread=False)


class KeyIn(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    scopes: list[str]
    tenant: str | None = None  # None: the caller's own


class KeyOut(msgspec.Struct, kw_only=True):
    """A key as stored: never the key itself (``prefix`` is its first 10 characters)."""

    id: str
    name: str
    prefix: str
    scopes: list[str]
    tenant: str
    created_at: str
    revoked_at: str | None

    @classmethod
    def of(cls, key: ApiKey) -> KeyOut:
        return cls(
            id=str(key.id),
            name=key.name,
            prefix=key.prefix,
            scopes=sorted(key.scopes),
            tenant=key.tenant,
            created_at=timestamp(key.created_at),
            revoked_at=None if key.revoked_at is None else timestamp(key.revoked_at),
        )


class KeyCreatedOut(KeyOut, kw_only=True):
    """The new key, with ``key`` itself: the only time it is shown."""

    key: str


class KeysOut(msgspec.Struct):
    items: list[KeyOut]


class KeyController(Controller):
    path = "/api/keys"
    tags = ["keys"]

    @get(
        "/",
        summary="Every API key, revoked ones too; never the key itself",
        operation_id="list_keys",
        responses=problem_responses(503),
    )
    async def list_keys(
        self, request: Request[Any, Any, Any], keys: NamedDependency[KeyService]
    ) -> KeysOut:
        found = await keys.list(tenant=_managed_tenant(request))
        return KeysOut([KeyOut.of(key) for key in found])

    @post(
        "/",
        status_code=201,
        before_request=json_body,
        summary="Make an API key; the answer holds the key, shown this once",
        operation_id="create_key",
        responses=problem_responses(400, 408, 413, 415, 503),
    )
    async def create_key(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[KeyIn],
        keys: NamedDependency[KeyService],
    ) -> KeyCreatedOut:
        try:
            scopes = parse_scopes(",".join(data.scopes))
        except ValueError as exc:
            raise InvalidSubmission(str(exc), field="scopes") from None
        own = tenant_of(request)
        tenant = own if data.tenant is None else data.tenant
        if tenant != own and _managed_tenant(request) is not None:
            raise PermissionDeniedException(
                detail=f"a key of tenant {own!r} makes keys of its own tenant only"
            )
        try:
            key, secret = await keys.create(name=data.name, scopes=scopes, tenant=tenant)
        except ValueError as exc:
            field = "tenant" if "tenant" in str(exc) else "name"
            raise InvalidSubmission(str(exc), field=field) from None
        out = KeyOut.of(key)
        return KeyCreatedOut(**msgspec.structs.asdict(out), key=secret)

    @delete(
        "/{key_id:str}",
        status_code=200,
        summary="Revoke an API key: every API process refuses it within a second",
        operation_id="revoke_key",
        responses=problem_responses(400, 404, 503),
    )
    async def revoke_key(
        self,
        request: Request[Any, Any, Any],
        key_id: KeyIdPath,
        keys: NamedDependency[KeyService],
    ) -> KeyOut:
        try:
            parsed = uuid.UUID(key_id)
        except ValueError:
            raise InvalidSubmission(f"a key id is a UUID, got {key_id!r}", field="id") from None
        return KeyOut.of(await keys.revoke(parsed, tenant=_managed_tenant(request)))


def _managed_tenant(request: Request[Any, Any, Any]) -> str | None:
    """Whose keys this caller manages: its own tenant's, or every tenant's (None) for the
    operator's tenant, which provisions the others (decision 36)."""
    principal = principal_of(request)
    return None if principal.is_operator else principal.tenant
