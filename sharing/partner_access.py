"""What a partner NOC reaches through its grants: the bundle, documents, notes, extensions.

Every read is decided by `policies.decision.decide_read` from the database's current state (the
grant's window included: no background job is trusted), and audited, allowed or denied, in the
same transaction as the read, in both the MSP's chain (owner) and the NOC's (actor). If the
event cannot be written nothing is served.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import anyio
import msgspec

from policies.ceiling import Ceiling
from policies.decision import (
    MAX_BREAK_GLASS_REASON,
    Decision,
    DocumentFacts,
    GrantFacts,
    GrantScope,
    MspRules,
    ReadRequest,
    Reason,
    check_grant_window,
    decide_read,
)
from policies.vocabulary import DocumentKind, Sensitivity
from sharing import documents
from sharing.audit import (
    AuditAction,
    AuditAppender,
    EventSpec,
    Outcome,
    RequestMeta,
    Severity,
    append_events,
    record,
)
from sharing.clock import Clock
from sharing.documents import CredentialFields
from sharing.events import EventType, emit
from sharing.handoffs import GRANT_COLUMNS, GrantView, effective_status, grant_row, grant_view
from sharing.partnerships import PartnershipStatus
from sharing.schedules import load_rules
from sharing.sealed import open_text, seal_text
from sharing.tables import (
    Client,
    Document,
    Grant,
    GrantExtension,
    Handoff,
    HandoffNote,
    Partnership,
    RotationItem,
)
from tenants import service
from tenants.db import write_transaction
from tenants.errors import Conflict, Forbidden, Invalid, NotFound
from tenants.keyring import IntegrityFailure, KeyRing
from tenants.passwords import verify_password
from tenants.roles import Actor, ActorKind, Permission

__all__ = [
    "MAX_NOTE_CHARS",
    "Bundle",
    "BundleDocument",
    "Partner",
    "PartnerDocument",
    "ReadCounter",
    "confirm_break_glass_password",
    "list_partner_grants",
    "list_user_grants",
    "partner_bundle",
    "partner_extension",
    "partner_grant",
    "partner_note",
    "partner_read",
]

MAX_NOTE_CHARS = 20_000
READ_SCOPE = "partner:read"
BREAK_GLASS_SCOPE = "partner:break_glass"
NOTES_SCOPE = "partner:notes"
_LIVE = ("scheduled", "active")


@runtime_checkable
class ReadCounter(Protocol):
    """Counts a grant's reads in the current minute (Redis when configured)."""

    async def hit(self, grant_id: uuid.UUID) -> int: ...


@dataclass(frozen=True, slots=True)
class Partner:
    """Who reads for a NOC: an OAuth client, as its verified access token says, or a NOC
    technician signed in to the portal (`for_user`). `client_pk` and `client_id` are then the
    user's id and email."""

    tenant_id: uuid.UUID
    client_pk: uuid.UUID
    client_id: str
    bound_grant_id: uuid.UUID | None
    scopes: frozenset[str] = frozenset({READ_SCOPE})
    kind: ActorKind = ActorKind.OAUTH_CLIENT

    @classmethod
    def for_user(cls, actor: Actor, grant_id: uuid.UUID, *, break_glass: bool) -> Partner:
        """A NOC technician in the portal, reading the grant the page is about. Secrets need
        `break_glass`: the portal sets it only right after the user entered their password
        again. Reading needs the content permission of a NOC tenant (not an auditor's)."""
        if actor.id is None or actor.tenant_kind is None or not actor.tenant_kind.is_noc:
            raise Forbidden("only a NOC tenant reads partner grants", code="not_noc")
        tenant_id = actor.require(Permission.CONTENT_READ)
        scopes = {READ_SCOPE, NOTES_SCOPE} | ({BREAK_GLASS_SCOPE} if break_glass else set())
        return cls(
            tenant_id=tenant_id,
            client_pk=actor.id,
            client_id=actor.label,
            bound_grant_id=grant_id,
            scopes=frozenset(scopes),
            kind=ActorKind.USER,
        )

    @property
    def actor(self) -> Actor:
        return Actor(
            kind=self.kind,
            id=self.client_pk,
            label=self.client_id,
            tenant_id=self.tenant_id,
        )


class BundleDocument(msgspec.Struct, frozen=True):
    id: uuid.UUID
    kind: DocumentKind
    title: str
    tags: list[str]
    sensitivity: Sensitivity
    break_glass_required: bool


class Bundle(msgspec.Struct, frozen=True):
    grant: GrantView
    summary: str
    client: dict[str, str]
    documents: list[BundleDocument]


class PartnerDocument(msgspec.Struct, frozen=True):
    id: uuid.UUID
    kind: DocumentKind
    title: str
    tags: list[str]
    sensitivity: Sensitivity
    revision: int
    body: str
    fields: CredentialFields | None
    break_glass: bool


async def list_partner_grants(partner: Partner, clock: Clock) -> list[GrantView]:
    """The NOC's scheduled and active grants."""
    now = await clock.now()
    rows = (
        await Grant.select(*GRANT_COLUMNS)
        .where(
            (Grant.noc_tenant_id == partner.tenant_id)
            & Grant.status.is_in(list(_LIVE))
            & (Grant.ends_at > now)
        )
        .order_by(Grant.ends_at)
        .output(load_json=True)
    )
    return [grant_view(row, now) for row in rows]


async def _own_grant(
    partner: Partner,
    grant_id: uuid.UUID,
    *,
    read: AuditAction | None = None,
    request: RequestMeta | None = None,
) -> dict[str, Any]:
    """The grant if it is this NOC's (404 otherwise), and the token must be bound to it.

    A refused `read` is audited like any denied read: in the NOC's chain when the grant is not
    its own (another tenant's chain learns nothing of the attempt), in both chains otherwise.
    """
    row = await grant_row((Grant.id == grant_id) & (Grant.noc_tenant_id == partner.tenant_id))
    if row is None:
        if read is not None:
            await record(
                partner.tenant_id,
                read,
                actor=partner.actor,
                outcome=Outcome.DENIED,
                severity=Severity.WARNING,
                target_type="grant",
                target_id=grant_id,
                reason="grant_unknown: no such grant",
                request=request or RequestMeta(),
                context={"grant_id": str(grant_id)},
            )
        raise NotFound("no such grant")
    if partner.bound_grant_id != grant_id:
        unbound = Decision(
            False,
            (
                Reason(
                    "token_not_bound",
                    f"this token is not bound to the grant: request one with scope "
                    f"grant:{grant_id}",
                ),
            ),
        )
        if read is not None:
            async with write_transaction():
                await _audit_both(
                    row["tenant_id"],
                    partner.tenant_id,
                    read,
                    partner,
                    outcome=Outcome.DENIED,
                    severity=Severity.WARNING,
                    target_type="grant",
                    target_id=grant_id,
                    reason=_reasons(unbound),
                    request=request or RequestMeta(),
                    context={
                        "grant_id": str(grant_id),
                        "psa_reference": str(row["handoff_id.psa_reference"]),
                    },
                )
        raise Denied(unbound)
    return row


async def _facts(row: dict[str, Any]) -> tuple[GrantFacts, Ceiling]:
    partnership = (
        await Partnership.select(Partnership.ceiling, Partnership.status)
        .where(Partnership.id == row["partnership_id"])
        .first()
        .output(load_json=True)
    )
    assert partnership is not None
    grant = GrantFacts(
        id=row["id"],
        status=str(row["status"]),
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        client_id=row["client_id"],
        scope=msgspec.convert(row["scope"], GrantScope),
        partnership_active=partnership["status"] == PartnershipStatus.ACTIVE.value,
    )
    return grant, msgspec.convert(partnership["ceiling"], Ceiling)


def _document_facts(row: dict[str, Any]) -> DocumentFacts:
    return DocumentFacts(
        id=row["id"],
        client_id=row["client_id"],
        kind=DocumentKind(str(row["kind"])),
        tags=frozenset(tag for tag in str(row["tags"]).split("|") if tag),
        sensitivity=Sensitivity(str(row["sensitivity"])),
        archived=row["archived_at"] is not None,
    )


async def _audit_both(
    msp_id: uuid.UUID, noc_id: uuid.UUID, action: AuditAction, partner: Partner, **fields: Any
) -> None:
    """Record the event in both chains, in the caller's transaction (or one of its own)."""
    assert noc_id == partner.tenant_id
    await append_events(_both_chains(msp_id, partner, action, **fields))


async def _deny_document(
    row: dict[str, Any],
    partner: Partner,
    document_id: uuid.UUID,
    reason: str,
    request: RequestMeta,
) -> None:
    """A refused read of a document under the grant `row`, audited in both chains."""
    async with write_transaction():
        await _audit_both(
            row["tenant_id"],
            partner.tenant_id,
            AuditAction.PARTNER_DOCUMENT_DENIED,
            partner,
            outcome=Outcome.DENIED,
            severity=Severity.WARNING,
            target_type="document",
            target_id=document_id,
            reason=reason,
            request=request,
            context={
                "grant_id": str(row["id"]),
                "psa_reference": str(row["handoff_id.psa_reference"]),
                "document_id": str(document_id),
            },
        )


def _both_chains(
    msp_id: uuid.UUID, partner: Partner, action: AuditAction, **fields: Any
) -> list[EventSpec]:
    """The same event for the owner's chain (the MSP) and the actor's (the NOC)."""
    return [
        EventSpec(tenant_id=chain, action=action, actor=partner.actor, **fields)
        for chain in sorted((msp_id, partner.tenant_id))
    ]


def _reasons(decision: Decision) -> str:
    return "; ".join(f"{r.code}: {r.message}" for r in decision.reasons)


def _with_scopes(decision: Decision, scopes: frozenset[str]) -> Decision:
    """The token's scopes narrow what the grant allows: reading, and revealing secrets."""
    missing = []
    if READ_SCOPE not in scopes:
        missing.append(Reason("scope_missing", f"the token lacks the scope {READ_SCOPE}"))
    if decision.break_glass and BREAK_GLASS_SCOPE not in scopes:
        missing.append(Reason("scope_missing", f"the token lacks the scope {BREAK_GLASS_SCOPE}"))
    if not missing:
        return decision
    return Decision(False, (*decision.reasons, *missing))


class Denied(Forbidden):
    """A read the decision refused; carries the reasons for the 403 body."""

    def __init__(self, decision: Decision) -> None:
        super().__init__(
            "; ".join(reason.message for reason in decision.reasons),
            code=",".join(decision.codes),
            extra={"reasons": [{"code": r.code, "message": r.message} for r in decision.reasons]},
        )
        self.decision = decision


async def partner_bundle(
    partner: Partner,
    keyring: KeyRing,
    clock: Clock,
    grant_id: uuid.UUID,
    *,
    request: RequestMeta,
) -> Bundle:
    """The incident, the client and the metadata of every document the grant lets it read."""
    row = await _own_grant(partner, grant_id, read=AuditAction.GRANT_BUNDLE_READ, request=request)
    msp_id: uuid.UUID = row["tenant_id"]
    now = await clock.now()
    grant, ceiling = await _facts(row)
    rules = await load_rules(msp_id)
    context = {"grant_id": str(grant_id), "psa_reference": str(row["handoff_id.psa_reference"])}
    closed = check_grant_window(grant, now)
    if not closed.allowed:
        # the refusal is committed before it is raised: raising inside the block rolls back
        async with write_transaction():
            await _audit_both(
                msp_id,
                partner.tenant_id,
                AuditAction.GRANT_BUNDLE_READ,
                partner,
                outcome=Outcome.DENIED,
                severity=Severity.WARNING,
                target_type="grant",
                target_id=grant_id,
                reason=_reasons(closed),
                request=request,
                context=context,
            )
        raise Denied(closed)
    async with write_transaction():
        rows = await Document.select().where(
            (Document.tenant_id == msp_id)
            & (Document.client_id.is_null() | (Document.client_id == grant.client_id))
            & Document.archived_at.is_null()
        )
        listed: list[tuple[dict[str, Any], bool]] = []
        for doc in rows:
            facts = _document_facts(doc)
            decision = decide_read(
                grant, ceiling, rules, facts, ReadRequest(now, request.source_address)
            )
            # listed even when only the break-glass reason is missing: it is asked per read
            if decision.allowed or decision.codes == ["break_glass_required"]:
                listed.append((doc, facts.sensitivity is Sensitivity.SECRET))
        await _audit_both(
            msp_id,
            partner.tenant_id,
            AuditAction.GRANT_BUNDLE_READ,
            partner,
            outcome=Outcome.SUCCESS,
            severity=Severity.INFO,
            target_type="grant",
            target_id=grant_id,
            reason=None,
            request=request,
            context={**context, "documents": str(len(listed))},
        )
    handoff = await Handoff.select().where(Handoff.id == row["handoff_id"]).first()
    assert handoff is not None
    summary = await open_text(
        keyring,
        msp_id,
        "handoff",
        handoff["id"],
        bytes(handoff["wrapped_dek"]),
        bytes(handoff["summary_sealed"]),
    )
    client = (
        await Client.select(Client.name, Client.short_code)
        .where(Client.id == grant.client_id)
        .first()
    )
    assert client is not None
    items = []
    for doc, secret in listed:
        title = await documents.current_title(keyring, msp_id, doc)
        items.append(
            BundleDocument(
                id=doc["id"],
                kind=DocumentKind(str(doc["kind"])),
                title=title,
                tags=[tag for tag in str(doc["tags"]).split("|") if tag],
                sensitivity=Sensitivity(str(doc["sensitivity"])),
                break_glass_required=secret,
            )
        )
    return Bundle(
        grant=grant_view(row, now),
        summary=summary,
        client={"name": client["name"], "short_code": client["short_code"]},
        documents=items,
    )


_READ_CONTEXT_SQL = """
SELECT g.id, g.tenant_id, g.client_id, g.scope, g.status, g.starts_at, g.ends_at,
       h.psa_reference, p.status AS partnership_status, p.ceiling, r.rules,
       d.id AS doc_id, d.client_id AS doc_client_id, d.kind, d.tags, d.sensitivity,
       d.archived_at, d.current_revision,
       v.wrapped_dek, v.title_sealed, v.body_sealed
FROM grants g
JOIN handoffs h ON h.id = g.handoff_id
JOIN partnerships p ON p.id = g.partnership_id
LEFT JOIN msp_rules r ON r.tenant_id = g.tenant_id
JOIN documents d ON d.id = {} AND d.tenant_id = g.tenant_id
JOIN document_revisions v ON v.tenant_id = d.tenant_id AND v.document_id = d.id
     AND v.revision = d.current_revision
WHERE g.id = {} AND g.noc_tenant_id = {}
"""


def _json(value: Any) -> Any:
    return msgspec.json.decode(value) if isinstance(value, str | bytes) else value


async def _read_context(
    partner: Partner, grant_id: uuid.UUID, document_id: uuid.UUID
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], GrantFacts, Ceiling, MspRules] | None:
    """Grant, partnership, rules, document and its current revision in one round trip; None
    whenever anything is missing or the token is not bound to the grant (the slow path then
    refuses, and audits, with the right reason)."""
    if partner.bound_grant_id != grant_id:
        return None
    rows = await Grant.raw(_READ_CONTEXT_SQL, document_id, grant_id, partner.tenant_id)
    if not rows:
        return None
    found = rows[0]
    row = {
        "id": found["id"],
        "tenant_id": found["tenant_id"],
        "handoff_id.psa_reference": found["psa_reference"],
    }
    doc = {
        "id": found["doc_id"],
        "client_id": found["doc_client_id"],
        "kind": found["kind"],
        "tags": found["tags"],
        "sensitivity": found["sensitivity"],
        "archived_at": found["archived_at"],
        "current_revision": found["current_revision"],
    }
    revision = {
        "tenant_id": found["tenant_id"],
        "document_id": found["doc_id"],
        "revision": found["current_revision"],
        "wrapped_dek": found["wrapped_dek"],
        "title_sealed": found["title_sealed"],
        "body_sealed": found["body_sealed"],
    }
    grant = GrantFacts(
        id=found["id"],
        status=str(found["status"]),
        starts_at=found["starts_at"],
        ends_at=found["ends_at"],
        client_id=found["client_id"],
        scope=msgspec.convert(_json(found["scope"]), GrantScope),
        partnership_active=found["partnership_status"] == PartnershipStatus.ACTIVE.value,
    )
    ceiling = msgspec.convert(_json(found["ceiling"]), Ceiling)
    rules = (
        MspRules() if found["rules"] is None else msgspec.convert(_json(found["rules"]), MspRules)
    )
    return row, doc, revision, grant, ceiling, rules


async def _slow_read_context(
    partner: Partner, grant_id: uuid.UUID, document_id: uuid.UUID, request: RequestMeta
) -> tuple[dict[str, Any], dict[str, Any], GrantFacts, Ceiling, MspRules]:
    """The same facts query by query, refusing (and auditing) what is missing."""
    row = await _own_grant(
        partner, grant_id, read=AuditAction.PARTNER_DOCUMENT_DENIED, request=request
    )
    msp_id: uuid.UUID = row["tenant_id"]
    doc = (
        await Document.select()
        .where((Document.id == document_id) & (Document.tenant_id == msp_id))
        .first()
    )
    if doc is None:
        await _deny_document(
            row, partner, document_id, "document_unknown: no such document", request
        )
        raise NotFound("no such document")
    grant, ceiling = await _facts(row)
    return row, doc, grant, ceiling, await load_rules(msp_id)


async def partner_read(
    partner: Partner,
    keyring: KeyRing,
    clock: Clock,
    counter: ReadCounter,
    grant_id: uuid.UUID,
    document_id: uuid.UUID,
    *,
    break_glass_reason: str | None,
    request: RequestMeta,
    appender: AuditAppender | None = None,
) -> PartnerDocument:
    """One document, if the decision allows; audited either way (break-glass at high severity,
    with the MSP notified and the credential put on its rotation list)."""
    fast = await _read_context(partner, grant_id, document_id)
    if fast is not None:  # the common case, in one query; refusals take the path below
        row, doc, revision, grant, ceiling, rules = fast
        msp_id: uuid.UUID = row["tenant_id"]
    else:
        row, doc, grant, ceiling, rules = await _slow_read_context(
            partner, grant_id, document_id, request
        )
        msp_id = row["tenant_id"]
        revision = None
    reads = await counter.hit(grant_id)
    now = await clock.now()
    facts = _document_facts(doc)
    decision = _with_scopes(
        decide_read(
            grant,
            ceiling,
            rules,
            facts,
            ReadRequest(now, request.source_address, break_glass_reason, reads),
        ),
        partner.scopes,
    )
    context = {
        "grant_id": str(grant_id),
        "psa_reference": str(row["handoff_id.psa_reference"]),
        "document_id": str(document_id),
        "client_id": str(grant.client_id),
        "kind": facts.kind.value,
        "sensitivity": facts.sensitivity.value,
    }
    rate_limited_now = "rate_exceeded" in decision.codes and reads == rules.reads_per_minute + 1
    if decision.allowed:
        reason = (break_glass_reason or "").strip() or None
        events = _both_chains(
            msp_id,
            partner,
            AuditAction.BREAK_GLASS if decision.break_glass else AuditAction.PARTNER_DOCUMENT_READ,
            outcome=Outcome.SUCCESS,
            severity=Severity.HIGH if decision.break_glass else Severity.INFO,
            target_type="document",
            target_id=document_id,
            reason=reason,
            request=request,
            context=context,
        )
    else:
        events = _both_chains(
            msp_id,
            partner,
            AuditAction.PARTNER_DOCUMENT_DENIED,
            outcome=Outcome.DENIED,
            severity=Severity.WARNING,
            target_type="document",
            target_id=document_id,
            reason=_reasons(decision),
            request=request,
            context=context,
        )
    if decision.break_glass or rate_limited_now:
        async with write_transaction():  # the events and what they cause, all or nothing
            await append_events(events)
            if decision.break_glass:
                await RotationItem.insert(
                    RotationItem(
                        id=uuid.uuid4(),
                        tenant_id=msp_id,
                        document_id=document_id,
                        grant_id=grant_id,
                        revealed_by=partner.client_id,
                        revealed_at=now,
                        reason=(break_glass_reason or "").strip(),
                    )
                )
                await emit((msp_id,), EventType.DOCUMENT_BREAK_GLASS, context)
            if rate_limited_now:
                await append_events(
                    _both_chains(
                        msp_id,
                        partner,
                        AuditAction.GRANT_RATE_LIMITED,
                        outcome=Outcome.DENIED,
                        severity=Severity.HIGH,
                        target_type="grant",
                        target_id=grant_id,
                        reason=f"more than {rules.reads_per_minute} reads a minute",
                        request=request,
                        context=context,
                    )
                )
                await emit((msp_id,), EventType.GRANT_RATE_LIMITED, context)
    elif appender is not None:
        await appender.append(events)  # group commit with concurrent reads
    else:
        await append_events(events)
    if not decision.allowed:
        raise Denied(decision)
    try:
        if revision is not None:
            content = await documents.open_revision(keyring, revision)
        else:
            content = await documents.current_content(keyring, msp_id, doc)
    except IntegrityFailure as failure:
        await record(
            msp_id,
            AuditAction.DOCUMENT_INTEGRITY_FAILED,
            actor=partner.actor,
            outcome=Outcome.FAILURE,
            severity=Severity.HIGH,
            target_type="document",
            target_id=document_id,
            reason=failure.detail,
            request=request,
            context=context,
        )
        raise
    return PartnerDocument(
        id=document_id,
        kind=facts.kind,
        title=content.title,
        tags=sorted(facts.tags),
        sensitivity=facts.sensitivity,
        revision=doc["current_revision"],
        body=content.body,
        fields=content.fields,
        break_glass=decision.break_glass,
    )


async def _live_own_grant(
    partner: Partner, clock: Clock, grant_id: uuid.UUID
) -> tuple[dict[str, Any], datetime]:
    row = await _own_grant(partner, grant_id)
    now = await clock.now()
    if effective_status(row, now).value not in _LIVE or now < row["starts_at"]:
        raise Conflict("the grant is not active", code="grant_not_active")
    return row, now


async def partner_note(
    partner: Partner,
    keyring: KeyRing,
    clock: Clock,
    grant_id: uuid.UUID,
    body: str,
    *,
    request: RequestMeta,
) -> uuid.UUID:
    """Hand-back notes (Markdown) for the MSP; sealed under the MSP's key."""
    body = body.strip()
    if not 1 <= len(body) <= MAX_NOTE_CHARS:
        raise Invalid(f"a note needs 1 to {MAX_NOTE_CHARS} characters", code="body")
    row, now = await _live_own_grant(partner, clock, grant_id)
    msp_id: uuid.UUID = row["tenant_id"]
    note_id = uuid.uuid4()
    context = {"grant_id": str(grant_id), "psa_reference": str(row["handoff_id.psa_reference"])}
    async with write_transaction():
        sealed = await seal_text(keyring, msp_id, "note", note_id, body)
        await HandoffNote.insert(
            HandoffNote(
                id=note_id,
                tenant_id=msp_id,
                grant_id=grant_id,
                author=partner.client_id,
                kek_version=sealed.kek_version,
                wrapped_dek=sealed.wrapped_dek,
                body_sealed=sealed.sealed,
                created_at=now,
            )
        )
        await _audit_both(
            msp_id,
            partner.tenant_id,
            AuditAction.NOTES_POSTED,
            partner,
            outcome=Outcome.SUCCESS,
            severity=Severity.INFO,
            target_type="note",
            target_id=note_id,
            reason=None,
            request=request,
            context=context,
        )
        await emit((msp_id,), EventType.NOTES_POSTED, context)
    return note_id


async def partner_extension(
    partner: Partner,
    clock: Clock,
    grant_id: uuid.UUID,
    reason: str,
    requested_ends_at: datetime | None,
    *,
    request: RequestMeta,
) -> uuid.UUID:
    reason = reason.strip()
    if not 1 <= len(reason) <= MAX_BREAK_GLASS_REASON:
        raise Invalid(f"the reason needs 1 to {MAX_BREAK_GLASS_REASON} characters", code="reason")
    row, now = await _live_own_grant(partner, clock, grant_id)
    if requested_ends_at is not None and requested_ends_at <= row["ends_at"]:
        raise Invalid(
            "an extension asks for a later end than the grant has", code="requested_ends_at"
        )
    msp_id: uuid.UUID = row["tenant_id"]
    if await GrantExtension.exists().where(
        (GrantExtension.grant_id == grant_id) & (GrantExtension.status == "pending")
    ):
        raise Conflict("an extension request is pending already", code="pending")
    extension_id = uuid.uuid4()
    context = {"grant_id": str(grant_id), "extension_id": str(extension_id)}
    async with write_transaction():
        await GrantExtension.insert(
            GrantExtension(
                id=extension_id,
                tenant_id=msp_id,
                grant_id=grant_id,
                reason=reason,
                requested_ends_at=requested_ends_at,
                status="pending",
                requested_by=partner.client_id,
                requested_at=now,
            )
        )
        await _audit_both(
            msp_id,
            partner.tenant_id,
            AuditAction.GRANT_EXTENSION_REQUESTED,
            partner,
            outcome=Outcome.SUCCESS,
            severity=Severity.INFO,
            target_type="grant",
            target_id=grant_id,
            reason=reason,
            request=request,
            context=context,
        )
        await emit((msp_id, partner.tenant_id), EventType.GRANT_EXTENSION_REQUESTED, context)
    return extension_id


# --- The portal's NOC technician ---------------------------------------------------------------

_NO_GRANT = uuid.UUID(int=0)


async def list_user_grants(actor: Actor, clock: Clock) -> list[GrantView]:
    """The NOC's scheduled and active grants for a technician in the portal (who, unlike a
    token, is bound to none of them while listing)."""
    partner = replace(Partner.for_user(actor, _NO_GRANT, break_glass=False), bound_grant_id=None)
    return await list_partner_grants(partner, clock)


async def partner_grant(partner: Partner, clock: Clock, grant_id: uuid.UUID) -> GrantView:
    """The grant as it stands now, ended or not (404 unless it is the NOC's). Reads no content,
    so it is not audited: the portal polls it to show when access ends."""
    row = await _own_grant(partner, grant_id)
    return grant_view(row, await clock.now())


async def confirm_break_glass_password(
    partner: Partner,
    grant_id: uuid.UUID,
    document_id: uuid.UUID,
    password: str,
    *,
    request: RequestMeta,
) -> bool:
    """A NOC technician's password, entered again right before break-glass. A wrong one is
    refused and audited as a denied read of the document (both chains; only the NOC's when the
    grant is not its own, which is then a 404); nothing is read either way."""
    if partner.kind is not ActorKind.USER:
        raise Forbidden("only a signed-in user confirms a password", code="user_required")
    row = await _own_grant(
        partner, grant_id, read=AuditAction.PARTNER_DOCUMENT_DENIED, request=request
    )
    user = await service.user_by_email(partner.client_id)
    encoded = (
        user["password_hash"] if user is not None and user["id"] == partner.client_pk else None
    )
    valid = await anyio.to_thread.run_sync(verify_password, password, encoded)
    if valid and user is not None and not user["disabled"]:
        return True
    reason = "reauthentication_failed: the password entered for break-glass was wrong"
    await _deny_document(row, partner, document_id, reason, request)
    return False
