"""The worker as deployed: `shiftgate worker` processes beside `shiftgate serve` processes on one
PostgreSQL, many grants ending at one instant, each transition processed exactly once."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from sharing import webhooks
from sharing.audit import verify_chain
from sharing.clock import DatabaseClock
from sharing.events import EventType, emit
from sharing.tables import AuditEvent, Grant, OutboxEvent, WebhookDelivery
from tests.helpers import hand_off, make_msp_side, make_noc_side, partner_up, served
from tests.webhook_receiver import HANG, Received, receiving

SHIFTGATE = str(Path(sys.executable).parent / "shiftgate")
GRANTS = 10_000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def process_env(settings: Any, tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a gateway or worker process on the test's own database and Redis."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SHIFTGATE_")}
    env.update(
        DATABASE_URL=settings.database_url,
        SHIFTGATE_ROOT_KEY=settings.root_key,
        SHIFTGATE_VAR_DIR=str(tmp_path / "var"),
        SHIFTGATE_LOG_LEVEL="WARNING",
        SHIFTGATE_REDIS_NAMESPACE=settings.redis_namespace,
        **extra,
    )
    if settings.redis_url:
        env["REDIS_URL"] = settings.redis_url
    return env


class Processes:
    """`shiftgate` processes started by a test, all stopped at its end."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
        process = subprocess.Popen([SHIFTGATE, *args], env=env)
        self.started.append(process)
        return process

    def stop(self) -> None:
        for process in self.started:
            process.terminate()
        for process in self.started:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def processes() -> Iterator[Processes]:
    started = Processes()
    yield started
    started.stop()


async def _wait_ready(url: str) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(150):
            try:
                if (await client.get(f"{url}/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"{url} did not become ready")


async def _clone(grant_id: str, count: int, ends_at: Any) -> None:
    """`count` more grants of the same handoff ending at `ends_at`, inserted in batches."""
    await Grant.update({Grant.ends_at: ends_at, Grant.warn_at: None}).where(
        Grant.id == uuid.UUID(grant_id)
    )
    row = await Grant.select().where(Grant.id == uuid.UUID(grant_id)).first().output(load_json=True)
    assert row is not None
    for start in range(0, count, 1000):
        batch = min(1000, count - start)
        await Grant.insert(*[Grant(**{**row, "id": uuid.uuid4()}) for _ in range(batch)])


@pytest.mark.pg
@pytest.mark.slow
async def test_two_workers_expire_ten_thousand_grants_within_ten_seconds_exactly_once(
    settings, db, tmp_path: Path, processes: Processes
) -> None:
    async with served(settings) as http:
        msp = await make_msp_side(http)
        noc = await make_noc_side()
        await partner_up(msp, noc)
        grant = (await hand_off(http, msp, noc))["grant"]
    clock = DatabaseClock()
    due = await clock.now() + timedelta(seconds=15)
    await _clone(grant["id"], GRANTS - 1, due)
    assert await Grant.count().where(Grant.status == "active") == GRANTS

    env = process_env(settings, tmp_path)
    gateways = []
    for _ in range(2):
        port = _free_port()
        gateways.append(f"http://127.0.0.1:{port}")
        processes.start(
            "serve", "--port", str(port), env={**env, "SHIFTGATE_BASE_URL": gateways[-1]}
        )
    for _ in range(2):
        processes.start("worker", env=env)
    for url in gateways:
        await _wait_ready(url)
    assert await clock.now() < due, "the processes took too long to start"

    finished = None
    while await clock.now() < due + timedelta(seconds=30):
        if await Grant.count().where(Grant.status == "expired") == GRANTS:
            finished = await clock.now()
            break
        await asyncio.sleep(0.2)
    assert finished is not None, "not every grant expired within 30 seconds"
    print(f"\n{GRANTS:,} grants expired {(finished - due).total_seconds():.2f} s after their end")
    assert finished - due <= timedelta(seconds=10)

    for tenant in (msp.tenant, noc.tenant):
        events = await AuditEvent.count().where(
            (AuditEvent.tenant_id == tenant.id) & (AuditEvent.action == "grant:expired")
        )
        assert events == GRANTS  # each grant once in each chain
        assert (await verify_chain(tenant.id)).ok
    distinct = await AuditEvent.raw(
        "SELECT count(DISTINCT target_id) AS n FROM audit_events WHERE action = 'grant:expired'"
    )
    assert distinct[0]["n"] == GRANTS
    assert await OutboxEvent.count().where(OutboxEvent.event_type == "grant.expired") == 2 * GRANTS
    ids = await OutboxEvent.raw(
        "SELECT count(DISTINCT payload::jsonb ->> 'event_id') AS n FROM outbox_events"
        " WHERE event_type = 'grant.expired'"
    )
    assert ids[0]["n"] == GRANTS

    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{gateways[1]}/metrics")).text
    assert re.search(rf'^shiftgate_grants{{state="expired"}} {GRANTS}$', text, re.M), text
    assert re.search(
        rf'^shiftgate_worker_transitions_total{{transition="expired"}} {GRANTS}$', text, re.M
    )
    assert re.search(r"^shiftgate_worker_lag_seconds 0$", text, re.M)


async def test_a_worker_killed_mid_delivery_loses_no_event(
    settings, db, tmp_path: Path, processes: Processes
) -> None:
    in_flight = asyncio.Event()  # set: the receiver hangs, as a slow network does

    def answer(request: Received) -> int | None:
        return HANG if in_flight.is_set() else 200

    in_flight.set()
    async with served(settings) as http, receiving(answer) as receiver:
        msp = await make_msp_side(http)
        issued = await webhooks.create_endpoint(
            msp.admin.actor,
            http.app.state.keyring,
            url=receiver.url(),
            events=["grant.created"],
            allow_private=True,
        )
        for number in range(30):
            await emit(
                (msp.tenant.id,), EventType.GRANT_CREATED, {"psa_reference": f"PSA-{number}"}
            )
        sent = {
            row["payload"]["event_id"]
            for row in await OutboxEvent.select(OutboxEvent.payload).output(load_json=True)
        }
        assert len(sent) == 30

        env = process_env(
            settings,
            tmp_path,
            SHIFTGATE_WEBHOOK_ALLOW_PRIVATE="true",
            SHIFTGATE_WEBHOOK_TIMEOUT_SECONDS="3",
            SHIFTGATE_WORKER_MAX_SLEEP_SECONDS="0.2",
        )
        first = processes.start("worker", env=env)
        await receiver.wait_for(16)  # a full batch is being posted
        first.kill()  # SIGKILL: no clean-up of any kind
        posted_before_kill = {
            request.headers["shiftgate-event-id"] for request in receiver.requests
        }

        in_flight.clear()
        processes.start("worker", env=env)
        for _ in range(300):  # the dead worker's leases run out after 11 s
            posted = {request.headers["shiftgate-event-id"] for request in receiver.requests}
            done = await WebhookDelivery.count().where(WebhookDelivery.status == "delivered")
            if sent <= posted and done == 30:
                break
            await asyncio.sleep(0.1)

    seen = [request.headers["shiftgate-event-id"] for request in receiver.requests]
    assert sent <= set(seen), "an event was never posted"
    assert await WebhookDelivery.count().where(WebhookDelivery.status == "delivered") == 30
    assert posted_before_kill and posted_before_kill <= set(seen[len(posted_before_kill) :]), (
        "what was in flight at the kill is posted again (at least once), with the same event id"
    )
    for request in receiver.requests:
        assert webhooks.verify_signature(
            issued.secret,
            request.headers["shiftgate-signature"],
            request.body,
            now=int(time.time()),
        )
