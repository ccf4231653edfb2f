"""Notifications for a tenant, written to the outbox in the caller's transaction.

Event types are the webhook event names (`grant.created`, `document.break_glass`, ...); the
payload carries ids and times, never content.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

from sharing.tables import OutboxEvent

__all__ = ["EventType", "emit", "emit_many"]


class EventType(enum.StrEnum):
    GRANT_CREATED = "grant.created"
    GRANT_ACTIVATED = "grant.activated"
    GRANT_EXPIRING = "grant.expiring"
    GRANT_EXPIRED = "grant.expired"
    GRANT_REVOKED = "grant.revoked"
    GRANT_EXTENSION_REQUESTED = "grant.extension_requested"
    GRANT_EXTENDED = "grant.extended"
    DOCUMENT_BREAK_GLASS = "document.break_glass"
    GRANT_RATE_LIMITED = "grant.rate_limited"
    NOTES_POSTED = "notes.posted"


async def emit(
    tenant_ids: tuple[uuid.UUID, ...], event: EventType, payload: Mapping[str, str]
) -> None:
    """One outbox row per tenant told, sharing one event id so receivers can de-duplicate."""
    await emit_many([(tenant_ids, event, payload)])


async def emit_many(
    events: list[tuple[tuple[uuid.UUID, ...], EventType, Mapping[str, str]]],
) -> None:
    """Several events in one insert (the worker's batches); each as `emit` writes it."""
    now = datetime.now(UTC)
    rows = []
    for tenant_ids, event, payload in events:
        event_id = str(uuid.uuid4())
        rows += [
            OutboxEvent(
                id=uuid.uuid4(),
                tenant_id=tenant_id,
                event_type=event.value,
                payload={"event_id": event_id, **payload},
                created_at=now,
            )
            for tenant_id in tenant_ids
        ]
    if rows:
        await OutboxEvent.insert(*rows)
