"""Grant transitions on time (`sharing.expiry`): each exactly once, audited in both chains,
announced in the outbox, and caught up after the worker was stopped."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, timedelta
from typing import Any

import pytest

from sharing import expiry
from sharing.audit import verify_chain
from sharing.clock import ManualClock
from sharing.tables import AuditEvent, Grant, OutboxEvent
from tenants.tables import IssuedToken
from tests.helpers import (
    STORY_START,
    AppClient,
    MspSide,
    NocSide,
    bearer,
    grant_token,
    hand_off,
    make_msp_side,
    make_noc_side,
    partner_up,
    served_at,
)

MS = timedelta(milliseconds=1)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(STORY_START)


@pytest.fixture
async def http(settings, db, clock) -> AsyncIterator[AppClient]:
    async with served_at(settings, clock) as client:
        yield client


@pytest.fixture
async def sides(http: AppClient) -> tuple[MspSide, NocSide]:
    msp = await make_msp_side(http)
    noc = await make_noc_side()
    await partner_up(msp, noc)
    return msp, noc


async def _events(action: str, grant_id: Any = None) -> list[dict[str, Any]]:
    where = AuditEvent.action == action
    if grant_id is not None:
        where &= AuditEvent.target_id == str(grant_id)
    rows: list[dict[str, Any]] = await AuditEvent.select().where(where).output(load_json=True)
    return rows


async def _outbox(event_type: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = (
        await OutboxEvent.select()
        .where(OutboxEvent.event_type == event_type)
        .output(load_json=True)
    )
    return rows


async def _grant(grant_id: Any) -> dict[str, Any]:
    row = await Grant.select().where(Grant.id == grant_id).first()
    assert row is not None
    return row


async def test_a_grant_expires_at_its_end_once_with_both_chains_told(
    http: AppClient, sides: tuple[MspSide, NocSide], clock: ManualClock
) -> None:
    msp, noc = sides
    grant = (await hand_off(http, msp, noc))["grant"]
    token = await grant_token(http, noc, grant["id"])
    ends_at = (await _grant(grant["id"]))["ends_at"]

    clock.set(ends_at - MS)
    assert (await expiry.run_transitions(await clock.now())).expired == 0
    assert (await _grant(grant["id"]))["status"] == "active"

    clock.set(ends_at)
    report = await expiry.run_transitions(await clock.now())
    assert report.expired == 1
    row = await _grant(grant["id"])
    assert row["status"] == "expired"
    assert row["ended_at"] == ends_at

    events = await _events("grant:expired", grant["id"])
    assert sorted(event["tenant_id"] for event in events) == sorted([msp.tenant.id, noc.tenant.id])
    assert {event["actor_label"] for event in events} == {"worker"}
    assert {event["context"]["tokens_revoked"] for event in events} == {"1"}
    outbox = await _outbox("grant.expired")
    assert sorted(row["tenant_id"] for row in outbox) == sorted([msp.tenant.id, noc.tenant.id])
    assert len({row["payload"]["event_id"] for row in outbox}) == 1  # one event, two copies
    assert outbox[0]["payload"]["grant_id"] == grant["id"]
    assert (
        await IssuedToken.count().where(
            (IssuedToken.grant_id == uuid.UUID(grant["id"])) & IssuedToken.revoked_at.is_null()
        )
        == 0
    )

    clock.advance(timedelta(minutes=5))
    assert (await expiry.run_transitions(await clock.now())).total == 0
    assert len(await _events("grant:expired", grant["id"])) == 2
    assert len(await _outbox("grant.expired")) == 2
    for tenant in (msp.tenant, noc.tenant):
        assert (await verify_chain(tenant.id)).ok

    # The token was revoked with the grant: introspection says so.
    response = await http.get(f"/api/v1/partner/grants/{grant['id']}/bundle", headers=bearer(token))
    assert response.status_code in {401, 403}


async def test_a_scheduled_grant_is_activated_at_its_start(
    http: AppClient, sides: tuple[MspSide, NocSide], clock: ManualClock
) -> None:
    msp, noc = sides
    starts_at = STORY_START + timedelta(hours=1)
    grant = (await hand_off(http, msp, noc, starts_at=starts_at.isoformat()))["grant"]
    assert grant["status"] == "scheduled"

    clock.set(starts_at - MS)
    assert (await expiry.run_transitions(await clock.now())).activated == 0
    clock.set(starts_at)
    assert (await expiry.run_transitions(await clock.now())).activated == 1
    assert (await _grant(grant["id"]))["status"] == "active"
    assert len(await _events("grant:activated", grant["id"])) == 2
    assert len(await _outbox("grant.activated")) == 2
    assert (await expiry.run_transitions(await clock.now())).activated == 0
    assert len(await _events("grant:activated", grant["id"])) == 2


async def test_with_the_worker_stopped_reads_end_on_time_and_it_catches_up_once(
    http: AppClient, sides: tuple[MspSide, NocSide], clock: ManualClock
) -> None:
    msp, noc = sides
    starts_at = STORY_START + timedelta(hours=1)
    ends_at = STORY_START + timedelta(hours=3)
    grant = (
        await hand_off(http, msp, noc, starts_at=starts_at.isoformat(), ends_at=ends_at.isoformat())
    )["grant"]
    clock.set(starts_at)
    token = await grant_token(http, noc, grant["id"])
    document = f"/api/v1/partner/grants/{grant['id']}/documents/{msp.documents['network']}"

    clock.set(ends_at - MS)
    assert (await http.get(document, headers=bearer(token))).status_code == 200
    clock.set(ends_at)
    denied = await http.get(document, headers=bearer(token))
    assert denied.status_code == 403
    assert "grant_ended" in denied.text
    assert (await _grant(grant["id"]))["status"] == "scheduled"  # no worker has run

    clock.set(ends_at + timedelta(hours=2))  # the worker starts late
    report = await expiry.run_transitions(await clock.now())
    assert (report.activated, report.expired) == (0, 1)
    assert await _events("grant:activated", grant["id"]) == []
    expired = await _events("grant:expired", grant["id"])
    assert len(expired) == 2
    assert {event["context"]["ends_at"] for event in expired} == {
        ends_at.astimezone(UTC).isoformat()
    }
    assert (await _grant(grant["id"]))["ended_at"] == ends_at
    assert (await expiry.run_transitions(await clock.now())).total == 0


async def test_both_sides_are_warned_before_the_end_at_the_msps_lead_time(
    http: AppClient, sides: tuple[MspSide, NocSide], clock: ManualClock
) -> None:
    msp, noc = sides
    grant = (await hand_off(http, msp, noc))["grant"]
    ends_at = (await _grant(grant["id"]))["ends_at"]

    clock.set(ends_at - timedelta(minutes=15) - MS)
    assert (await expiry.run_transitions(await clock.now())).warned == 0
    clock.set(ends_at - timedelta(minutes=15))
    assert (await expiry.run_transitions(await clock.now())).warned == 1
    outbox = await _outbox("grant.expiring")
    assert sorted(row["tenant_id"] for row in outbox) == sorted([msp.tenant.id, noc.tenant.id])
    assert (await expiry.run_transitions(await clock.now())).warned == 0
    assert len(await _outbox("grant.expiring")) == 2


async def test_a_new_lead_time_applies_to_live_grants_and_zero_means_no_warning(
    http: AppClient, sides: tuple[MspSide, NocSide], clock: ManualClock
) -> None:
    msp, noc = sides
    grant = (await hand_off(http, msp, noc))["grant"]
    ends_at = (await _grant(grant["id"]))["ends_at"]
    rules = (await http.get("/api/v1/rules", headers=msp.headers)).json()
    assert rules["expiry_warning_minutes"] == 15

    rules["expiry_warning_minutes"] = 60
    response = await http.put("/api/v1/rules", json=rules, headers=msp.headers)
    assert response.status_code == 200, response.text
    clock.set(ends_at - timedelta(minutes=60))
    assert (await expiry.run_transitions(await clock.now())).warned == 1

    second = (await hand_off(http, msp, noc, psa_reference="PSA-4412"))["grant"]
    rules["expiry_warning_minutes"] = 0
    response = await http.put("/api/v1/rules", json=rules, headers=msp.headers)
    assert response.status_code == 200, response.text
    assert (await _grant(second["id"]))["warn_at"] is None
    clock.set((await _grant(second["id"]))["ends_at"] - MS)
    assert (await expiry.run_transitions(await clock.now())).warned == 0

    rules["expiry_warning_minutes"] = 1441
    response = await http.put("/api/v1/rules", json=rules, headers=msp.headers)
    assert response.status_code == 400
    assert "expiry_warning_minutes" in response.json()["detail"]


async def test_an_approved_extension_moves_the_warning_and_the_end(
    http: AppClient, sides: tuple[MspSide, NocSide], clock: ManualClock
) -> None:
    msp, noc = sides
    grant = (await hand_off(http, msp, noc))["grant"]
    token = await grant_token(http, noc, grant["id"])
    ends_at = (await _grant(grant["id"]))["ends_at"]
    clock.set(ends_at - timedelta(minutes=15))
    assert (await expiry.run_transitions(await clock.now())).warned == 1

    new_end = ends_at + timedelta(hours=2)
    response = await http.post(
        f"/api/v1/partner/grants/{grant['id']}/extension-requests",
        json={"reason": "the vendor calls back at 10:00", "requested_ends_at": new_end.isoformat()},
        headers=bearer(token),
    )
    assert response.status_code == 201, response.text
    response = await http.post(
        f"/api/v1/extension-requests/{response.json()['id']}/approve",
        json={},
        headers=msp.headers,
    )
    assert response.status_code == 200, response.text

    clock.set(ends_at)
    assert (await expiry.run_transitions(await clock.now())).expired == 0
    clock.set(new_end - timedelta(minutes=15))
    assert (await expiry.run_transitions(await clock.now())).warned == 1
    clock.set(new_end)
    assert (await expiry.run_transitions(await clock.now())).expired == 1


async def _copies(grant_id: Any, count: int) -> list[uuid.UUID]:
    """`count` more grants like `grant_id` (same handoff), inserted directly: for volume."""
    row = await Grant.select().where(Grant.id == grant_id).first().output(load_json=True)
    assert row is not None
    ids = [uuid.uuid4() for _ in range(count)]
    await Grant.insert(*[Grant(**{**row, "id": new_id}) for new_id in ids])
    return ids


async def test_concurrent_workers_process_each_transition_exactly_once(
    http: AppClient, sides: tuple[MspSide, NocSide], clock: ManualClock
) -> None:
    msp, noc = sides
    grant = (await hand_off(http, msp, noc))["grant"]
    await _copies(grant["id"], 299)
    ends_at = (await _grant(grant["id"]))["ends_at"]
    clock.set(ends_at)

    reports = await asyncio.gather(
        *[expiry.run_transitions(await clock.now(), batch=40) for _ in range(3)]
    )
    assert sum(report.expired for report in reports) == 300
    assert len(await _events("grant:expired")) == 600
    assert len(await _outbox("grant.expired")) == 600
    assert (await expiry.counters())["grants_expired"] == 300
    for tenant in (msp.tenant, noc.tenant):
        assert (await verify_chain(tenant.id)).ok


async def test_next_due_skips_grants_without_a_warning(
    http: AppClient, sides: tuple[MspSide, NocSide], clock: ManualClock
) -> None:
    msp, noc = sides
    rules = (await http.get("/api/v1/rules", headers=msp.headers)).json()
    response = await http.put(
        "/api/v1/rules", json={**rules, "expiry_warning_minutes": 0}, headers=msp.headers
    )
    assert response.status_code == 200, response.text
    grant = (await hand_off(http, msp, noc))["grant"]
    assert await expiry.next_due() == (await _grant(grant["id"]))["ends_at"]


async def test_next_due_is_the_earliest_start_end_or_warning(
    http: AppClient, sides: tuple[MspSide, NocSide], clock: ManualClock
) -> None:
    msp, noc = sides
    assert await expiry.next_due() is None
    starts_at = STORY_START + timedelta(hours=1)
    await hand_off(http, msp, noc, starts_at=starts_at.isoformat())
    assert await expiry.next_due() == starts_at
    clock.set(starts_at)
    await expiry.run_transitions(await clock.now())
    due = await expiry.next_due()
    assert due is not None
    assert due > starts_at  # now the warning, 15 minutes before the end
    assert await expiry.oldest_overdue(await clock.now()) is None
