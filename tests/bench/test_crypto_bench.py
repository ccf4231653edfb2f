"""Benchmarks of encryption at rest: what sealing costs per document and per MiB, and how fast
a tenant key rotation re-wraps data keys.

Collected only with SHIFTGATE_BENCH=1 (`make bench`). They print figures and assert only that
what was sealed opens again; no timing is asserted.

    SHIFTGATE_BENCH=1 .venv/bin/python -m pytest tests/bench -m bench -s -q
    SHIFTGATE_BENCH_DOCS=10000 ...   # documents for the rotation run (default 2000)
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from policies.vocabulary import DocumentKind
from sharing import documents
from sharing.clients import create_client
from sharing.documents import MAX_BODY_BYTES, Content, revision_context
from sharing.keys import rotate_tenant_key
from sharing.tables import Document, DocumentRevision
from tenants.db import write_transaction
from tenants.keyring import KeyRing, KeyStatus, open_with, seal_with
from tenants.roles import Actor, ActorKind
from tenants.root_key import EnvRootKey
from tenants.service import TenantInfo
from tenants.tables import TenantKey
from tests.helpers import make_tenant

pytestmark = pytest.mark.bench

KIB = 1024
MIB = 1024 * 1024
DOCS_4K = 200
DOCS_1M = 10
SEAL_ROUNDS_4K = 5000
SEAL_ROUNDS_1M = 50
ROTATION_DOCS = int(os.environ.get("SHIFTGATE_BENCH_DOCS", "2000"))
INSERT_BATCH = 250
SPOT_CHECKS = 25


def _actor(tenant: TenantInfo) -> Actor:
    return Actor(
        kind=ActorKind.SYSTEM,
        id=None,
        label="bench",
        tenant_id=tenant.id,
        tenant_kind=tenant.kind,
    )


def _keyring(settings) -> KeyRing:  # type: ignore[no-untyped-def]
    return KeyRing(EnvRootKey(settings.root_key))


def _markdown(size: int, seed: int = 0) -> str:
    """Plausible Markdown of exactly `size` bytes of UTF-8 (ASCII only)."""
    rng = random.Random(seed)
    words = [
        "switch",
        "uplink",
        "VLAN",
        "stack",
        "console",
        "port-channel",
        "spanning-tree",
        "firmware",
        "escalate",
        "on-call",
        "runbook",
        "interface",
    ]
    lines = ["# Core switch outage", ""]
    length = sum(len(line) + 1 for line in lines)
    while length < size:
        line = "- " + " ".join(rng.choice(words) for _ in range(12))
        lines.append(line)
        length += len(line) + 1
    return "\n".join(lines)[:size]


def _ms(seconds: float, count: int) -> str:
    return f"{seconds / count * 1000:.2f} ms"


async def _timed(count: int, work: Callable[[int], object]) -> float:
    start = time.perf_counter()
    for index in range(count):
        await work(index)  # type: ignore[misc]
    return time.perf_counter() - start


async def test_document_encrypt_decrypt_cost(db, settings) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant("msp")
    actor = _actor(tenant)
    keyring = _keyring(settings)
    client = await create_client(actor, name="Contoso Ltd", short_code="CONTOSO")
    # `_check_content` counts the encoded credential fields too: b"null" when there are none.
    sizes = {"4 KiB": (4 * KIB, DOCS_4K), "1 MiB": (MAX_BODY_BYTES - len(b"null"), DOCS_1M)}
    print(f"\n[{db.engine_type}] encryption at rest, through sharing.documents")
    for label, (size, count) in sizes.items():
        body = _markdown(size)
        assert len(body.encode()) == size
        ids: list[uuid.UUID] = []

        async def create(index: int, body: str = body, ids: list[uuid.UUID] = ids) -> None:
            summary = await documents.create_document(
                actor,
                keyring,
                kind=DocumentKind.SOP,
                content=Content(title=f"Bench {index}", body=body),
                client_id=client.id,
                tags=["bench"],
            )
            ids.append(summary.id)

        async def read(index: int, body: str = body, ids: list[uuid.UUID] = ids) -> None:
            found = await documents.get_document(actor, keyring, ids[index])
            assert found.body == body
            assert found.title == f"Bench {index}"

        await create(-1)  # warm up: the tenant's first key version is made here
        ids.pop()
        wrote = await _timed(count, create)
        read_time = await _timed(count, read)
        mib = size * count / MIB
        print(
            f"encrypt+store {label} doc: {_ms(wrote, count)}/doc"
            f" ({wrote / mib * 1000:.1f} ms/MiB, {count} docs)"
        )
        print(
            f"load+decrypt  {label} doc: {_ms(read_time, count)}/doc"
            f" ({read_time / mib * 1000:.1f} ms/MiB, {count} docs; each read writes an audit event)"
        )

    print(f"[{db.engine_type}] pure sealing, tenants.keyring.seal_with/open_with (AES-256-GCM)")
    key = os.urandom(32)
    header = bytes([1]) + uuid.uuid4().bytes
    context = revision_context(tenant.id, uuid.uuid4(), 1)
    for label, size, rounds in (("4 KiB", 4 * KIB, SEAL_ROUNDS_4K), ("1 MiB", MIB, SEAL_ROUNDS_1M)):
        plaintext = _markdown(size, seed=1).encode()
        start = time.perf_counter()
        for _ in range(rounds):
            sealed = seal_with(key, plaintext, header=header, context=context)
        sealing = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(rounds):
            opened = open_with(
                key, sealed, header_size=len(header), context=context, what="bench value"
            )
        opening = time.perf_counter() - start
        assert opened == plaintext
        mib = size * rounds / MIB
        print(
            f"seal {label}: {sealing / rounds * 1e6:.1f} us/op"
            f" ({sealing / mib * 1000:.2f} ms/MiB, {mib / sealing:.0f} MiB/s)"
        )
        print(
            f"open {label}: {opening / rounds * 1e6:.1f} us/op"
            f" ({opening / mib * 1000:.2f} ms/MiB, {mib / opening:.0f} MiB/s)"
        )


async def _bulk_documents(
    keyring: KeyRing, tenant: TenantInfo, client_id: uuid.UUID, count: int
) -> list[tuple[uuid.UUID, str]]:
    """`count` one-revision documents, sealed by the service's own sealing code, inserted in
    batches (no audit events: this is setup, not what is measured)."""
    made: list[tuple[uuid.UUID, str]] = []
    now = datetime.now(UTC)
    for start in range(0, count, INSERT_BATCH):
        docs, revisions = [], []
        async with write_transaction():
            for index in range(start, min(start + INSERT_BATCH, count)):
                document_id = uuid.uuid4()
                body = f"# Runbook {index}\n\nCheck the uplink of switch {index}.\n"
                sealed = await documents._seal(
                    keyring, tenant.id, document_id, 1, Content(f"Doc {index}", body)
                )
                docs.append(
                    Document(
                        id=document_id,
                        tenant_id=tenant.id,
                        client_id=client_id,
                        kind=DocumentKind.RUNBOOK.value,
                        sensitivity="standard",
                        tags="|bench|",
                        current_revision=1,
                        created_by="bench",
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
                        created_by="bench",
                        created_at=now,
                    )
                )
                made.append((document_id, body))
            await Document.insert(*docs)
            await DocumentRevision.insert(*revisions)
    return made


async def test_rotation_throughput(db, settings) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant("msp")
    actor = _actor(tenant)
    keyring = _keyring(settings)
    client = await create_client(actor, name="Fabrikam Inc", short_code="FABRIKAM")

    start = time.perf_counter()
    made = await _bulk_documents(keyring, tenant, client.id, ROTATION_DOCS)
    setup = time.perf_counter() - start
    old_versions = {
        row["kek_version"]
        for row in await DocumentRevision.select(DocumentRevision.kek_version)
        .where(DocumentRevision.tenant_id == tenant.id)
        .distinct()
    }
    assert old_versions == {1}
    print(
        f"\n[{db.engine_type}] setup: {ROTATION_DOCS} documents sealed and inserted in"
        f" {setup:.2f} s ({_ms(setup, ROTATION_DOCS)}/doc, batches of {INSERT_BATCH})"
    )

    start = time.perf_counter()
    report = await rotate_tenant_key(keyring, tenant, actor=actor)
    took = time.perf_counter() - start
    print(
        f"[{db.engine_type}] rotation: {report.rewrapped} data keys in {took:.2f} s"
        f" = {report.rewrapped / took:.0f} keys/s (batch size 500)"
    )

    assert report.rewrapped == ROTATION_DOCS
    assert report.retired_versions == [1]
    assert report.new_version == 2
    stale = await DocumentRevision.count().where(
        (DocumentRevision.tenant_id == tenant.id) & (DocumentRevision.kek_version != 2)
    )
    assert stale == 0
    wrapped = await DocumentRevision.select(DocumentRevision.wrapped_dek).where(
        DocumentRevision.tenant_id == tenant.id
    )
    assert {KeyRing.dek_version(bytes(row["wrapped_dek"])) for row in wrapped} == {2}
    retired = (
        await TenantKey.select(TenantKey.status, TenantKey.wrapped_key)
        .where((TenantKey.tenant_id == tenant.id) & (TenantKey.version == 1))
        .first()
    )
    assert retired == {"status": KeyStatus.RETIRED, "wrapped_key": None}

    fresh = _keyring(settings)  # nothing cached: every key comes from the database
    for document_id, body in random.Random(7).sample(made, min(SPOT_CHECKS, len(made))):
        found = await documents.get_document(actor, fresh, document_id)
        assert found.body == body
