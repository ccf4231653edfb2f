"""The audit chain: append, verify, and detect tampering in the database."""

from __future__ import annotations

import itertools
import uuid

import pytest
from asyncpg.exceptions import InsufficientPrivilegeError
from hypothesis import given, settings
from hypothesis import strategies as st
from piccolo.engine.postgres import PostgresEngine

from sharing.audit import (
    GENESIS_HASH,
    AuditAction,
    Outcome,
    RequestMeta,
    canonical_bytes,
    event_hash,
    record,
    verify_chain,
)
from sharing.tables import AuditEvent
from tenants.roles import Actor
from tests.helpers import make_tenant


async def _tamper(db, sql: str) -> None:
    """Change stored events as someone with the database's own rights could: on PostgreSQL
    that means getting past the append-only trigger first (superuser, replica role)."""
    if isinstance(db, PostgresEngine):
        async with db.transaction():
            await db.run_ddl("SET LOCAL session_replication_role = replica")
            await db.run_ddl(sql)
    else:
        await db.run_ddl(sql)


@pytest.mark.pg
async def test_postgres_refuses_to_change_or_delete_audit_events(db) -> None:
    tenant = await make_tenant()
    for statement in (
        f"UPDATE audit_events SET reason = 'x' WHERE tenant_id = '{tenant.id}'",
        f"DELETE FROM audit_events WHERE tenant_id = '{tenant.id}'",
        "TRUNCATE audit_events",
    ):
        with pytest.raises(InsufficientPrivilegeError, match="append-only"):
            await db.run_ddl(statement)
    assert (await verify_chain(tenant.id)).verified == 1


async def test_events_chain_by_sequence_and_previous_hash(db) -> None:
    tenant = await make_tenant()
    actor = Actor.system("test")
    for _ in range(3):
        await record(
            tenant.id,
            AuditAction.LOGIN_SUCCEEDED,
            actor=actor,
            request=RequestMeta("r1", "10.0.0.1"),
        )
    rows = (
        await AuditEvent.select()
        .where(AuditEvent.tenant_id == tenant.id)
        .order_by(AuditEvent.seq)
        .output(load_json=True)
    )
    assert [row["seq"] for row in rows] == [1, 2, 3, 4]  # tenant creation is event 1
    assert rows[0]["prev_hash"] == GENESIS_HASH
    for before, after in itertools.pairwise(rows):
        assert after["prev_hash"] == before["hash"]
    for row in rows:
        assert event_hash(row) == row["hash"]
    report = await verify_chain(tenant.id)
    assert report.ok and report.verified == 4


async def test_changed_byte_names_the_sequence_number(db) -> None:
    tenant = await make_tenant()
    for _ in range(4):
        await record(
            tenant.id,
            AuditAction.LOGIN_FAILED,
            actor=Actor.system("t"),
            outcome=Outcome.FAILURE,
            reason="wrong password",
        )
    await _tamper(
        db,
        f"UPDATE audit_events SET reason = 'wrong passwore' WHERE tenant_id = '{tenant.id}' AND seq = 3",
    )
    report = await verify_chain(tenant.id)
    assert not report.ok
    assert report.broken_at == 3
    assert report.verified == 2
    assert "altered" in (report.problem or "")


async def test_deleted_event_is_named_missing(db) -> None:
    tenant = await make_tenant()
    for _ in range(4):
        await record(tenant.id, AuditAction.LOGIN_SUCCEEDED, actor=Actor.system("t"))
    await _tamper(db, f"DELETE FROM audit_events WHERE tenant_id = '{tenant.id}' AND seq = 2")
    report = await verify_chain(tenant.id)
    assert (report.broken_at, report.verified) == (2, 1)
    assert "missing" in (report.problem or "")


async def test_cut_tail_is_detected_against_the_head(db) -> None:
    tenant = await make_tenant()
    for _ in range(3):
        await record(tenant.id, AuditAction.LOGIN_SUCCEEDED, actor=Actor.system("t"))
    await _tamper(db, f"DELETE FROM audit_events WHERE tenant_id = '{tenant.id}' AND seq = 4")
    report = await verify_chain(tenant.id)
    assert report.broken_at == 4 and report.verified == 3


async def test_chains_of_two_tenants_are_independent(db) -> None:
    first, second = await make_tenant(), await make_tenant("noc")
    await record(first.id, AuditAction.LOGIN_SUCCEEDED, actor=Actor.system("t"))
    await record(second.id, AuditAction.LOGIN_SUCCEEDED, actor=Actor.system("t"))
    await _tamper(
        db, f"UPDATE audit_events SET actor_label = 'x' WHERE tenant_id = '{first.id}' AND seq = 2"
    )
    assert not (await verify_chain(first.id)).ok
    assert (await verify_chain(second.id)).ok


_EVENT = {
    "id": uuid.UUID(int=1),
    "tenant_id": uuid.UUID(int=2),
    "seq": 1,
    "occurred_at": __import__("datetime").datetime(
        2026, 11, 28, 2, 10, tzinfo=__import__("datetime").UTC
    ),
    "actor_type": "user",
    "actor_id": None,
    "actor_label": "a@b.c",
    "action": "login:succeeded",
    "target_type": None,
    "target_id": None,
    "outcome": "success",
    "severity": "info",
    "reason": None,
    "request_id": None,
    "source_address": None,
    "context": {},
    "prev_hash": GENESIS_HASH,
}


@settings(max_examples=200)
@given(
    field=st.sampled_from(
        ["actor_label", "action", "outcome", "reason", "source_address", "prev_hash"]
    ),
    value=st.text(min_size=1, max_size=20),
)
def test_any_change_of_a_field_changes_the_hash(field: str, value: str) -> None:
    changed = dict(_EVENT, **{field: value})
    if changed[field] == _EVENT[field]:
        return
    assert event_hash(changed) != event_hash(_EVENT)


def test_canonical_encoding_is_sorted_compact_utc() -> None:
    encoded = canonical_bytes(_EVENT)
    assert encoded.startswith(b'{"action":"login:succeeded","actor_id":null')
    assert b'"occurred_at":"2026-11-28T02:10:00.000000Z"' in encoded
    assert b" " not in encoded


@pytest.mark.pg
async def test_months_ahead_get_their_partitions_and_events_land_in_them(db) -> None:
    from datetime import UTC, datetime

    from sharing.audit_storage import ensure_partitions

    created = await ensure_partitions(datetime(2031, 12, 5, tzinfo=UTC))
    assert created == [
        "audit_events_y2031m12",
        "audit_events_y2032m01",
        "audit_events_y2032m02",
    ]
    assert await ensure_partitions(datetime(2031, 12, 5, tzinfo=UTC)) == []
    tenant = await make_tenant()
    await record(
        tenant.id,
        AuditAction.LOGIN_SUCCEEDED,
        actor=Actor.system("t"),
        at=datetime(2032, 1, 15, tzinfo=UTC),
    )
    rows = await db.run_ddl(
        f"SELECT tableoid::regclass::text AS part FROM audit_events WHERE tenant_id = '{tenant.id}'"
        " ORDER BY seq"
    )
    assert rows[-1]["part"] == "audit_events_y2032m01"
    assert (await verify_chain(tenant.id)).ok
