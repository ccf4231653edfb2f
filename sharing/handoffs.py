"""Handoffs and their grants, MSP side: hand off, revoke, complete, extend, read notes.

A grant is `scheduled -> active -> expired | revoked | completed`. Its window is enforced on
every read from the database (see `partner_access`); the state kept here is what people see and
what the worker moves on time.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from piccolo.querystring import QueryString

from policies.ceiling import Ceiling
from policies.decision import (
    DocumentFacts,
    GrantFacts,
    GrantScope,
    ReadRequest,
    decide_grant,
    decide_read,
)
from policies.schedule import shift_end
from policies.vocabulary import DocumentKind, Sensitivity
from sharing import documents
from sharing.audit import AuditAction, RequestMeta, Severity, record
from sharing.audit_search import AuditQuery, Order, context_member, iter_matching
from sharing.clock import Clock
from sharing.documents import normalise_tags
from sharing.events import EventType, emit
from sharing.partnerships import PartnershipStatus, TenantRef
from sharing.schedules import load_rules, load_schedule
from sharing.sealed import open_text, seal_text
from sharing.tables import (
    AuditEvent,
    Client,
    Document,
    Grant,
    GrantExtension,
    Handoff,
    HandoffNote,
    Partnership,
)
from tenants import service
from tenants.db import write_transaction
from tenants.errors import Conflict, Forbidden, Invalid, NotFound
from tenants.keyring import KeyRing
from tenants.roles import Actor, Permission
from tenants.tables import IssuedToken

__all__ = [
    "GRANT_COLUMNS",
    "MAX_SUMMARY_CHARS",
    "ExtensionView",
    "GrantActivity",
    "GrantRead",
    "GrantStatus",
    "GrantView",
    "HandoffPlan",
    "HandoffView",
    "NoteView",
    "ProposedEnd",
    "ScopePreview",
    "ScopedDocument",
    "Severity4",
    "complete_grant",
    "create_handoff",
    "decide_extension",
    "default_scope",
    "documents_in_scope",
    "effective_status",
    "get_grant",
    "get_handoff",
    "grant_activity",
    "grant_reads",
    "grant_row",
    "grant_view",
    "list_grants",
    "list_notes",
    "plan_handoff",
    "proposed_end",
    "revoke_grant",
    "revoke_grant_tokens",
]

MAX_SUMMARY_CHARS = 2000
MAX_REASON_CHARS = 500
_NO_REQUEST = RequestMeta()


class GrantStatus(enum.StrEnum):
    SCHEDULED = "scheduled"
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"
    COMPLETED = "completed"


_LIVE = (GrantStatus.SCHEDULED.value, GrantStatus.ACTIVE.value)


class Severity4(enum.StrEnum):
    """After-hours priority: P1 respond in ~15 minutes ... P4 in 8 hours."""

    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
    P4 = "P4"


class GrantView(msgspec.Struct, frozen=True):
    id: uuid.UUID
    handoff_id: uuid.UUID
    msp: TenantRef
    noc: TenantRef
    client_id: uuid.UUID
    client_name: str
    psa_reference: str
    severity: Severity4
    scope: GrantScope
    status: GrantStatus
    starts_at: datetime
    ends_at: datetime
    ended_at: datetime | None
    end_reason: str | None
    seconds_left: int


class NoteView(msgspec.Struct, frozen=True):
    id: uuid.UUID
    author: str
    body: str
    created_at: datetime


class ExtensionView(msgspec.Struct, frozen=True):
    id: uuid.UUID
    reason: str
    requested_ends_at: datetime | None
    status: str
    requested_by: str
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    new_ends_at: datetime | None


class HandoffView(msgspec.Struct, frozen=True):
    id: uuid.UUID
    psa_reference: str
    severity: Severity4
    summary: str
    grant: GrantView
    notes: list[NoteView]
    extensions: list[ExtensionView]


GRANT_COLUMNS: tuple[Any, ...] = (
    *Grant.all_columns(),
    Grant.tenant_id.name,
    Grant.tenant_id.slug,
    Grant.noc_tenant_id.name,
    Grant.noc_tenant_id.slug,
    Grant.client_id.name,
    Grant.handoff_id.psa_reference,
    Grant.handoff_id.severity,
)


def effective_status(row: dict[str, Any], now: datetime) -> GrantStatus:
    """What the grant is now, whether or not the worker has moved it yet."""
    status = GrantStatus(row["status"])
    if status.value in _LIVE:
        if now >= row["ends_at"]:
            return GrantStatus.EXPIRED
        return GrantStatus.ACTIVE if now >= row["starts_at"] else GrantStatus.SCHEDULED
    return status


def grant_view(row: dict[str, Any], now: datetime) -> GrantView:
    status = effective_status(row, now)
    left = (row["ends_at"] - now).total_seconds() if status.value in _LIVE else 0
    return GrantView(
        id=row["id"],
        handoff_id=row["handoff_id"],
        msp=TenantRef(row["tenant_id"], row["tenant_id.name"], row["tenant_id.slug"]),
        noc=TenantRef(row["noc_tenant_id"], row["noc_tenant_id.name"], row["noc_tenant_id.slug"]),
        client_id=row["client_id"],
        client_name=row["client_id.name"],
        psa_reference=row["handoff_id.psa_reference"],
        severity=Severity4(row["handoff_id.severity"]),
        scope=msgspec.convert(row["scope"], GrantScope),
        status=status,
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        ended_at=row["ended_at"],
        end_reason=row["end_reason"],
        seconds_left=max(0, int(left)),
    )


async def grant_row(where: Any) -> dict[str, Any] | None:
    row: dict[str, Any] | None = (
        await Grant.select(*GRANT_COLUMNS).where(where).first().output(load_json=True)
    )
    return row


_NOT_MSP = "only an MSP hands off incidents"


def _text(value: str, name: str, limit: int) -> str:
    value = value.strip()
    if not 1 <= len(value) <= limit:
        raise Invalid(f"{name} needs 1 to {limit} characters", code=name)
    return value


def default_scope(ceiling: Ceiling) -> GrantScope:
    """The widest scope the ceiling allows."""
    return GrantScope(
        document_kinds=list(ceiling.document_kinds),
        tags=[],
        max_sensitivity=Sensitivity.SECRET if ceiling.secrets_allowed else Sensitivity.CONFIDENTIAL,
    )


async def create_handoff(
    actor: Actor,
    keyring: KeyRing,
    clock: Clock,
    *,
    partner: str,
    client_id: uuid.UUID,
    psa_reference: str,
    summary: str,
    severity: Severity4,
    scope: GrantScope | None = None,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    request: RequestMeta = _NO_REQUEST,
) -> HandoffView:
    """Hand an incident to a partner NOC; the grant ends at shift end unless told otherwise."""
    plan = await plan_handoff(
        actor,
        clock,
        partner=partner,
        client_id=client_id,
        psa_reference=psa_reference,
        summary=summary,
        severity=severity,
        scope=scope,
        starts_at=starts_at,
        ends_at=ends_at,
    )
    tenant_id = actor.require_msp(Permission.HANDOFF_CREATE, _NOT_MSP)
    noc, psa_reference, begins, ends_at = plan.noc, plan.psa_reference, plan.starts_at, plan.ends_at
    now = await clock.now()
    handoff_id, grant_id = uuid.uuid4(), uuid.uuid4()
    status = GrantStatus.SCHEDULED if begins > now else GrantStatus.ACTIVE
    async with write_transaction():
        sealed = await seal_text(keyring, tenant_id, "handoff", handoff_id, plan.summary)
        await Handoff.insert(
            Handoff(
                id=handoff_id,
                tenant_id=tenant_id,
                noc_tenant_id=noc.id,
                partnership_id=plan.partnership_id,
                client_id=client_id,
                psa_reference=psa_reference,
                severity=severity.value,
                kek_version=sealed.kek_version,
                wrapped_dek=sealed.wrapped_dek,
                summary_sealed=sealed.sealed,
                created_by=actor.label,
                created_at=now,
            )
        )
        await Grant.insert(
            Grant(
                id=grant_id,
                tenant_id=tenant_id,
                noc_tenant_id=noc.id,
                handoff_id=handoff_id,
                partnership_id=plan.partnership_id,
                client_id=client_id,
                scope=msgspec.to_builtins(plan.scope),
                status=status.value,
                starts_at=begins,
                ends_at=ends_at,
                warn_at=plan.warn_at,
                created_at=now,
                updated_at=now,
            )
        )
        context = {
            "grant_id": str(grant_id),
            "handoff_id": str(handoff_id),
            "psa_reference": psa_reference,
            "client_id": str(client_id),
            "msp_tenant_id": str(tenant_id),
            "noc_tenant_id": str(noc.id),
            "ends_at": ends_at.isoformat(),
        }
        for chain in sorted((tenant_id, noc.id)):
            await record(
                chain,
                AuditAction.GRANT_CREATED,
                actor=actor,
                target_type="grant",
                target_id=grant_id,
                request=request,
                context=context,
            )
        await emit(
            (tenant_id, noc.id),
            EventType.GRANT_CREATED,
            {k: context[k] for k in ("grant_id", "psa_reference", "ends_at")},
        )
    return await get_handoff(actor, keyring, clock, handoff_id)


async def list_grants(
    actor: Actor, clock: Clock, *, live_only: bool = False, ended_since: datetime | None = None
) -> list[GrantView]:
    """The MSP's grants, newest first: all (500 at most), the live ones only, or the live ones
    and those ended since `ended_since`."""
    tenant_id = actor.require_msp(Permission.TENANT_READ, _NOT_MSP)
    now = await clock.now()
    where: Any = Grant.tenant_id == tenant_id
    if live_only:
        where &= Grant.status.is_in(list(_LIVE)) & (Grant.ends_at > now)
    elif ended_since is not None:  # a grant never ends after its `ends_at`
        where &= Grant.status.is_in(list(_LIVE)) | (Grant.ends_at >= ended_since)
    rows = (
        await Grant.select(*GRANT_COLUMNS)
        .where(where)
        .order_by(Grant.created_at, ascending=False)
        .limit(500)
        .output(load_json=True)
    )
    return [grant_view(row, now) for row in rows]


async def get_handoff(
    actor: Actor, keyring: KeyRing, clock: Clock, handoff_id: uuid.UUID
) -> HandoffView:
    """The incident with its grant, notes and extension requests (MSP side)."""
    tenant_id = actor.require_msp(Permission.TENANT_READ, _NOT_MSP)
    handoff = (
        await Handoff.select()
        .where((Handoff.id == handoff_id) & (Handoff.tenant_id == tenant_id))
        .first()
    )
    if handoff is None:
        raise NotFound("no such handoff")
    row = await grant_row((Grant.handoff_id == handoff_id) & (Grant.tenant_id == tenant_id))
    assert row is not None
    if not actor.can(Permission.CONTENT_READ):
        raise Forbidden("your role may not read incident details", code="no_body_access")
    summary = await open_text(
        keyring,
        tenant_id,
        "handoff",
        handoff_id,
        bytes(handoff["wrapped_dek"]),
        bytes(handoff["summary_sealed"]),
    )
    return HandoffView(
        id=handoff_id,
        psa_reference=handoff["psa_reference"],
        severity=Severity4(handoff["severity"]),
        summary=summary,
        grant=grant_view(row, await clock.now()),
        notes=await list_notes(keyring, tenant_id, row["id"]),
        extensions=await _extensions(tenant_id, row["id"]),
    )


async def list_notes(keyring: KeyRing, tenant_id: uuid.UUID, grant_id: uuid.UUID) -> list[NoteView]:
    rows = (
        await HandoffNote.select()
        .where((HandoffNote.tenant_id == tenant_id) & (HandoffNote.grant_id == grant_id))
        .order_by(HandoffNote.created_at)
    )
    return [
        NoteView(
            id=row["id"],
            author=row["author"],
            body=await open_text(
                keyring,
                tenant_id,
                "note",
                row["id"],
                bytes(row["wrapped_dek"]),
                bytes(row["body_sealed"]),
            ),
            created_at=row["created_at"],
        )
        for row in rows
    ]


async def _extensions(tenant_id: uuid.UUID, grant_id: uuid.UUID) -> list[ExtensionView]:
    rows = (
        await GrantExtension.select()
        .where((GrantExtension.tenant_id == tenant_id) & (GrantExtension.grant_id == grant_id))
        .order_by(GrantExtension.requested_at)
    )
    return [msgspec.convert(row, ExtensionView, strict=False) for row in rows]


async def revoke_grant_tokens(grant_id: uuid.UUID, now: datetime) -> int:
    """Every token minted for the grant stops working (the partner API reads this each time)."""
    rows = (
        await IssuedToken.update({IssuedToken.revoked_at: now})
        .where((IssuedToken.grant_id == grant_id) & IssuedToken.revoked_at.is_null())
        .returning(IssuedToken.jti)
    )
    return len(rows)


async def _end_grant(
    actor: Actor,
    clock: Clock,
    grant_id: uuid.UUID,
    status: GrantStatus,
    reason: str | None,
    action: AuditAction,
    event: EventType | None,
    request: RequestMeta,
) -> GrantView:
    tenant_id = actor.require_msp(Permission.HANDOFF_CREATE, _NOT_MSP)
    now = await clock.now()
    async with write_transaction():
        row = await grant_row((Grant.id == grant_id) & (Grant.tenant_id == tenant_id))
        if row is None:
            raise NotFound("no such grant")
        current = effective_status(row, now)
        if current.value not in _LIVE:
            raise Conflict(f"the grant is {current.value} already", code="grant_ended")
        updated = (
            await Grant.update(
                {
                    Grant.status: status.value,
                    Grant.ended_at: now,
                    Grant.end_reason: reason,
                    Grant.updated_at: now,
                }
            )
            .where((Grant.id == grant_id) & Grant.status.is_in(list(_LIVE)))
            .returning(Grant.id)
        )
        if not updated:
            raise Conflict("the grant changed meanwhile: reload", code="stale")
        tokens = await revoke_grant_tokens(grant_id, now)
        context = {
            "grant_id": str(grant_id),
            "psa_reference": row["handoff_id.psa_reference"],
            "tokens_revoked": str(tokens),
        }
        for chain in sorted((tenant_id, row["noc_tenant_id"])):
            await record(
                chain,
                action,
                actor=actor,
                target_type="grant",
                target_id=grant_id,
                reason=reason,
                severity=Severity.WARNING if status is GrantStatus.REVOKED else Severity.INFO,
                request=request,
                context=context,
            )
        if event is not None:
            await emit((tenant_id, row["noc_tenant_id"]), event, context)
    refreshed = await grant_row(Grant.id == grant_id)
    assert refreshed is not None
    return grant_view(refreshed, now)


async def revoke_grant(
    actor: Actor,
    clock: Clock,
    grant_id: uuid.UUID,
    reason: str,
    *,
    request: RequestMeta = _NO_REQUEST,
) -> GrantView:
    """End the grant at once; its tokens stop working on the next request."""
    reason = _text(reason, "reason", MAX_REASON_CHARS)
    return await _end_grant(
        actor,
        clock,
        grant_id,
        GrantStatus.REVOKED,
        reason,
        AuditAction.GRANT_REVOKED,
        EventType.GRANT_REVOKED,
        request,
    )


async def complete_grant(
    actor: Actor, clock: Clock, grant_id: uuid.UUID, *, request: RequestMeta = _NO_REQUEST
) -> GrantView:
    """The incident is closed: the grant ends now."""
    return await _end_grant(
        actor,
        clock,
        grant_id,
        GrantStatus.COMPLETED,
        None,
        AuditAction.GRANT_COMPLETED,
        None,
        request,
    )


async def decide_extension(
    actor: Actor,
    clock: Clock,
    extension_id: uuid.UUID,
    *,
    approve: bool,
    new_ends_at: datetime | None = None,
    request: RequestMeta = _NO_REQUEST,
) -> ExtensionView:
    """Approve (the grant ends later, still within every limit) or decline a request."""
    tenant_id = actor.require_msp(Permission.HANDOFF_CREATE, _NOT_MSP)
    now = await clock.now()
    async with write_transaction():
        extension = (
            await GrantExtension.select()
            .where((GrantExtension.id == extension_id) & (GrantExtension.tenant_id == tenant_id))
            .first()
        )
        if extension is None:
            raise NotFound("no such extension request")
        if extension["status"] != "pending":
            raise Conflict(f"the request is {extension['status']} already", code="decided")
        row = await grant_row(Grant.id == extension["grant_id"])
        assert row is not None
        if effective_status(row, now).value not in _LIVE:
            raise Conflict("the grant has ended: hand off again instead", code="grant_ended")
        changes: dict[Any, Any] = {
            GrantExtension.status: "approved" if approve else "declined",
            GrantExtension.decided_by: actor.label,
            GrantExtension.decided_at: now,
        }
        if approve:
            target = new_ends_at or extension["requested_ends_at"]
            if target is None:
                raise Invalid("give new_ends_at: the request named no end", code="new_ends_at")
            if target <= row["ends_at"]:
                raise Invalid(
                    "an extension must end later than the grant does now", code="new_ends_at"
                )
            partnership = (
                await Partnership.select(Partnership.ceiling, Partnership.status)
                .where(Partnership.id == row["partnership_id"])
                .first()
                .output(load_json=True)
            )
            assert partnership is not None
            rules = await load_rules(tenant_id)
            decision = decide_grant(
                scope=msgspec.convert(row["scope"], GrantScope),
                ceiling=msgspec.convert(partnership["ceiling"], Ceiling),
                rules=rules,
                client_id=row["client_id"],
                starts_at=row["starts_at"],
                ends_at=target,
                now=now,
                partnership_active=partnership["status"] == PartnershipStatus.ACTIVE.value,
            )
            if not decision.allowed:
                raise Invalid(
                    "; ".join(r.message for r in decision.reasons), code=",".join(decision.codes)
                )
            changes[GrantExtension.new_ends_at] = target
            await Grant.update(
                {
                    Grant.ends_at: target,
                    Grant.warn_at: rules.warning_at(target),
                    Grant.warned_at: None,
                    Grant.updated_at: now,
                }
            ).where(Grant.id == row["id"])
        await GrantExtension.update(changes).where(GrantExtension.id == extension_id)
        context = {"grant_id": str(row["id"]), "extension_id": str(extension_id)}
        if approve:
            context["ends_at"] = changes[GrantExtension.new_ends_at].isoformat()
        for chain in sorted((tenant_id, row["noc_tenant_id"])):
            await record(
                chain,
                AuditAction.GRANT_EXTENDED if approve else AuditAction.GRANT_EXTENSION_DECLINED,
                actor=actor,
                target_type="grant",
                target_id=row["id"],
                request=request,
                context=context,
            )
        if approve:
            await emit((tenant_id, row["noc_tenant_id"]), EventType.GRANT_EXTENDED, context)
    refreshed = await GrantExtension.select().where(GrantExtension.id == extension_id).first()
    return msgspec.convert(refreshed, ExtensionView, strict=False)


# --- Before a handoff: the plan, the proposed end, what the scope covers -----------------------


class HandoffPlan(msgspec.Struct, frozen=True):
    """A handoff checked as `create_handoff` checks it, with every default filled in."""

    noc: TenantRef
    partnership_id: uuid.UUID
    ceiling: Ceiling
    client_id: uuid.UUID
    client_name: str
    psa_reference: str
    summary: str
    severity: Severity4
    scope: GrantScope
    starts_at: datetime
    ends_at: datetime
    warn_at: datetime | None
    """When the worker warns that the grant ends soon (the MSP's rules), if ever."""


class ProposedEnd(msgspec.Struct, frozen=True):
    """Where a handoff made now would end by default: `shift_end` plus the hand-back buffer.
    `shift_end` is None without business hours, or when they never close."""

    time_zone: str
    shift_end: datetime | None
    handback_buffer_minutes: int


class ScopedDocument(msgspec.Struct, frozen=True):
    id: uuid.UUID
    kind: DocumentKind
    title: str
    tags: list[str]
    sensitivity: Sensitivity
    break_glass_only: bool


class ScopePreview(msgspec.Struct, frozen=True):
    """The documents a grant with this scope lets the partner reach, and how many of the
    client's (and the MSP's client-less) documents stay out of it."""

    documents: list[ScopedDocument]
    out_of_scope: int


async def _active_partnership(
    tenant_id: uuid.UUID, partner: str
) -> tuple[TenantRef, dict[str, Any]]:
    """The MSP's latest partnership with the NOC `partner` (a slug), which must be active."""
    try:
        noc = await service.get_tenant_by_slug(partner)
    except NotFound:
        raise Invalid(f"no partner NOC with the slug {partner!r}", code="partner_unknown") from None
    partnership = (
        await Partnership.select()
        .where((Partnership.tenant_id == tenant_id) & (Partnership.noc_tenant_id == noc.id))
        .order_by(Partnership.created_at, ascending=False)
        .first()
        .output(load_json=True)
    )
    if partnership is None:
        raise Invalid(f"{noc.slug} is not a partner of this MSP", code="partner_unknown")
    if partnership["status"] != PartnershipStatus.ACTIVE.value:
        raise Conflict(
            f"the partnership with {noc.slug} is {partnership['status']}",
            code="partnership_inactive",
        )
    return TenantRef(noc.id, noc.name, noc.slug), partnership


async def plan_handoff(
    actor: Actor,
    clock: Clock,
    *,
    partner: str,
    client_id: uuid.UUID,
    psa_reference: str,
    summary: str,
    severity: Severity4,
    scope: GrantScope | None = None,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
) -> HandoffPlan:
    """Every check `create_handoff` makes, in its order, and nothing written: what a person
    confirms before handing off. A refusal of the grant decision lists each of its reasons in
    `extra["reasons"]` (code and message), so that a form can show each next to its field."""
    tenant_id = actor.require_msp(Permission.HANDOFF_CREATE, _NOT_MSP)
    psa_reference = _text(psa_reference, "psa_reference", 100)
    summary = _text(summary, "summary", MAX_SUMMARY_CHARS)
    now = await clock.now()
    noc, partnership = await _active_partnership(tenant_id, partner)
    client = (
        await Client.select(Client.name)
        .where(
            (Client.id == client_id)
            & (Client.tenant_id == tenant_id)
            & Client.archived_at.is_null()
        )
        .first()
    )
    if client is None:
        raise Invalid("no such client (or it is archived)", code="client_unknown")
    ceiling = msgspec.convert(partnership["ceiling"], Ceiling)
    rules = await load_rules(tenant_id)
    scope = scope or default_scope(ceiling)
    scope = GrantScope(
        document_kinds=sorted(set(scope.document_kinds)),
        tags=normalise_tags(scope.tags),
        max_sensitivity=scope.max_sensitivity,
    )
    begins = max(starts_at or now, now)
    if ends_at is None:
        schedule = await load_schedule(tenant_id)
        if schedule is None:
            raise Invalid("set business hours first, or give ends_at", code="no_schedule")
        end = shift_end(schedule.hours, begins)
        if end is None:
            raise Invalid("the schedule never closes: give ends_at", code="no_shift_end")
        ends_at = end + timedelta(minutes=schedule.handback_buffer_minutes)
    decision = decide_grant(
        scope=scope,
        ceiling=ceiling,
        rules=rules,
        client_id=client_id,
        starts_at=begins,
        ends_at=ends_at,
        now=now,
        partnership_active=True,
    )
    if not decision.allowed:
        raise Invalid(
            "; ".join(reason.message for reason in decision.reasons),
            code=",".join(decision.codes),
            extra={"reasons": [{"code": r.code, "message": r.message} for r in decision.reasons]},
        )
    return HandoffPlan(
        noc=noc,
        partnership_id=partnership["id"],
        ceiling=ceiling,
        client_id=client_id,
        client_name=client["name"],
        psa_reference=psa_reference,
        summary=summary,
        severity=severity,
        scope=scope,
        starts_at=begins,
        ends_at=ends_at,
        warn_at=rules.warning_at(ends_at),
    )


async def proposed_end(actor: Actor, clock: Clock) -> ProposedEnd:
    """The default end of a handoff made now, as `create_handoff` computes it, and the zone to
    show it in (the schedule's, else the tenant's)."""
    tenant_id = actor.require_msp(Permission.HANDOFF_CREATE, _NOT_MSP)
    schedule = await load_schedule(tenant_id)
    if schedule is None:
        tenant = await service.get_tenant(tenant_id)
        return ProposedEnd(time_zone=tenant.time_zone, shift_end=None, handback_buffer_minutes=0)
    return ProposedEnd(
        time_zone=schedule.hours.time_zone,
        shift_end=shift_end(schedule.hours, await clock.now()),
        handback_buffer_minutes=schedule.handback_buffer_minutes,
    )


# What a read request adds to the decision: the reader's address, its break-glass reason, its
# pace. A preview has no request, so these never take a document out of the scope; a secret is
# listed as the bundle lists it, to be revealed by break-glass only.
_REQUEST_CODES = frozenset({"break_glass_required", "network_not_allowed", "rate_exceeded"})


def _document_facts(row: dict[str, Any]) -> DocumentFacts:
    return DocumentFacts(
        id=row["id"],
        client_id=row["client_id"],
        kind=DocumentKind(str(row["kind"])),
        tags=frozenset(tag for tag in str(row["tags"]).split("|") if tag),
        sensitivity=Sensitivity(str(row["sensitivity"])),
        archived=row["archived_at"] is not None,
    )


async def documents_in_scope(
    actor: Actor,
    keyring: KeyRing,
    *,
    client_id: uuid.UUID,
    partner: str,
    scope: GrantScope,
) -> ScopePreview:
    """What a grant with `scope` would let `partner` read: each of the client's documents (and
    the MSP's client-less ones) put to `decide_read`, as the partner bundle does, under a
    grant in force now. Titles are opened; no body is."""
    tenant_id = actor.require_msp(Permission.HANDOFF_CREATE, _NOT_MSP)
    _, partnership = await _active_partnership(tenant_id, partner)
    ceiling = msgspec.convert(partnership["ceiling"], Ceiling)
    rules = await load_rules(tenant_id)
    now = datetime.now(UTC)
    grant = GrantFacts(
        id=uuid.uuid4(),
        status=GrantStatus.ACTIVE.value,
        starts_at=now,
        ends_at=now + timedelta(hours=1),  # the window is decided at read time, not here
        client_id=client_id,
        scope=scope,
        partnership_active=True,
    )
    rows = await Document.select().where(
        (Document.tenant_id == tenant_id)
        & (Document.client_id.is_null() | (Document.client_id == client_id))
        & Document.archived_at.is_null()
    )
    listed: list[ScopedDocument] = []
    for row in rows:
        facts = _document_facts(row)
        decision = decide_read(grant, ceiling, rules, facts, ReadRequest(now))
        if not set(decision.codes) <= _REQUEST_CODES:
            continue
        listed.append(
            ScopedDocument(
                id=facts.id,
                kind=facts.kind,
                title=await documents.current_title(keyring, tenant_id, row),
                tags=sorted(facts.tags),
                sensitivity=facts.sensitivity,
                break_glass_only=facts.sensitivity is Sensitivity.SECRET,
            )
        )
    listed.sort(key=lambda doc: (doc.kind.value, doc.title.lower()))
    return ScopePreview(documents=listed, out_of_scope=len(rows) - len(listed))


# --- Live grants: one grant, what happened under them -----------------------------------------


class GrantActivity(msgspec.Struct, frozen=True):
    """Counts from the MSP's chain: documents read (break-glass included), break-glass reads,
    refused reads."""

    reads: int = 0
    break_glass: int = 0
    denied: int = 0


class GrantRead(msgspec.Struct, frozen=True):
    occurred_at: datetime
    actor_label: str
    action: str
    outcome: str
    document_id: uuid.UUID | None
    title: str | None
    reason: str | None
    break_glass: bool


_READ_ACTIONS = (
    AuditAction.PARTNER_DOCUMENT_READ,
    AuditAction.BREAK_GLASS,
    AuditAction.PARTNER_DOCUMENT_DENIED,
)

_ACTIVITY_SQL = """
SELECT {} AS grant_id,
       SUM(CASE WHEN outcome = 'success' THEN 1 ELSE 0 END) AS reads,
       SUM(CASE WHEN action = {} THEN 1 ELSE 0 END) AS break_glass,
       SUM(CASE WHEN outcome = 'denied' THEN 1 ELSE 0 END) AS denied
FROM audit_events
WHERE tenant_id = {} AND {} IN ({}) AND action IN ({}, {}, {})
GROUP BY 1
"""


async def get_grant(actor: Actor, clock: Clock, grant_id: uuid.UUID) -> GrantView:
    """One of the MSP's grants (404 for any other tenant's)."""
    tenant_id = actor.require_msp(Permission.TENANT_READ, _NOT_MSP)
    row = await grant_row((Grant.id == grant_id) & (Grant.tenant_id == tenant_id))
    if row is None:
        raise NotFound("no such grant")
    return grant_view(row, await clock.now())


async def grant_activity(
    actor: Actor, grant_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, GrantActivity]:
    """Reads under each of the MSP's grants, from its own chain, in one query for them all.
    A grant with no reads (or not the MSP's) is absent from the answer."""
    tenant_id = actor.require_msp(Permission.TENANT_READ, _NOT_MSP)
    if not grant_ids:
        return {}
    member = context_member("grant_id")
    wanted = QueryString(", ".join("{}" for _ in grant_ids), *(str(g) for g in grant_ids))
    rows = await AuditEvent.raw(
        _ACTIVITY_SQL,
        member,
        AuditAction.BREAK_GLASS.value,
        tenant_id,
        member,
        wanted,
        *(action.value for action in _READ_ACTIONS),
    )
    return {
        uuid.UUID(str(row["grant_id"])): GrantActivity(
            reads=int(row["reads"] or 0),
            break_glass=int(row["break_glass"] or 0),
            denied=int(row["denied"] or 0),
        )
        for row in rows
    }


async def grant_reads(
    actor: Actor, keyring: KeyRing, grant_id: uuid.UUID, *, limit: int = 200
) -> list[GrantRead]:
    """The latest document reads under one of the MSP's grants, allowed, break-glass (with
    the partner's reason) and refused, newest first, with the documents' titles."""
    tenant_id = actor.require_msp(Permission.HANDOFF_CREATE, _NOT_MSP)
    if not await Grant.exists().where((Grant.id == grant_id) & (Grant.tenant_id == tenant_id)):
        raise NotFound("no such grant")
    query = AuditQuery(grant_id=grant_id, action=_READ_ACTIONS, order=Order.DESC)
    events = []
    async for event in iter_matching(tenant_id, query, batch=limit):
        events.append(event)
        if len(events) >= limit:  # the first batch: no second query is made
            break
    ids = {uuid.UUID(e.context["document_id"]) for e in events if "document_id" in e.context}
    titles: dict[uuid.UUID, str] = {}
    if ids:
        rows = await Document.select().where(
            (Document.tenant_id == tenant_id) & Document.id.is_in(list(ids))
        )
        for row in rows:
            titles[row["id"]] = await documents.current_title(keyring, tenant_id, row)
    reads = []
    for event in events:
        raw_id = event.context.get("document_id")
        document_id = uuid.UUID(raw_id) if raw_id else None
        reads.append(
            GrantRead(
                occurred_at=event.occurred_at,
                actor_label=event.actor_label,
                action=event.action,
                outcome=event.outcome,
                document_id=document_id,
                title=titles.get(document_id) if document_id else None,
                reason=event.reason,
                break_glass=event.action == AuditAction.BREAK_GLASS.value,
            )
        )
    return reads
