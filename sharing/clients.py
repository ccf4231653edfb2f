"""An MSP's clients: the customers whose documentation it shares."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

import msgspec

from sharing.audit import AuditAction, RequestMeta, record
from sharing.tables import Client
from tenants.db import write_transaction
from tenants.errors import Conflict, Invalid
from tenants.roles import Actor, Permission

__all__ = ["ClientView", "create_client", "list_clients"]

_SHORT_CODE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{0,31}$")


class ClientView(msgspec.Struct, frozen=True):
    id: uuid.UUID
    name: str
    short_code: str
    notes: str
    psa_reference: str | None
    created_at: datetime
    archived_at: datetime | None


async def list_clients(actor: Actor) -> list[ClientView]:
    tenant_id = actor.require(Permission.TENANT_READ)
    rows = await Client.select().where(Client.tenant_id == tenant_id).order_by(Client.name)
    return [msgspec.convert(row, ClientView, strict=False) for row in rows]


async def create_client(
    actor: Actor,
    *,
    name: str,
    short_code: str,
    notes: str = "",
    psa_reference: str | None = None,
    request: RequestMeta | None = None,
) -> ClientView:
    tenant_id = actor.require(Permission.CONTENT_WRITE)
    if actor.tenant_kind is not None and not actor.tenant_kind.is_msp:
        raise Invalid("only an MSP tenant has clients", code="not_msp")
    name, short_code = name.strip(), short_code.strip().upper()
    if not 1 <= len(name) <= 200:
        raise Invalid("the client name needs 1 to 200 characters", code="name")
    if not _SHORT_CODE.match(short_code):
        raise Invalid("the short code is 1-32 letters, digits, - or _", code="short_code")
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
            notes=notes,
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
