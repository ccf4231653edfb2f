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

__all__ = ["AuditEvent", "AuditHead", "Client", "Document", "DocumentRevision", "Partnership"]


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


class AuditHead(Table, tablename="audit_heads"):
    """The tip of each tenant's chain; updating it serialises appends to one chain."""

    tenant_id = UUID(primary_key=True)
    seq = BigInt()
    hash = Varchar(length=64)
