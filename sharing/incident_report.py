"""The incident report: one handoff as an auditor reads it, from the MSP's records and chain.

The handoff, its grant, every access under the grant (break-glass reads apart, with their
reasons), hand-back notes, extension requests, and whether the MSP's chain verifies. The summary
and note bodies are content: they are opened only for a caller who may read content; an auditor
sees that they exist, who wrote them and when, never what they say.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import msgspec

from sharing.audit import AuditAction, ChainReport, verify_chain
from sharing.audit_search import AuditEventView, AuditQuery, Order, iter_matching
from sharing.clock import Clock
from sharing.handoffs import ExtensionView, GrantView, grant_row, grant_view, list_notes
from sharing.sealed import open_text
from sharing.tables import Grant, GrantExtension, Handoff, HandoffNote
from tenants.errors import NotFound
from tenants.keyring import KeyRing
from tenants.roles import Actor, Permission
from tenants.tables import Tenant

__all__ = [
    "ACCESS_ACTIONS",
    "MAX_ACCESS_ROWS",
    "AccessEvent",
    "IncidentReport",
    "ReportNote",
    "grant_events",
    "incident_report",
]

ACCESS_ACTIONS = frozenset(
    {
        AuditAction.GRANT_BUNDLE_READ.value,
        AuditAction.PARTNER_DOCUMENT_READ.value,
        AuditAction.PARTNER_DOCUMENT_DENIED.value,
        AuditAction.BREAK_GLASS.value,
        AuditAction.GRANT_RATE_LIMITED.value,
        AuditAction.DOCUMENT_INTEGRITY_FAILED.value,
    }
)
"""The events of a grant that are someone reaching (or trying to reach) its content."""

MAX_ACCESS_ROWS = 2000
"""A printable page lists this many access events at most; the CSV export has them all."""


class AccessEvent(msgspec.Struct, frozen=True):
    seq: int
    occurred_at: datetime
    actor_label: str
    actor_type: str
    action: str
    outcome: str
    severity: str
    target_type: str | None
    target_id: str | None
    document_id: str | None
    kind: str | None
    sensitivity: str | None
    reason: str | None
    source_address: str | None
    break_glass: bool


class ReportNote(msgspec.Struct, frozen=True):
    author: str
    created_at: datetime
    body: str | None
    """None when the caller may not read content."""


class IncidentReport(msgspec.Struct, frozen=True):
    handoff_id: uuid.UUID
    psa_reference: str
    severity: str
    msp_name: str
    time_zone: str
    client_name: str
    partner_name: str
    partner_slug: str
    created_by: str
    created_at: datetime
    content_visible: bool
    summary: str | None
    """None when the caller may not read content (an auditor): the report says "withheld"."""
    grant: GrantView
    access: list[AccessEvent]
    access_total: int
    break_glass: list[AccessEvent]
    timeline: list[AccessEvent]
    """The grant's other events: created, extended, notes posted, expired, revoked..."""
    notes: list[ReportNote]
    extensions: list[ExtensionView]
    chain: ChainReport
    generated_at: datetime


def _access(event: AuditEventView) -> AccessEvent:
    context = event.context
    document_id = context.get("document_id")
    if document_id is None and event.target_type == "document":
        document_id = event.target_id
    return AccessEvent(
        seq=event.seq,
        occurred_at=event.occurred_at,
        actor_label=event.actor_label,
        actor_type=event.actor_type,
        action=event.action,
        outcome=event.outcome,
        severity=event.severity,
        target_type=event.target_type,
        target_id=event.target_id,
        document_id=document_id,
        kind=context.get("kind"),
        sensitivity=context.get("sensitivity"),
        reason=event.reason,
        source_address=event.source_address,
        break_glass=event.action == AuditAction.BREAK_GLASS.value,
    )


async def _notes(
    keyring: KeyRing, tenant_id: uuid.UUID, grant_id: uuid.UUID, *, content: bool
) -> list[ReportNote]:
    if content:
        return [
            ReportNote(note.author, note.created_at, note.body)
            for note in await list_notes(keyring, tenant_id, grant_id)
        ]
    # Without the right to read content the sealed bodies are not even opened.
    rows = (
        await HandoffNote.select(HandoffNote.author, HandoffNote.created_at)
        .where((HandoffNote.tenant_id == tenant_id) & (HandoffNote.grant_id == grant_id))
        .order_by(HandoffNote.created_at)
    )
    return [ReportNote(row["author"], row["created_at"], None) for row in rows]


async def _extensions(tenant_id: uuid.UUID, grant_id: uuid.UUID) -> list[ExtensionView]:
    rows = (
        await GrantExtension.select()
        .where((GrantExtension.tenant_id == tenant_id) & (GrantExtension.grant_id == grant_id))
        .order_by(GrantExtension.requested_at)
    )
    return [msgspec.convert(row, ExtensionView, strict=False) for row in rows]


async def incident_report(
    actor: Actor, keyring: KeyRing, clock: Clock, handoff_id: uuid.UUID
) -> IncidentReport:
    """The report of one handoff of the caller's tenant (the MSP that handed it off).

    Needs `audit:read`; any other tenant's handoff, the partner NOC's included, is "not found".
    Like a search, making the report writes nothing to the chain (see `audit_search.search`).
    """
    tenant_id = actor.require(Permission.AUDIT_READ)
    handoff: dict[str, Any] | None = (
        await Handoff.select()
        .where((Handoff.id == handoff_id) & (Handoff.tenant_id == tenant_id))
        .first()
    )
    if handoff is None:
        raise NotFound("no such handoff")
    row = await grant_row((Grant.handoff_id == handoff_id) & (Grant.tenant_id == tenant_id))
    assert row is not None
    grant_id: uuid.UUID = row["id"]
    msp = await Tenant.select(Tenant.name, Tenant.time_zone).where(Tenant.id == tenant_id).first()
    assert msp is not None
    content = actor.can(Permission.CONTENT_READ)
    summary = None
    if content:
        summary = await open_text(
            keyring,
            tenant_id,
            "handoff",
            handoff_id,
            bytes(handoff["wrapped_dek"]),
            bytes(handoff["summary_sealed"]),
        )
    access: list[AccessEvent] = []
    break_glass: list[AccessEvent] = []
    timeline: list[AccessEvent] = []
    access_total = 0
    async for entry in grant_events(tenant_id, grant_id):
        if entry.action not in ACCESS_ACTIONS:
            timeline.append(entry)
            continue
        access_total += 1
        if entry.break_glass:
            break_glass.append(entry)
        if len(access) < MAX_ACCESS_ROWS:
            access.append(entry)
    now = await clock.now()
    return IncidentReport(
        handoff_id=handoff_id,
        psa_reference=handoff["psa_reference"],
        severity=handoff["severity"],
        msp_name=msp["name"],
        time_zone=msp["time_zone"],
        client_name=row["client_id.name"],
        partner_name=row["noc_tenant_id.name"],
        partner_slug=row["noc_tenant_id.slug"],
        created_by=handoff["created_by"],
        created_at=handoff["created_at"],
        content_visible=content,
        summary=summary,
        grant=grant_view(row, now),
        access=access,
        access_total=access_total,
        break_glass=break_glass,
        timeline=timeline,
        notes=await _notes(keyring, tenant_id, grant_id, content=content),
        extensions=await _extensions(tenant_id, grant_id),
        chain=await verify_chain(tenant_id),
        generated_at=now,
    )


async def grant_events(tenant_id: uuid.UUID, grant_id: uuid.UUID) -> AsyncIterator[AccessEvent]:
    """Every event of the grant in `tenant_id`'s chain (the MSP's or the partner NOC's), oldest
    first, as the report lists them; `ACCESS_ACTIONS` tells the accesses from the grant's own
    history. The caller has checked that whoever asks may read this chain."""
    async for event in iter_matching(tenant_id, AuditQuery(grant_id=grant_id, order=Order.ASC)):
        yield _access(event)
