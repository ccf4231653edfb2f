"""Grants moved on time: activated at `starts_at`, expired at `ends_at`, warned before the end.

Reads never wait for this (the window is checked on every request); this makes the state visible
and tells both sides. Each transition is claimed by exactly one worker: the rows are taken with
`FOR UPDATE SKIP LOCKED` on PostgreSQL (SQLite has one writer) and changed by one
`UPDATE ... RETURNING`, in the transaction that also writes the audit events of both chains,
the outbox notifications and the counters. A crash before the commit leaves nothing done.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from piccolo.engine.postgres import PostgresEngine

from sharing.audit import AuditAction, EventSpec, Severity, append_events
from sharing.events import EventType, emit_many
from sharing.tables import Grant, Handoff, WorkerCounter
from tenants.db import write_transaction
from tenants.roles import Actor
from tenants.tables import IssuedToken

__all__ = [
    "WORKER",
    "Transition",
    "TransitionReport",
    "counters",
    "next_due",
    "oldest_overdue",
    "run_transitions",
]

WORKER = Actor.system("worker")
END_REASON = "the grant's window ended"


class Transition(enum.StrEnum):
    """What the worker does to a grant, in the order it does it."""

    EXPIRE = "expired"
    ACTIVATE = "activated"
    WARN = "warned"


# Expire first: a grant whose whole window passed while no worker ran goes straight to expired.
_CLAIMS: dict[Transition, str] = {
    Transition.EXPIRE: """
UPDATE grants SET status = 'expired', ended_at = ends_at, end_reason = {}, updated_at = {}
WHERE id IN (SELECT id FROM grants WHERE status IN ('scheduled', 'active') AND ends_at <= {}
             ORDER BY ends_at LIMIT {} @LOCK)
RETURNING id, tenant_id, noc_tenant_id, handoff_id, ends_at""",
    Transition.ACTIVATE: """
UPDATE grants SET status = 'active', updated_at = {}
WHERE id IN (SELECT id FROM grants WHERE status = 'scheduled' AND starts_at <= {}
             ORDER BY starts_at LIMIT {} @LOCK)
RETURNING id, tenant_id, noc_tenant_id, handoff_id, ends_at""",
    Transition.WARN: """
UPDATE grants SET warned_at = {}
WHERE id IN (SELECT id FROM grants WHERE warned_at IS NULL AND status IN ('scheduled', 'active')
             AND warn_at <= {} AND ends_at > {}
             ORDER BY warn_at LIMIT {} @LOCK)
RETURNING id, tenant_id, noc_tenant_id, handoff_id, ends_at""",
}

_AUDIT: dict[Transition, AuditAction | None] = {
    Transition.EXPIRE: AuditAction.GRANT_EXPIRED,
    Transition.ACTIVATE: AuditAction.GRANT_ACTIVATED,
    Transition.WARN: None,  # a notification, not a change of state
}

_EVENTS: dict[Transition, EventType] = {
    Transition.EXPIRE: EventType.GRANT_EXPIRED,
    Transition.ACTIVATE: EventType.GRANT_ACTIVATED,
    Transition.WARN: EventType.GRANT_EXPIRING,
}

_COUNT_SQL = """
INSERT INTO worker_counters (name, value) VALUES ({}, {})
ON CONFLICT (name) DO UPDATE SET value = worker_counters.value + excluded.value"""


@dataclass(frozen=True, slots=True)
class TransitionReport:
    expired: int = 0
    activated: int = 0
    warned: int = 0

    @property
    def total(self) -> int:
        return self.expired + self.activated + self.warned


def _claim_sql(transition: Transition) -> str:
    lock = "FOR UPDATE SKIP LOCKED" if isinstance(Grant._meta.db, PostgresEngine) else ""
    return _CLAIMS[transition].replace("@LOCK", lock)


def _claim_args(transition: Transition, now: datetime, limit: int) -> tuple[Any, ...]:
    if transition is Transition.EXPIRE:
        return (END_REASON, now, now, limit)
    if transition is Transition.ACTIVATE:
        return (now, now, limit)
    return (now, now, now, limit)


def _utc(value: Any) -> datetime:
    """A timestamp from raw SQL: a datetime on PostgreSQL, text on SQLite."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


@dataclass(frozen=True, slots=True)
class _Claimed:
    id: uuid.UUID
    tenant_id: uuid.UUID
    noc_tenant_id: uuid.UUID
    handoff_id: uuid.UUID
    ends_at: datetime


async def _apply(transition: Transition, now: datetime, limit: int) -> int:
    """Claim up to `limit` due grants and write everything the transition owes, in one go."""
    async with write_transaction():
        rows = await Grant.raw(_claim_sql(transition), *_claim_args(transition, now, limit))
        if not rows:
            return 0
        grants = [
            _Claimed(
                id=_uuid(row["id"]),
                tenant_id=_uuid(row["tenant_id"]),
                noc_tenant_id=_uuid(row["noc_tenant_id"]),
                handoff_id=_uuid(row["handoff_id"]),
                ends_at=_utc(row["ends_at"]),
            )
            for row in rows
        ]
        references = {
            row["id"]: row["psa_reference"]
            for row in await Handoff.select(Handoff.id, Handoff.psa_reference).where(
                Handoff.id.is_in([grant.handoff_id for grant in grants])
            )
        }
        revoked: dict[uuid.UUID, int] = {}
        if transition is Transition.EXPIRE:
            revoked = await _revoke_tokens([grant.id for grant in grants], now)
        specs: list[EventSpec] = []
        events: list[tuple[tuple[uuid.UUID, ...], EventType, Mapping[str, str]]] = []
        action = _AUDIT[transition]
        for grant in grants:
            context = {
                "grant_id": str(grant.id),
                "psa_reference": references[grant.handoff_id],
                "ends_at": grant.ends_at.isoformat(),
            }
            if transition is Transition.EXPIRE:
                context["tokens_revoked"] = str(revoked.get(grant.id, 0))
            if action is not None:
                specs += [
                    EventSpec(
                        tenant_id=chain,
                        action=action,
                        actor=WORKER,
                        target_type="grant",
                        target_id=grant.id,
                        severity=Severity.INFO,
                        context=context,
                        at=now,
                    )
                    for chain in (grant.tenant_id, grant.noc_tenant_id)
                ]
            events.append(((grant.tenant_id, grant.noc_tenant_id), _EVENTS[transition], context))
        if specs:
            await append_events(specs)
        await emit_many(events)
        await WorkerCounter.raw(_COUNT_SQL, f"grants_{transition.value}", len(grants))
        return len(grants)


async def _revoke_tokens(grant_ids: list[uuid.UUID], now: datetime) -> dict[uuid.UUID, int]:
    rows = (
        await IssuedToken.update({IssuedToken.revoked_at: now})
        .where(IssuedToken.grant_id.is_in(grant_ids) & IssuedToken.revoked_at.is_null())
        .returning(IssuedToken.grant_id)
    )
    revoked: dict[uuid.UUID, int] = {}
    for row in rows:
        revoked[row["grant_id"]] = revoked.get(row["grant_id"], 0) + 1
    return revoked


async def run_transitions(now: datetime, *, batch: int = 500) -> TransitionReport:
    """Every transition due at `now`, in batches of `batch` grants per transaction."""
    done = dict.fromkeys(Transition, 0)
    for transition in Transition:
        while True:
            count = await _apply(transition, now, batch)
            done[transition] += count
            if count < batch:
                break
    return TransitionReport(
        expired=done[Transition.EXPIRE],
        activated=done[Transition.ACTIVATE],
        warned=done[Transition.WARN],
    )


async def _earliest(column: Any, where: Any) -> datetime | None:
    row = await Grant.select(column).where(where).order_by(column).limit(1).first()
    return None if row is None else _utc(row[column._meta.name])


def _live() -> Any:
    return Grant.status.is_in(["scheduled", "active"])


async def next_due() -> datetime | None:
    """The earliest instant at which some grant starts, ends or is due for its warning."""
    candidates = [
        await _earliest(Grant.starts_at, Grant.status == "scheduled"),
        await _earliest(Grant.ends_at, _live()),
        await _earliest(
            Grant.warn_at, Grant.warn_at.is_not_null() & Grant.warned_at.is_null() & _live()
        ),
    ]
    due = [moment for moment in candidates if moment is not None]
    return min(due) if due else None


async def oldest_overdue(now: datetime) -> datetime | None:
    """The due instant of the oldest start or end not yet processed (the worker's lag)."""
    candidates = [
        await _earliest(Grant.starts_at, (Grant.status == "scheduled") & (Grant.starts_at <= now)),
        await _earliest(Grant.ends_at, _live() & (Grant.ends_at <= now)),
    ]
    due = [moment for moment in candidates if moment is not None]
    return min(due) if due else None


async def counters() -> dict[str, int]:
    """The worker's running totals (transitions processed), by name."""
    rows = await WorkerCounter.select(WorkerCounter.name, WorkerCounter.value)
    return {row["name"]: int(row["value"]) for row in rows}
