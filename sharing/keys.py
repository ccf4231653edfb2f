"""Key operations: rotate a tenant's key, rotate the root key, delete a tenant (crypto-shredding).

Rotation re-wraps data keys and never re-encrypts content. The service keeps serving throughout:
reads open a data key with whichever version its header names, and writes take the new version
as soon as the rotation starts.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from piccolo.columns import Column
from piccolo.table import Table

from sharing.audit import AuditAction, Severity, record
from sharing.documents import revision_context
from sharing.partnerships import end_all_for_tenant
from sharing.sealed import record_context
from sharing.tables import (
    AuditSigningKey,
    DocumentRevision,
    Grant,
    Handoff,
    HandoffNote,
    WebhookEndpoint,
)
from sharing.webhooks import disable_tenant_endpoints
from tenants.db import write_transaction
from tenants.keyring import KeyRing, KeyStatus
from tenants.roles import PLATFORM_TENANT_ID, Actor
from tenants.root_key import FileRootKey, RootKeyError
from tenants.service import TenantInfo
from tenants.signing import TokenSigner
from tenants.tables import (
    ApiToken,
    IssuedToken,
    OAuthClient,
    SigningKey,
    Tenant,
    TenantKey,
)

__all__ = [
    "Progress",
    "RotationReport",
    "delete_tenant",
    "rotate_root_key",
    "rotate_signing_key",
    "rotate_tenant_key",
]

Progress = Callable[[int, int], None]
"""Called with (done, total) as work advances."""


@dataclass(frozen=True, slots=True)
class RotationReport:
    new_version: int
    rewrapped: int
    retired_versions: list[int]


@dataclass(frozen=True, slots=True)
class _SealedTable:
    """A table whose rows carry a data key wrapped by a tenant KEK."""

    table: type[Table]
    columns: tuple[Column, ...]
    context: Callable[[uuid.UUID, dict[str, Any]], bytes]


_SEALED_TABLES = (
    _SealedTable(
        DocumentRevision,
        (DocumentRevision.document_id, DocumentRevision.revision),
        lambda tenant_id, row: revision_context(tenant_id, row["document_id"], row["revision"]),
    ),
    _SealedTable(
        Handoff, (), lambda tenant_id, row: record_context("handoff", tenant_id, row["id"])
    ),
    _SealedTable(
        HandoffNote, (), lambda tenant_id, row: record_context("note", tenant_id, row["id"])
    ),
    _SealedTable(
        WebhookEndpoint,
        (),
        lambda tenant_id, row: record_context("webhook", tenant_id, row["id"]),
    ),
    _SealedTable(
        AuditSigningKey,
        (),
        lambda tenant_id, row: record_context("audit-key", tenant_id, row["id"]),
    ),
)


async def rotate_tenant_key(
    keyring: KeyRing,
    tenant: TenantInfo,
    *,
    actor: Actor,
    batch_size: int = 500,
    progress: Progress | None = None,
) -> RotationReport:
    """A new key version for the tenant; every data key re-wrapped; old versions retired."""
    async with write_transaction():
        version = await keyring.create_kek(tenant.id)
        await record(
            tenant.id,
            AuditAction.KEY_ROTATED,
            actor=actor,
            target_type="tenant_key",
            target_id=str(version),
            severity=Severity.WARNING,
        )
    total = 0
    for sealed in _SEALED_TABLES:
        total += await sealed.table.count().where(_stale(sealed, tenant.id, version))
    done = 0
    if progress:
        progress(0, total)
    for sealed in _SEALED_TABLES:
        table = sealed.table
        id_column = table._meta.primary_key
        while True:
            async with write_transaction():
                rows = (
                    await table.select(id_column, table.wrapped_dek, *sealed.columns)  # type: ignore[attr-defined]
                    .where(_stale(sealed, tenant.id, version))
                    .limit(batch_size)
                )
                for row in rows:
                    context = sealed.context(tenant.id, row)
                    dek = await keyring.unwrap_dek(tenant.id, bytes(row["wrapped_dek"]), context)
                    wrapped = await keyring.wrap_dek(tenant.id, version, dek, context)
                    # unless re-sealed meanwhile (a webhook secret rotated): then its key is new
                    await table.update(
                        {table.wrapped_dek: wrapped, table.kek_version: version}  # type: ignore[attr-defined]
                    ).where(
                        (id_column == row["id"]) & (table.wrapped_dek == row["wrapped_dek"])  # type: ignore[attr-defined]
                    )
            done += len(rows)
            if progress:
                progress(done, max(total, done))
            if len(rows) < batch_size:
                break
    retired = await _retire_unused(keyring, tenant.id, actor)
    return RotationReport(version, done, retired)


def _stale(sealed: _SealedTable, tenant_id: uuid.UUID, version: int) -> Any:
    table = sealed.table
    return (table.tenant_id == tenant_id) & (table.kek_version != version)  # type: ignore[attr-defined]


async def _retire_unused(keyring: KeyRing, tenant_id: uuid.UUID, actor: Actor) -> list[int]:
    """Destroy the material of every retiring version that no data key uses any more."""
    retired = []
    async with write_transaction():
        rows = await TenantKey.select(TenantKey.version).where(
            (TenantKey.tenant_id == tenant_id) & (TenantKey.status == KeyStatus.RETIRING)
        )
        for row in rows:
            in_use = [
                await sealed.table.exists().where(
                    (sealed.table.tenant_id == tenant_id)  # type: ignore[attr-defined]
                    & (sealed.table.kek_version == row["version"])  # type: ignore[attr-defined]
                )
                for sealed in _SEALED_TABLES
            ]
            if any(in_use):
                continue
            await TenantKey.update(
                {
                    TenantKey.status: KeyStatus.RETIRED,
                    TenantKey.wrapped_key: None,
                    TenantKey.retired_at: datetime.now(UTC),
                }
            ).where((TenantKey.tenant_id == tenant_id) & (TenantKey.version == row["version"]))
            await record(
                tenant_id,
                AuditAction.KEY_RETIRED,
                actor=actor,
                target_type="tenant_key",
                target_id=str(row["version"]),
            )
            retired.append(int(row["version"]))
    keyring.forget(tenant_id)
    return retired


async def rotate_root_key(
    keyring: KeyRing,
    signer: TokenSigner,
    provider: FileRootKey,
    *,
    actor: Actor,
    progress: Progress | None = None,
) -> tuple[str, str, int]:
    """Re-wrap every tenant key and signing key under a new root key.

    Returns (old id, new id, keys re-wrapped).

    Safe to run again after an interruption: the next key is written beside the current one
    before any row changes, each wrapped key names the root key that opens it, and keys made
    while the rotation runs are wrapped by the new key already.
    """
    old_id = provider.previous_root_key_id()
    new_id, new_key = provider.begin_rotation()
    if new_id == old_id:
        raise RootKeyError("the pending root key equals the current one: remove root.key.new")
    stale = TenantKey.wrapped_key.is_not_null() & (TenantKey.root_key_id != new_id)
    total = await TenantKey.count().where(stale)
    done = 0
    while True:  # until no key made by a process that read the old root key is left
        async with write_transaction():
            rows = await TenantKey.select(
                TenantKey.id, TenantKey.tenant_id, TenantKey.version, TenantKey.wrapped_key
            ).where(stale)
            for row in rows:
                rewrapped = keyring.rewrap_kek(
                    row["tenant_id"], row["version"], bytes(row["wrapped_key"]), new_id, new_key
                )
                await TenantKey.update(
                    {TenantKey.wrapped_key: rewrapped, TenantKey.root_key_id: new_id}
                ).where(TenantKey.id == row["id"])
                done += 1
                if progress:
                    progress(done, max(total, done))
        if not rows:
            break
    async with write_transaction():
        signing = await SigningKey.select(
            SigningKey.id, SigningKey.kid, SigningKey.private_sealed
        ).where(SigningKey.root_key_id != new_id)
        for row in signing:
            await SigningKey.update(
                {
                    SigningKey.private_sealed: signer.rewrap(
                        row["kid"], bytes(row["private_sealed"]), new_id, new_key
                    ),
                    SigningKey.root_key_id: new_id,
                }
            ).where(SigningKey.id == row["id"])
            done += 1
    await record(
        PLATFORM_TENANT_ID,
        AuditAction.ROOT_KEY_ROTATED,
        actor=actor,
        target_type="root_key",
        target_id=new_id,
        severity=Severity.WARNING,
        context={"previous": old_id, "tenant_keys": str(done)},
    )
    provider.finish_rotation()
    keyring.forget()
    return old_id, new_id, done


async def delete_tenant(keyring: KeyRing, tenant: TenantInfo, *, actor: Actor) -> int:
    """Close the tenant and destroy its keys: its rows stay, and no key can open them again.

    Returns how many key versions were destroyed.
    """
    now = datetime.now(UTC)
    async with write_transaction():
        await end_all_for_tenant(tenant.id, actor)
        # every grant on either side ends, and every token of it or of the tenant's clients dies
        party = (Grant.tenant_id == tenant.id) | (Grant.noc_tenant_id == tenant.id)
        ended = (
            await Grant.update(
                {
                    Grant.status: "revoked",
                    Grant.ended_at: now,
                    Grant.end_reason: "tenant deleted",
                    Grant.updated_at: now,
                }
            )
            .where(party & Grant.status.is_in(["scheduled", "active"]))
            .returning(Grant.id)
        )
        for row in ended:
            await IssuedToken.update({IssuedToken.revoked_at: now}).where(
                (IssuedToken.grant_id == row["id"]) & IssuedToken.revoked_at.is_null()
            )
        await IssuedToken.update({IssuedToken.revoked_at: now}).where(
            (IssuedToken.tenant_id == tenant.id) & IssuedToken.revoked_at.is_null()
        )
        await OAuthClient.update({OAuthClient.disabled_at: now}).where(
            (OAuthClient.tenant_id == tenant.id) & OAuthClient.disabled_at.is_null()
        )
        await ApiToken.update({ApiToken.revoked_at: now}).where(
            (ApiToken.tenant_id == tenant.id) & ApiToken.revoked_at.is_null()
        )
        await disable_tenant_endpoints(tenant.id, now)  # their secrets cannot be opened again
        destroyed = (
            await TenantKey.update(
                {TenantKey.wrapped_key: None, TenantKey.status: KeyStatus.DESTROYED}
            )
            .where(TenantKey.tenant_id == tenant.id)
            .returning(TenantKey.version)
        )
        await Tenant.update({Tenant.deleted_at: now}).where(Tenant.id == tenant.id)
        for chain in sorted({tenant.id, PLATFORM_TENANT_ID}):
            await record(
                chain,
                AuditAction.TENANT_DELETED,
                actor=actor,
                target_type="tenant",
                target_id=tenant.id,
                severity=Severity.HIGH,
                context={
                    "slug": tenant.slug,
                    "keys_destroyed": str(len(destroyed)),
                    "grants_revoked": str(len(ended)),
                },
            )
        if not destroyed:
            # Mark the tenant shredded even if it never had a key, so none is made later.
            await TenantKey.insert(
                TenantKey(
                    id=uuid.uuid4(),
                    tenant_id=tenant.id,
                    version=0,
                    wrapped_key=None,
                    root_key_id="",
                    status=KeyStatus.DESTROYED,
                    created_at=now,
                )
            )
    keyring.forget(tenant.id)
    return len(destroyed)


async def rotate_signing_key(signer: TokenSigner, *, actor: Actor) -> str:
    """A new token-signing key; the old one stays published while its tokens may live."""
    async with write_transaction():
        kid = await signer.rotate()
        await record(
            PLATFORM_TENANT_ID,
            AuditAction.SIGNING_KEY_ROTATED,
            actor=actor,
            target_type="signing_key",
            target_id=kid,
            severity=Severity.WARNING,
        )
    return kid
