"""Archiving old months: the file verifies on its own, the chain left behind still verifies from
the signed cut, and nothing goes before the retention allows it."""

from __future__ import annotations

import base64
import hashlib
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from sharing import audit_archive
from sharing.audit import AuditAction, record, verify_chain
from sharing.audit_export import verify_export
from sharing.audit_storage import ensure_partitions
from sharing.checkpoints import public_keys
from sharing.tables import AuditCheckpoint, AuditEvent
from tenants.errors import Conflict
from tenants.keyring import KeyRing
from tenants.roles import Actor
from tenants.root_key import EnvRootKey
from tenants.tables import Tenant

ADMIN = Actor.system("test archive")


@pytest.fixture
def keyring(settings) -> KeyRing:
    return KeyRing(EnvRootKey(settings.root_key))


async def _tenant_with_history(months: list[date], per_month: int = 3) -> uuid.UUID:
    """A tenant whose chain holds `per_month` events in each of `months` (in order)."""
    tenant_id = uuid.uuid4()
    await Tenant.insert(
        Tenant(
            id=tenant_id,
            name="Archive test",
            slug=f"archive-{tenant_id.hex[:8]}",
            kind="msp",
            time_zone="UTC",
            created_at=datetime(2020, 1, 1, tzinfo=UTC),
            audit_retention_months=2,
        )
    )
    for month in months:
        for day in range(per_month):
            await record(
                tenant_id,
                AuditAction.RULES_CHANGED,
                actor=ADMIN,
                at=datetime(month.year, month.month, 3 + day, 12, tzinfo=UTC),
            )
    return tenant_id


async def _keys(tenant_id: uuid.UUID) -> list[bytes]:
    return [base64.urlsafe_b64decode(key.public_key + "==") for key in await public_keys(tenant_id)]


async def test_an_archived_month_verifies_on_its_own_and_the_rest_from_the_cut(
    db, keyring: KeyRing, tmp_path: Path
) -> None:
    tenant_id = await _tenant_with_history([date(2029, 1, 1), date(2029, 2, 1), date(2029, 3, 1)])
    out = tmp_path / "2029-01.jsonl"
    now = datetime(2029, 6, 10, tzinfo=UTC)

    report = await audit_archive.archive_month(
        keyring, tenant_id, date(2029, 1, 1), out, actor=ADMIN, now=now
    )
    assert (report.from_seq, report.to_seq, report.events) == (1, 3, 3)
    assert report.sha256 == hashlib.sha256(out.read_bytes()).hexdigest()
    with out.open("rb") as file:
        verified = verify_export(file, trusted_keys=await _keys(tenant_id))
    assert verified.ok, verified
    assert verified.events_verified == 3

    left = await AuditEvent.select(AuditEvent.seq).where(AuditEvent.tenant_id == tenant_id)
    assert sorted(row["seq"] for row in left) == [4, 5, 6, 7, 8, 9, 10]  # 10: the archive's own
    chain = await verify_chain(tenant_id)
    assert chain.ok, chain
    assert chain.verified == 7
    archived = (
        await AuditEvent.select()
        .where((AuditEvent.tenant_id == tenant_id) & (AuditEvent.action == "audit:archived"))
        .output(load_json=True)
    )
    assert archived[0]["context"]["sha256"] == report.sha256

    # The next month continues from there, and its file is anchored to the same cut.
    second = await audit_archive.archive_month(
        keyring, tenant_id, date(2029, 2, 1), tmp_path / "2029-02.jsonl", actor=ADMIN, now=now
    )
    assert (second.from_seq, second.to_seq) == (4, 6)
    with (tmp_path / "2029-02.jsonl").open("rb") as file:
        assert verify_export(file, trusted_keys=await _keys(tenant_id)).ok
    assert (await verify_chain(tenant_id)).ok


async def test_a_forged_cut_is_caught_by_the_chain_check(
    db, keyring: KeyRing, tmp_path: Path
) -> None:
    tenant_id = await _tenant_with_history([date(2029, 1, 1), date(2029, 2, 1)])
    await audit_archive.archive_month(
        keyring,
        tenant_id,
        date(2029, 1, 1),
        tmp_path / "a.jsonl",
        actor=ADMIN,
        now=datetime(2029, 5, 1, tzinfo=UTC),
    )
    async with AuditCheckpoint._meta.db.transaction():
        await AuditCheckpoint.update({AuditCheckpoint.hash: "f" * 64}).where(
            (AuditCheckpoint.tenant_id == tenant_id) & (AuditCheckpoint.seq == 3)
        )
    report = await verify_chain(tenant_id)
    assert not report.ok
    assert "no signed cut" in (report.problem or "")


async def test_nothing_goes_before_the_retention_allows_it(
    db, keyring: KeyRing, tmp_path: Path
) -> None:
    tenant_id = await _tenant_with_history([date(2029, 1, 1), date(2029, 2, 1)])
    early = datetime(2029, 2, 20, tzinfo=UTC)  # January ended 1 month ago; retention is 2
    with pytest.raises(Conflict, match="retention of 2 months"):
        await audit_archive.archive_month(
            keyring, tenant_id, date(2029, 1, 1), tmp_path / "x.jsonl", actor=ADMIN, now=early
        )
    await Tenant.update({Tenant.audit_retention_months: None}).where(Tenant.id == tenant_id)
    with pytest.raises(Conflict, match="forever"):
        await audit_archive.archive_month(
            keyring,
            tenant_id,
            date(2029, 1, 1),
            tmp_path / "x.jsonl",
            actor=ADMIN,
            now=early + timedelta(days=365),
        )
    assert await AuditEvent.count().where(AuditEvent.tenant_id == tenant_id) == 6
    assert not (tmp_path / "x.jsonl").exists()


@pytest.mark.pg
async def test_an_emptied_month_partition_is_dropped(db, keyring: KeyRing, tmp_path: Path) -> None:
    await ensure_partitions(datetime(2030, 1, 15, tzinfo=UTC))
    tenant_id = await _tenant_with_history([date(2030, 1, 1), date(2030, 2, 1)])
    report = await audit_archive.archive_month(
        keyring,
        tenant_id,
        date(2030, 1, 1),
        tmp_path / "2030-01.jsonl",
        actor=ADMIN,
        now=datetime(2030, 6, 1, tzinfo=UTC),
    )
    assert report.partition_dropped
    found = await db.run_ddl("SELECT to_regclass('audit_events_y2030m01') IS NULL AS gone")
    assert found[0]["gone"]
    assert (await verify_chain(tenant_id)).ok
