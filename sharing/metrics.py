"""The figures behind `/metrics`, read from the database so that every replica reports the same
totals: grants by state, transitions processed, webhook deliveries by outcome, worker lag."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from piccolo.query.functions.aggregate import Count
from piccolo.table import Table

from sharing import expiry
from sharing.tables import Grant, OutboxEvent, WebhookDelivery

__all__ = ["Snapshot", "snapshot"]


@dataclass(frozen=True, slots=True)
class Snapshot:
    grants: dict[str, int]
    transitions: dict[str, int]
    deliveries: dict[str, int]
    outbox_waiting: int
    lag_seconds: float


async def _by(table: type[Table], column: Any) -> dict[str, int]:
    rows = await table.select(column, Count(alias="n")).group_by(column)
    return {str(row[column._meta.name]): int(row["n"]) for row in rows}


async def snapshot(now: datetime) -> Snapshot:
    oldest = await expiry.oldest_overdue(now)
    totals = await expiry.counters()
    return Snapshot(
        grants=await _by(Grant, Grant.status),
        transitions={
            transition.value: totals.get(f"grants_{transition.value}", 0)
            for transition in expiry.Transition
        },
        deliveries=await _by(WebhookDelivery, WebhookDelivery.status),
        outbox_waiting=await OutboxEvent.count().where(OutboxEvent.dispatched_at.is_null()),
        lag_seconds=0.0 if oldest is None else max(0.0, (now - oldest).total_seconds()),
    )
