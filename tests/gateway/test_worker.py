"""The worker loop inside `shiftgate serve` (`run_worker`), its CLI, and `/metrics`."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import timedelta

import msgspec
import pytest

from gateway.worker import running_worker
from sharing.clock import DatabaseClock, ManualClock
from sharing.tables import AuditEvent, Grant
from tests.helpers import (
    STORY_START,
    AppClient,
    hand_off,
    make_msp_side,
    make_noc_side,
    partner_up,
    served_at,
)


async def _status(grant_id: str) -> str:
    row = await Grant.select(Grant.status).where(Grant.id == grant_id).first()
    assert row is not None
    return str(row["status"])


@pytest.mark.slow
async def test_the_loop_inside_serve_expires_a_short_grant_on_the_wall_clock(settings, db) -> None:
    clock = DatabaseClock()
    with_worker = msgspec.structs.replace(settings, run_worker=True, worker_max_sleep_seconds=0.5)
    async with served_at(with_worker, clock) as http:
        msp = await make_msp_side(http)
        noc = await make_noc_side()
        await partner_up(msp, noc)
        ends_at = await clock.now() + timedelta(seconds=3)
        grant = (await hand_off(http, msp, noc, ends_at=ends_at.isoformat()))["grant"]
        for _ in range(100):
            if await _status(grant["id"]) == "expired":
                break
            await asyncio.sleep(0.1)
        seen = await clock.now()
    assert await _status(grant["id"]) == "expired"
    events = await AuditEvent.select(AuditEvent.occurred_at).where(
        (AuditEvent.action == "grant:expired") & (AuditEvent.target_id == grant["id"])
    )
    assert len(events) == 2
    for event in events:
        assert ends_at <= event["occurred_at"] <= ends_at + timedelta(seconds=2)
    assert seen - ends_at < timedelta(seconds=3)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(STORY_START)


@pytest.fixture
async def http(settings, db, clock) -> AsyncIterator[AppClient]:
    async with served_at(settings, clock) as client:
        yield client


def _sample(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    assert match, f"{name} missing from:\n{text}"
    return float(match.group(1))


async def test_metrics_report_grants_transitions_deliveries_and_lag(
    http: AppClient, clock: ManualClock, settings
) -> None:
    msp = await make_msp_side(http)
    noc = await make_noc_side()
    await partner_up(msp, noc)
    first = (await hand_off(http, msp, noc))["grant"]
    await hand_off(http, msp, noc, psa_reference="PSA-4412")
    ends_at = (await Grant.select(Grant.ends_at).where(Grant.id == first["id"]).first())["ends_at"]

    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert "# TYPE shiftgate_grants gauge" in text
    assert _sample(text, 'shiftgate_grants{state="active"}') == 2
    assert _sample(text, 'shiftgate_worker_transitions_total{transition="expired"}') == 0
    assert _sample(text, "shiftgate_worker_lag_seconds") == 0

    clock.set(ends_at + timedelta(seconds=90))  # both grants are due; no worker has run
    text = (await http.get("/metrics")).text
    assert _sample(text, "shiftgate_worker_lag_seconds") == 90

    async with running_worker(settings, clock=clock, keyring=http.app.state.keyring) as worker:
        report = await worker.run_once()
    assert report.transitions.expired == 2
    text = (await http.get("/metrics")).text
    assert _sample(text, 'shiftgate_grants{state="expired"}') == 2
    assert _sample(text, 'shiftgate_grants{state="active"}') == 0
    assert _sample(text, 'shiftgate_worker_transitions_total{transition="expired"}') == 2
    assert _sample(text, "shiftgate_worker_lag_seconds") == 0
    assert _sample(text, "shiftgate_outbox_waiting") == 0


async def test_metrics_need_the_token_when_one_is_set(settings, db, clock) -> None:
    guarded = msgspec.structs.replace(settings, metrics_token="m3tr1cs-" + "x" * 24)
    async with served_at(guarded, clock) as http:
        assert (await http.get("/metrics")).status_code == 401
        wrong = await http.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert wrong.json()["status"] == 401
        right = await http.get(
            "/metrics", headers={"Authorization": f"Bearer {guarded.metrics_token}"}
        )
        assert right.status_code == 200
        assert "shiftgate_grants" in right.text
