"""The MSP's rotation list: credentials revealed under break-glass, until marked rotated."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec

from sharing.audit import AuditAction, RequestMeta, record
from sharing.tables import RotationItem
from tenants.db import write_transaction
from tenants.errors import Conflict, NotFound
from tenants.roles import Actor, Permission

__all__ = ["RotationEntry", "list_rotation", "mark_rotated"]


class RotationEntry(msgspec.Struct, frozen=True):
    id: uuid.UUID
    document_id: uuid.UUID
    grant_id: uuid.UUID
    revealed_by: str
    revealed_at: datetime
    reason: str
    rotated_by: str | None
    rotated_at: datetime | None


async def list_rotation(actor: Actor, *, include_rotated: bool = False) -> list[RotationEntry]:
    tenant_id = actor.require(Permission.TENANT_READ)
    where: Any = RotationItem.tenant_id == tenant_id
    if not include_rotated:
        where &= RotationItem.rotated_at.is_null()
    rows = (
        await RotationItem.select().where(where).order_by(RotationItem.revealed_at, ascending=False)
    )
    return [msgspec.convert(row, RotationEntry, strict=False) for row in rows]


async def mark_rotated(
    actor: Actor, item_id: uuid.UUID, *, request: RequestMeta | None = None
) -> RotationEntry:
    tenant_id = actor.require(Permission.CONTENT_WRITE)
    now = datetime.now(UTC)
    async with write_transaction():
        row = (
            await RotationItem.select()
            .where((RotationItem.id == item_id) & (RotationItem.tenant_id == tenant_id))
            .first()
        )
        if row is None:
            raise NotFound("no such rotation entry")
        if row["rotated_at"] is not None:
            raise Conflict("marked rotated already", code="rotated")
        await RotationItem.update(
            {RotationItem.rotated_at: now, RotationItem.rotated_by: actor.label}
        ).where(RotationItem.id == item_id)
        await record(
            tenant_id,
            AuditAction.CREDENTIAL_ROTATED,
            actor=actor,
            target_type="document",
            target_id=row["document_id"],
            request=request or RequestMeta(),
            context={"rotation_entry": str(item_id)},
        )
    refreshed = await RotationItem.select().where(RotationItem.id == item_id).first()
    return msgspec.convert(refreshed, RotationEntry, strict=False)
