"""Key rotation, root rotation and crypto-shredding, on the real database."""

from __future__ import annotations

import base64
import random
import secrets
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from policies.vocabulary import DocumentKind
from sharing import checkpoints, documents, keys, webhooks
from sharing.audit import AuditAction, record
from sharing.documents import Content, _seal
from sharing.sealed import open_text
from sharing.tables import AuditEvent, Document, DocumentRevision, WebhookEndpoint
from tenants.errors import NotFound
from tenants.keyring import IntegrityFailure, KeyRing, KeysDestroyed, KeyStatus
from tenants.roles import Actor, ActorKind
from tenants.root_key import EnvRootKey, FileRootKey, create_root_key_file
from tenants.signing import TokenSigner
from tenants.tables import TenantKey
from tests.helpers import make_tenant


def _actor(tenant) -> Actor:
    return Actor(
        kind=ActorKind.SYSTEM, id=None, label="test", tenant_id=tenant.id, tenant_kind=tenant.kind
    )


def _keyring() -> KeyRing:
    return KeyRing(EnvRootKey(base64.b64encode(secrets.token_bytes(32)).decode()))


async def _bulk_documents(keyring: KeyRing, tenant, count: int) -> list[uuid.UUID]:
    """`count` documents sealed exactly as the service seals them, inserted in batches."""
    now = datetime.now(UTC)
    ids = []
    for start in range(0, count, 500):
        docs, revisions = [], []
        for index in range(start, min(start + 500, count)):
            document_id = uuid.uuid4()
            sealed = await _seal(
                keyring, tenant.id, document_id, 1, Content(f"Doc {index}", f"body {index}")
            )
            docs.append(
                Document(
                    id=document_id,
                    tenant_id=tenant.id,
                    kind="sop",
                    sensitivity="standard",
                    tags="|",
                    current_revision=1,
                    created_by="bulk",
                    created_at=now,
                    updated_at=now,
                )
            )
            revisions.append(
                DocumentRevision(
                    id=sealed.revision_id,
                    tenant_id=tenant.id,
                    document_id=document_id,
                    revision=1,
                    kek_version=sealed.kek_version,
                    wrapped_dek=sealed.wrapped_dek,
                    title_sealed=sealed.title,
                    body_sealed=sealed.body,
                    body_bytes=sealed.body_bytes,
                    created_by="bulk",
                    created_at=now,
                )
            )
            ids.append(document_id)
        await Document.insert(*docs)
        await DocumentRevision.insert(*revisions)
    return ids


async def _opens(keyring: KeyRing, tenant, document_id: uuid.UUID) -> str:
    return (await documents.get_document(_actor(tenant), keyring, document_id)).body


@pytest.mark.slow
async def test_rotation_of_10000_documents_rewraps_every_data_key(db) -> None:
    tenant, other = await make_tenant(), await make_tenant()
    keyring = _keyring()
    ids = await _bulk_documents(keyring, tenant, 10_000)
    other_doc = await documents.create_document(
        _actor(other), keyring, kind=DocumentKind.SOP, content=Content("Other", "other body")
    )
    seen: list[tuple[int, int]] = []
    report = await keys.rotate_tenant_key(
        KeyRing(keyring._root),
        tenant,
        actor=_actor(tenant),
        progress=lambda d, t: seen.append((d, t)),
    )
    assert (report.new_version, report.rewrapped, report.retired_versions) == (2, 10_000, [1])
    assert seen[-1] == (10_000, 10_000)
    assert (
        await DocumentRevision.count().where(
            (DocumentRevision.tenant_id == tenant.id) & (DocumentRevision.kek_version != 2)
        )
        == 0
    )
    old = (
        await TenantKey.select()
        .where((TenantKey.tenant_id == tenant.id) & (TenantKey.version == 1))
        .first()
    )
    assert old["status"] == KeyStatus.RETIRED
    assert old["wrapped_key"] is None
    fresh = KeyRing(keyring._root)
    for index in random.sample(range(10_000), 50):
        assert await _opens(fresh, tenant, ids[index]) == f"body {index}"
    # every data key opens under the new version: read all of them through the list
    page = await documents.list_documents(
        _actor(tenant), fresh, documents.DocumentFilters(limit=200)
    )
    assert len(page.items) == 200
    # the other tenant was not touched
    assert await _opens(fresh, other, other_doc.id) == "other body"
    assert (
        await AuditEvent.count().where(
            (AuditEvent.tenant_id == tenant.id)
            & (AuditEvent.action.is_in(["key:rotated", "key:retired"]))
        )
        == 2
    )


async def test_writes_during_and_after_rotation_use_the_new_version(db) -> None:
    tenant = await make_tenant()
    keyring = _keyring()
    await _bulk_documents(keyring, tenant, 3)
    hook = await webhooks.create_endpoint(
        _actor(tenant),
        keyring,
        url="https://8.8.8.8/hook",
        events=["grant.created"],
    )
    signed = await checkpoints.sign_checkpoint(keyring, tenant.id, datetime.now(UTC))
    assert signed is not None
    report = await keys.rotate_tenant_key(keyring, tenant, actor=_actor(tenant), batch_size=2)
    assert (report.rewrapped, report.retired_versions) == (5, [1])
    # the audit signing key was re-wrapped as well: the next checkpoint is signed with it
    await record(tenant.id, AuditAction.RULES_CHANGED, actor=_actor(tenant))
    later = await checkpoints.sign_checkpoint(KeyRing(keyring._root), tenant.id, datetime.now(UTC))
    assert later is not None and later.key_id == signed.key_id and later.seq > signed.seq
    # the webhook's signing secret was re-wrapped too, and still opens
    row = await WebhookEndpoint.select().where(WebhookEndpoint.id == hook.endpoint.id).first()
    assert row["kek_version"] == 2
    assert (
        await open_text(
            KeyRing(keyring._root),
            tenant.id,
            "webhook",
            row["id"],
            bytes(row["wrapped_dek"]),
            bytes(row["secret_sealed"]),
        )
        == hook.secret
    )
    made = await documents.create_document(
        _actor(tenant), keyring, kind=DocumentKind.SOP, content=Content("After", "after")
    )
    row = await DocumentRevision.select().where(DocumentRevision.document_id == made.id).first()
    assert row["kek_version"] == 2
    assert await _opens(keyring, tenant, made.id) == "after"


async def test_root_rotation_rewraps_every_tenant_key(db, tmp_path: Path) -> None:
    path = tmp_path / "root.key"
    create_root_key_file(path)
    provider = FileRootKey(path)
    keyring = KeyRing(provider)
    tenants = [await make_tenant(), await make_tenant()]
    made = {}
    for tenant in tenants:
        made[tenant.id] = await documents.create_document(
            _actor(tenant),
            keyring,
            kind=DocumentKind.SOP,
            content=Content("T", f"body {tenant.slug}"),
        )
    await keys.rotate_tenant_key(keyring, tenants[0], actor=_actor(tenants[0]))
    signer = TokenSigner(provider, max_token_seconds=600)
    kid, _ = await signer.signing_key()
    old_id, _ = provider.current_root_key()
    returned_old, new_id, count = await keys.rotate_root_key(
        keyring, signer, provider, actor=Actor.system("test")
    )
    assert returned_old == old_id
    # two live tenant key versions (the retired one has no material left) and the signing key
    assert count == 3
    assert provider.current_root_key()[0] == new_id
    assert not provider.pending_path.exists()
    rows = await TenantKey.select().where(TenantKey.wrapped_key.is_not_null())
    assert {row["root_key_id"] for row in rows if row["tenant_id"] in made} == {new_id}
    fresh = KeyRing(FileRootKey(path))  # only the new root key on disk
    for tenant in tenants:
        assert await _opens(fresh, tenant, made[tenant.id].id) == f"body {tenant.slug}"
    retired = next(tmp_path.glob(f"root.key.{old_id}.retired"))
    retired.unlink()  # the old key is gone for good: nothing needs it
    assert await _opens(KeyRing(FileRootKey(path)), tenants[0], made[tenants[0].id].id)
    fresh_signer = TokenSigner(FileRootKey(path), max_token_seconds=600)
    assert (await fresh_signer.signing_key())[0] == kid  # the signing key opens too


async def test_deleted_tenant_content_cannot_be_opened_with_any_key(db) -> None:
    tenant, neighbour = await make_tenant(), await make_tenant()
    keyring = _keyring()
    made = await documents.create_document(
        _actor(tenant), keyring, kind=DocumentKind.SOP, content=Content("Doomed", "doomed body")
    )
    kept = await documents.create_document(
        _actor(neighbour), keyring, kind=DocumentKind.SOP, content=Content("Kept", "kept body")
    )
    destroyed = await keys.delete_tenant(keyring, tenant, actor=Actor.system("test"))
    assert destroyed == 1
    row = await DocumentRevision.select().where(DocumentRevision.document_id == made.id).first()
    assert row is not None  # the ciphertext is still there ...
    assert (
        await TenantKey.count().where(
            (TenantKey.tenant_id == tenant.id) & TenantKey.wrapped_key.is_not_null()
        )
        == 0
    )
    with pytest.raises(KeysDestroyed):  # ... and its own key ring cannot open it
        await _opens(KeyRing(keyring._root), tenant, made.id)
    # nor can any key the system still holds
    context = documents.revision_context(tenant.id, made.id, 1)
    for key_row in await TenantKey.select().where(TenantKey.wrapped_key.is_not_null()):
        kek = keyring.unwrap_kek(
            key_row["tenant_id"], key_row["version"], bytes(key_row["wrapped_key"])
        )
        from tenants.keyring import open_with

        with pytest.raises(IntegrityFailure):
            open_with(
                kek,
                bytes(row["wrapped_dek"]),
                header_size=5,
                context=b"shiftgate:dek|" + context,
                what="x",
            )
    with pytest.raises(KeysDestroyed):  # no new key for a shredded tenant
        await keyring.create_kek(tenant.id)
    from tenants import service

    with pytest.raises(NotFound):
        await service.get_tenant_by_slug(tenant.slug)
    assert await _opens(keyring, neighbour, kept.id) == "kept body"
    events = await AuditEvent.select().where(AuditEvent.action == "tenant:deleted")
    assert {event["tenant_id"] for event in events} >= {tenant.id}
