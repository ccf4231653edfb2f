"""Piccolo tables of the `sharing` app: partnerships and the hash-chained audit log."""

from __future__ import annotations

from piccolo.columns import (
    JSON,
    UUID,
    BigInt,
    Bytea,
    ForeignKey,
    Integer,
    OnDelete,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.table import Table

from tenants.tables import Tenant

__all__ = [
    "AuditCheckpoint",
    "AuditEvent",
    "AuditHead",
    "AuditSigningKey",
    "Client",
    "Document",
    "DocumentRevision",
    "Grant",
    "GrantExtension",
    "Handoff",
    "HandoffNote",
    "MspRuleSet",
    "OutboxEvent",
    "Partnership",
    "RotationItem",
    "Schedule",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WorkerCounter",
]


class Client(Table, tablename="clients"):
    """One of an MSP's customers (an "organisation" in documentation tools)."""

    id = UUID(primary_key=True)
    tenant_id = ForeignKey(references=Tenant, on_delete=OnDelete.restrict)
    name = Varchar(length=200)
    short_code = Varchar(length=32)
    notes = Text(default="")
    psa_reference = Varchar(length=100, null=True, default=None)
    created_at = Timestamptz()
    archived_at = Timestamptz(null=True, default=None)


class Document(Table, tablename="documents"):
    """A piece of client documentation. What scoping needs stays in clear; content does not."""

    id = UUID(primary_key=True)
    tenant_id = ForeignKey(references=Tenant, on_delete=OnDelete.restrict)
    client_id = ForeignKey(references=Client, on_delete=OnDelete.restrict, null=True)
    kind = Varchar(length=16)
    sensitivity = Varchar(length=16)
    tags = Text(default="|")  # "|net|core|": portable tag filter with LIKE '%|net|%'
    current_revision = Integer()
    source_key = Varchar(length=255, null=True, default=None)
    created_by = Varchar(length=254)
    created_at = Timestamptz()
    updated_at = Timestamptz()
    archived_at = Timestamptz(null=True, default=None)


class DocumentRevision(Table, tablename="document_revisions"):
    """One revision's content, sealed under its own data key (`wrapped_dek`, by a tenant KEK).

    `title_sealed` and `body_sealed` only open for this tenant, document and revision.
    """

    id = UUID(primary_key=True)
    tenant_id = ForeignKey(references=Tenant, on_delete=OnDelete.restrict)
    document_id = ForeignKey(references=Document, on_delete=OnDelete.restrict)
    revision = Integer()
    kek_version = Integer()
    wrapped_dek = Bytea(secret=True)
    title_sealed = Bytea()
    body_sealed = Bytea()
    body_bytes = Integer()
    created_by = Varchar(length=254)
    created_at = Timestamptz()


class Partnership(Table, tablename="partnerships"):
    """A consented MSP -> NOC link. `tenant_id` is the MSP, which owns it; the NOC is a party."""

    id = UUID(primary_key=True)
    tenant_id = ForeignKey(references=Tenant, on_delete=OnDelete.restrict, index=True)
    noc_tenant_id = ForeignKey(references=Tenant, on_delete=OnDelete.restrict, index=True)
    status = Varchar(length=16)
    ceiling = JSON()
    suspended_by = UUID(null=True, default=None)
    created_by = UUID(null=True, default=None)
    created_at = Timestamptz()
    updated_at = Timestamptz()


class AuditEvent(Table, tablename="audit_events"):
    """One link of a tenant's chain: never updated or deleted; `hash` covers every other field."""

    id = UUID(primary_key=True)
    tenant_id = UUID()
    seq = BigInt()
    occurred_at = Timestamptz()
    actor_type = Varchar(length=16)
    actor_id = Varchar(length=64, null=True, default=None)
    actor_label = Varchar(length=254)
    action = Varchar(length=64)
    target_type = Varchar(length=32, null=True, default=None)
    target_id = Varchar(length=64, null=True, default=None)
    outcome = Varchar(length=16)
    severity = Varchar(length=8)
    reason = Text(null=True, default=None)
    request_id = Varchar(length=64, null=True, default=None)
    source_address = Varchar(length=64, null=True, default=None)
    context = JSON()
    prev_hash = Varchar(length=64)
    hash = Varchar(length=64)


class AuditSigningKey(Table, tablename="audit_signing_keys"):
    """A tenant's Ed25519 key for signing checkpoints of its chain. The public half is published
    (and stays published after rotation); the private half is sealed under the tenant's key."""

    id = UUID(primary_key=True)  # the key id named by every checkpoint it signs
    tenant_id = ForeignKey(references=Tenant, on_delete=OnDelete.restrict)
    public_key = Bytea()  # the raw 32 bytes
    kek_version = Integer()
    wrapped_dek = Bytea(secret=True)
    private_sealed = Bytea(secret=True)
    created_at = Timestamptz()
    retired_at = Timestamptz(null=True, default=None)


class AuditCheckpoint(Table, tablename="audit_checkpoints"):
    """A signed tree head: the chain of `tenant_id` had `hash` at sequence number `seq`."""

    id = UUID(primary_key=True)
    tenant_id = ForeignKey(references=Tenant, on_delete=OnDelete.restrict)
    seq = BigInt()
    hash = Varchar(length=64)
    signed_at = Timestamptz()
    key_id = ForeignKey(references=AuditSigningKey, on_delete=OnDelete.restrict)
    signature = Bytea()


class AuditHead(Table, tablename="audit_heads"):
    """The tip of each tenant's chain; updating it serialises appends to one chain."""

    tenant_id = UUID(primary_key=True)
    seq = BigInt()
    hash = Varchar(length=64)


class Schedule(Table, tablename="schedules"):
    """An MSP's business hours (`policies.schedule.BusinessHours` as JSON)."""

    id = UUID(primary_key=True)
    tenant_id = ForeignKey(references=Tenant, on_delete=OnDelete.restrict, unique=True)
    hours = JSON()
    handback_buffer_minutes = Integer(default=0)
    updated_at = Timestamptz()


class MspRuleSet(Table, tablename="msp_rules"):
    """An MSP's sharing rules (`policies.decision.MspRules` as JSON)."""

    id = UUID(primary_key=True)
    tenant_id = ForeignKey(references=Tenant, on_delete=OnDelete.restrict, unique=True)
    rules = JSON()
    updated_at = Timestamptz()


class Handoff(Table, tablename="handoffs"):
    """An incident passed to a partner; its summary is sealed like document content."""

    id = UUID(primary_key=True)
    tenant_id = ForeignKey(references=Tenant, on_delete=OnDelete.restrict)
    noc_tenant_id = ForeignKey(references=Tenant, on_delete=OnDelete.restrict)
    partnership_id = ForeignKey(references=Partnership, on_delete=OnDelete.restrict)
    client_id = ForeignKey(references=Client, on_delete=OnDelete.restrict)
    psa_reference = Varchar(length=100)
    severity = Varchar(length=4)
    kek_version = Integer()
    wrapped_dek = Bytea(secret=True)
    summary_sealed = Bytea()
    created_by = Varchar(length=254)
    created_at = Timestamptz()


class Grant(Table, tablename="grants"):
    """Time-boxed access for one handoff: always an end, checked on every read."""

    id = UUID(primary_key=True)
    tenant_id = ForeignKey(references=Tenant, on_delete=OnDelete.restrict)
    noc_tenant_id = ForeignKey(references=Tenant, on_delete=OnDelete.restrict)
    handoff_id = ForeignKey(references=Handoff, on_delete=OnDelete.restrict)
    partnership_id = ForeignKey(references=Partnership, on_delete=OnDelete.restrict)
    client_id = ForeignKey(references=Client, on_delete=OnDelete.restrict)
    scope = JSON()
    status = Varchar(length=12)
    starts_at = Timestamptz()
    ends_at = Timestamptz()
    ended_at = Timestamptz(null=True, default=None)
    end_reason = Text(null=True, default=None)
    warn_at = Timestamptz(null=True, default=None)  # when "ends soon" is due (MSP's lead time)
    warned_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz()
    updated_at = Timestamptz()


class GrantExtension(Table, tablename="grant_extensions"):
    """A partner's request for more time, and the MSP's answer."""

    id = UUID(primary_key=True)
    tenant_id = ForeignKey(references=Tenant, on_delete=OnDelete.restrict)
    grant_id = ForeignKey(references=Grant, on_delete=OnDelete.restrict)
    reason = Text()
    requested_ends_at = Timestamptz(null=True, default=None)
    status = Varchar(length=10)
    requested_by = Varchar(length=254)
    requested_at = Timestamptz()
    decided_by = Varchar(length=254, null=True, default=None)
    decided_at = Timestamptz(null=True, default=None)
    new_ends_at = Timestamptz(null=True, default=None)


class HandoffNote(Table, tablename="handoff_notes"):
    """Hand-back notes the partner posts; sealed under the MSP's key (it is their incident)."""

    id = UUID(primary_key=True)
    tenant_id = ForeignKey(references=Tenant, on_delete=OnDelete.restrict)
    grant_id = ForeignKey(references=Grant, on_delete=OnDelete.restrict)
    author = Varchar(length=254)
    kek_version = Integer()
    wrapped_dek = Bytea(secret=True)
    body_sealed = Bytea()
    created_at = Timestamptz()


class RotationItem(Table, tablename="rotation_list"):
    """A credential revealed under break-glass: it must be rotated."""

    id = UUID(primary_key=True)
    tenant_id = ForeignKey(references=Tenant, on_delete=OnDelete.restrict)
    document_id = ForeignKey(references=Document, on_delete=OnDelete.restrict)
    grant_id = ForeignKey(references=Grant, on_delete=OnDelete.restrict)
    revealed_by = Varchar(length=254)
    revealed_at = Timestamptz()
    reason = Text()
    rotated_by = Varchar(length=254, null=True, default=None)
    rotated_at = Timestamptz(null=True, default=None)


class OutboxEvent(Table, tablename="outbox_events"):
    """A notification for a tenant (grant.created, document.break_glass, ...), written in the
    same transaction as what it reports; delivered to the tenant's webhooks from here."""

    id = UUID(primary_key=True)
    tenant_id = ForeignKey(references=Tenant, on_delete=OnDelete.restrict)
    event_type = Varchar(length=48)
    payload = JSON()
    created_at = Timestamptz()
    dispatched_at = Timestamptz(null=True, default=None)  # fanned out to the tenant's webhooks


class WebhookEndpoint(Table, tablename="webhook_endpoints"):
    """Where a tenant wants its events posted. The signing secret is sealed like content: the
    worker needs it back to sign, so it cannot be a one-way hash."""

    id = UUID(primary_key=True)
    tenant_id = ForeignKey(references=Tenant, on_delete=OnDelete.restrict)
    url = Varchar(length=2048)
    description = Varchar(length=200, default="")
    events = JSON()  # a list of event type names
    kek_version = Integer()
    wrapped_dek = Bytea(secret=True)
    secret_sealed = Bytea(secret=True)
    status = Varchar(length=12)  # active | failing | disabled
    consecutive_failures = Integer(default=0)
    created_by = Varchar(length=254)
    created_at = Timestamptz()
    updated_at = Timestamptz()


class WebhookDelivery(Table, tablename="webhook_deliveries"):
    """One outbox event for one endpoint: retried until delivered or given up after a day."""

    id = UUID(primary_key=True)
    tenant_id = ForeignKey(references=Tenant, on_delete=OnDelete.restrict)
    endpoint_id = ForeignKey(references=WebhookEndpoint, on_delete=OnDelete.restrict)
    outbox_event_id = ForeignKey(references=OutboxEvent, on_delete=OnDelete.restrict)
    event_id = UUID()  # shared by every copy of one event: receivers drop duplicates by it
    event_type = Varchar(length=48)
    status = Varchar(length=12)  # pending | delivered | failed
    attempts = Integer(default=0)
    next_attempt_at = Timestamptz()
    lease_until = Timestamptz(null=True, default=None)  # a worker is posting it until then
    last_status_code = Integer(null=True, default=None)
    last_error = Text(null=True, default=None)
    created_at = Timestamptz()
    delivered_at = Timestamptz(null=True, default=None)


class WebhookAttempt(Table, tablename="webhook_attempts"):
    """One try at posting a delivery, kept for the tenant to see why it failed."""

    id = UUID(primary_key=True)
    tenant_id = ForeignKey(references=Tenant, on_delete=OnDelete.restrict)
    delivery_id = ForeignKey(references=WebhookDelivery, on_delete=OnDelete.restrict)
    attempted_at = Timestamptz()
    status_code = Integer(null=True, default=None)
    error = Text(null=True, default=None)
    duration_ms = Integer()


class WorkerCounter(Table, tablename="worker_counters"):
    """Totals the worker keeps for /metrics, updated in the transaction of what they count."""

    name = Varchar(length=64, primary_key=True)
    value = BigInt(default=0)
