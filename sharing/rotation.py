"""The MSP's rotation list: credentials revealed under break-glass, until marked rotated."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec

from sharing import documents
from sharing.audit import AuditAction, RequestMeta, record
from sharing.tables import Document, Grant, RotationItem
from tenants.db import write_transaction
from tenants.errors import Conflict, NotFound
from tenants.keyring import KeyRing
from tenants.roles import Actor, Permission

__all__ = ["RotationEntry", "RotationRow", "list_rotation", "list_rotation_titled", "mark_rotated"]


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


class RotationRow(msgspec.Struct, frozen=True):
    """An entry of the rotation list with what a person recognises it by."""

    entry: RotationEntry
    title: str
    kind: str
    psa_reference: str


async def list_rotation_titled(
    actor: Actor, keyring: KeyRing, *, include_rotated: bool = False
) -> list[RotationRow]:
    """`list_rotation` with each credential's current title and the incident it was revealed
    in; the credentials themselves are not opened."""
    entries = await list_rotation(actor, include_rotated=include_rotated)
    if not entries:
        return []
    tenant_id = actor.require(Permission.TENANT_READ)
    docs = await Document.select().where(
        (Document.tenant_id == tenant_id)
        & Document.id.is_in(list({entry.document_id for entry in entries}))
    )
    titles = {row["id"]: await documents.current_title(keyring, tenant_id, row) for row in docs}
    kinds = {row["id"]: str(row["kind"]) for row in docs}
    grants = await Grant.select(Grant.id, Grant.handoff_id.psa_reference).where(
        (Grant.tenant_id == tenant_id) & Grant.id.is_in(list({entry.grant_id for entry in entries}))
    )
    incidents = {row["id"]: str(row["handoff_id.psa_reference"]) for row in grants}
    return [
        RotationRow(
            entry=entry,
            title=titles.get(entry.document_id, ""),
            kind=kinds.get(entry.document_id, ""),
            psa_reference=incidents.get(entry.grant_id, ""),
        )
        for entry in entries
    ]
