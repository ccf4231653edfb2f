"""An MSP's clients: the customers whose documentation it shares."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec

from sharing.audit import AuditAction, RequestMeta, record
from sharing.tables import Client
from tenants.db import write_transaction
from tenants.errors import Conflict, Invalid, NotFound
from tenants.roles import Actor, Permission

__all__ = [
    "ClientView",
    "archive_client",
    "create_client",
    "get_client",
    "list_clients",
    "update_client",
]

_SHORT_CODE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{0,31}$")
_MAX_NOTES = 10_000


class ClientView(msgspec.Struct, frozen=True):
    id: uuid.UUID
    name: str
    short_code: str
    notes: str
    psa_reference: str | None
    created_at: datetime
    archived_at: datetime | None


async def list_clients(actor: Actor, *, include_archived: bool = False) -> list[ClientView]:
    tenant_id = actor.require(Permission.TENANT_READ)
    where: Any = Client.tenant_id == tenant_id
    if not include_archived:
        where &= Client.archived_at.is_null()
    rows = await Client.select().where(where).order_by(Client.name)
    return [msgspec.convert(row, ClientView, strict=False) for row in rows]


async def _row(tenant_id: uuid.UUID, client_id: uuid.UUID) -> dict[str, Any]:
    row: dict[str, Any] | None = (
        await Client.select()
        .where((Client.id == client_id) & (Client.tenant_id == tenant_id))
        .first()
    )
    if row is None:
        raise NotFound("no such client")
    return row


async def get_client(actor: Actor, client_id: uuid.UUID) -> ClientView:
    tenant_id = actor.require(Permission.TENANT_READ)
    return msgspec.convert(await _row(tenant_id, client_id), ClientView, strict=False)


def _check_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise Invalid("the client name needs 1 to 200 characters", code="name")
    return name


def _check_notes(notes: str) -> str:
    if len(notes) > _MAX_NOTES:
        raise Invalid(f"notes may have at most {_MAX_NOTES} characters", code="notes")
    return notes


def _check_code(short_code: str) -> str:
    short_code = short_code.strip().upper()
    if not _SHORT_CODE.match(short_code):
        raise Invalid("the short code is 1-32 letters, digits, - or _", code="short_code")
    return short_code


async def update_client(
    actor: Actor,
    client_id: uuid.UUID,
    *,
    name: str | None = None,
    short_code: str | None = None,
    notes: str | None = None,
    psa_reference: str | msgspec.UnsetType | None = msgspec.UNSET,
    request: RequestMeta | None = None,
) -> ClientView:
    tenant_id = actor.require(Permission.CONTENT_WRITE)
    changes: dict[Any, Any] = {}
    async with write_transaction():
        current = await _row(tenant_id, client_id)
        if current["archived_at"] is not None:
            raise Invalid("the client is archived", code="archived")
        if name is not None:
            changes[Client.name] = _check_name(name)
        if short_code is not None and _check_code(short_code) != current["short_code"]:
            code = _check_code(short_code)
            if await Client.exists().where(
                (Client.tenant_id == tenant_id) & (Client.short_code == code)
            ):
                raise Conflict(f"a client with the code {code} exists already", code="taken")
            changes[Client.short_code] = code
        if notes is not None:
            changes[Client.notes] = _check_notes(notes)
        if psa_reference is not msgspec.UNSET:
            changes[Client.psa_reference] = psa_reference
        if changes:
            await Client.update(changes).where(
                (Client.id == client_id) & (Client.tenant_id == tenant_id)
            )
            await record(
                tenant_id,
                AuditAction.CLIENT_UPDATED,
                actor=actor,
                target_type="client",
                target_id=client_id,
                request=request or RequestMeta(),
                context={"changed": ",".join(sorted(c._meta.name for c in changes))},
            )
    return await get_client(actor, client_id)


async def archive_client(
    actor: Actor, client_id: uuid.UUID, *, request: RequestMeta | None = None
) -> ClientView:
    """An archived client leaves lists and cannot get new documents; nothing is deleted."""
    tenant_id = actor.require(Permission.CONTENT_WRITE)
    async with write_transaction():
        current = await _row(tenant_id, client_id)
        if current["archived_at"] is None:
            await Client.update({Client.archived_at: datetime.now(UTC)}).where(
                (Client.id == client_id) & (Client.tenant_id == tenant_id)
            )
            await record(
                tenant_id,
                AuditAction.CLIENT_ARCHIVED,
                actor=actor,
                target_type="client",
                target_id=client_id,
                request=request or RequestMeta(),
            )
    return await get_client(actor, client_id)


async def create_client(
    actor: Actor,
    *,
    name: str,
    short_code: str,
    notes: str = "",
    psa_reference: str | None = None,
    request: RequestMeta | None = None,
) -> ClientView:
    tenant_id = actor.require_msp(Permission.CONTENT_WRITE, "only an MSP tenant has clients")
    name, short_code = _check_name(name), _check_code(short_code)
    now = datetime.now(UTC)
    async with write_transaction():
        if await Client.exists().where(
            (Client.tenant_id == tenant_id) & (Client.short_code == short_code)
        ):
            raise Conflict(f"a client with the code {short_code} exists already", code="taken")
        client = Client(
            id=uuid.uuid4(),
            tenant_id=tenant_id,
            name=name,
            short_code=short_code,
            notes=_check_notes(notes),
            psa_reference=psa_reference,
            created_at=now,
        )
        await client.save()
        await record(
            tenant_id,
            AuditAction.CLIENT_CREATED,
            actor=actor,
            target_type="client",
            target_id=client.id,
            request=request or RequestMeta(),
            context={"short_code": short_code},
        )
    return msgspec.convert(client.to_dict(), ClientView, strict=False)
