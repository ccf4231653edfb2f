"""The audit log: append-only, hash-chained per tenant, written in the caller's transaction.

Each event's `hash` is SHA-256 over the canonical encoding of the event (every field but `hash`,
`prev_hash` included): JSON, keys sorted, no whitespace, UTF-8, times as RFC 3339 UTC with
microseconds. Changing any stored byte of an event, or dropping one, breaks the chain there.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from sharing.tables import AuditEvent, AuditHead
from tenants.db import write_transaction
from tenants.roles import Actor

__all__ = [
    "GENESIS_HASH",
    "AuditAction",
    "AuditAppender",
    "ChainReport",
    "EventSpec",
    "Outcome",
    "RequestMeta",
    "Severity",
    "append_events",
    "canonical_bytes",
    "event_hash",
    "record",
    "verify_chain",
]

GENESIS_HASH = "0" * 64


class AuditAction(enum.StrEnum):
    """Every audited action, named `subject:action`."""

    TENANT_CREATED = "tenant:created"
    USER_CREATED = "user:created"
    MEMBERSHIP_GRANTED = "membership:granted"
    LOGIN_SUCCEEDED = "login:succeeded"
    LOGIN_FAILED = "login:failed"
    LOGIN_THROTTLED = "login:throttled"
    LOGOUT = "login:logout"
    API_TOKEN_CREATED = "api_token:created"
    API_TOKEN_REVOKED = "api_token:revoked"
    PARTNERSHIP_INVITED = "partnership:invited"
    PARTNERSHIP_ACCEPTED = "partnership:accepted"
    PARTNERSHIP_DECLINED = "partnership:declined"
    PARTNERSHIP_SUSPENDED = "partnership:suspended"
    PARTNERSHIP_RESUMED = "partnership:resumed"
    PARTNERSHIP_ENDED = "partnership:ended"
    PARTNERSHIP_CEILING_CHANGED = "partnership:ceiling_changed"
    CLIENT_CREATED = "client:created"
    CLIENT_UPDATED = "client:updated"
    CLIENT_ARCHIVED = "client:archived"
    DOCUMENT_CREATED = "document:created"
    DOCUMENT_UPDATED = "document:updated"
    DOCUMENT_ARCHIVED = "document:archived"
    DOCUMENT_READ = "document:read"
    DOCUMENT_INTEGRITY_FAILED = "document:integrity_failed"
    DOCUMENTS_IMPORTED = "document:imported"
    KEY_CREATED = "key:created"
    KEY_ROTATED = "key:rotated"
    KEY_RETIRED = "key:retired"
    ROOT_KEY_ROTATED = "key:root_rotated"
    TENANT_DELETED = "tenant:deleted"
    OAUTH_CLIENT_REGISTERED = "oauth_client:registered"
    OAUTH_CLIENT_DISABLED = "oauth_client:disabled"
    OAUTH_CLIENT_ENABLED = "oauth_client:enabled"
    OAUTH_CLIENT_ROTATED = "oauth_client:credentials_rotated"
    TOKEN_ISSUED = "token:issued"
    TOKEN_REFUSED = "token:refused"
    TOKEN_REVOKED = "token:revoked"
    TOKEN_INTROSPECTED = "token:introspected"
    TOKEN_REJECTED = "token:rejected"
    SIGNING_KEY_ROTATED = "key:signing_rotated"
    AUDIT_KEY_ROTATED = "key:audit_rotated"
    AUDIT_EXPORTED = "audit:exported"
    AUDIT_RETENTION_CHANGED = "audit:retention_changed"
    AUDIT_ARCHIVED = "audit:archived"
    SCHEDULE_CHANGED = "schedule:changed"
    RULES_CHANGED = "rules:changed"
    HANDOFF_CREATED = "handoff:created"
    GRANT_CREATED = "grant:created"
    GRANT_ACTIVATED = "grant:activated"
    GRANT_EXPIRED = "grant:expired"
    GRANT_REVOKED = "grant:revoked"
    GRANT_COMPLETED = "grant:completed"
    GRANT_EXTENSION_REQUESTED = "grant:extension_requested"
    GRANT_EXTENDED = "grant:extended"
    GRANT_EXTENSION_DECLINED = "grant:extension_declined"
    GRANT_RATE_LIMITED = "grant:rate_limited"
    GRANT_BUNDLE_READ = "grant:bundle_read"
    PARTNER_DOCUMENT_READ = "document:partner_read"
    PARTNER_DOCUMENT_DENIED = "document:read_denied"
    BREAK_GLASS = "document:break_glass"
    NOTES_POSTED = "notes:posted"
    CREDENTIAL_ROTATED = "credential:rotated"
    WEBHOOK_CREATED = "webhook:created"
    WEBHOOK_UPDATED = "webhook:updated"
    WEBHOOK_DELETED = "webhook:deleted"
    WEBHOOK_SECRET_ROTATED = "webhook:secret_rotated"
    WEBHOOK_REDELIVERED = "webhook:redelivered"
    DOCUMENT_REVEALED = "document:revealed"
    PASSWORD_CHANGED = "user:password_changed"


class Outcome(enum.StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    DENIED = "denied"


class Severity(enum.StrEnum):
    INFO = "info"
    WARNING = "warning"
    HIGH = "high"


@dataclass(frozen=True, slots=True)
class RequestMeta:
    """Facts of the request behind an event; empty for the CLI and the worker."""

    request_id: str | None = None
    source_address: str | None = None


_NO_REQUEST = RequestMeta()


def _utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_bytes(event: Mapping[str, Any]) -> bytes:
    """The canonical encoding that the hash covers: see the module docstring."""
    fields = {key: value for key, value in event.items() if key != "hash"}
    for key in ("id", "tenant_id"):
        fields[key] = str(fields[key])
    fields["occurred_at"] = _utc_text(fields["occurred_at"])
    return msgspec.json.encode(fields, order="sorted")


def event_hash(event: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_bytes(event)).hexdigest()


@dataclass(frozen=True, slots=True)
class EventSpec:
    """One event to append, before the chain gives it a sequence number and a hash."""

    tenant_id: uuid.UUID
    action: AuditAction
    actor: Actor
    outcome: Outcome = Outcome.SUCCESS
    target_type: str | None = None
    target_id: uuid.UUID | str | None = None
    severity: Severity = Severity.INFO
    reason: str | None = None
    request: RequestMeta = _NO_REQUEST
    context: Mapping[str, str] | None = None
    at: datetime | None = None


async def record(
    tenant_id: uuid.UUID,
    action: AuditAction,
    *,
    actor: Actor,
    outcome: Outcome = Outcome.SUCCESS,
    target_type: str | None = None,
    target_id: uuid.UUID | str | None = None,
    severity: Severity = Severity.INFO,
    reason: str | None = None,
    request: RequestMeta = _NO_REQUEST,
    context: Mapping[str, str] | None = None,
    at: datetime | None = None,
) -> str:
    """Append one event to `tenant_id`'s chain inside the caller's transaction; return its hash.

    Raises whatever the database raises: the caller's transaction then rolls back, so an action
    whose event cannot be written does not happen (fail closed).
    """
    spec = EventSpec(
        tenant_id,
        action,
        actor,
        outcome,
        target_type,
        target_id,
        severity,
        reason,
        request,
        context,
        at,
    )
    async with write_transaction():
        return await _append(tenant_id, [spec])


async def _append(tenant_id: uuid.UUID, specs: list[EventSpec]) -> str:
    """Chain `specs` onto the tenant's chain, in order, in the current transaction."""
    last, prev_hash = await _advance_head(tenant_id, len(specs))
    rows: list[tuple[Any, ...]] = []
    for seq, spec in enumerate(specs, start=last - len(specs) + 1):
        event: dict[str, Any] = {
            "id": uuid.uuid4(),
            "tenant_id": tenant_id,
            "seq": seq,
            "occurred_at": (spec.at or datetime.now(UTC)).astimezone(UTC),
            "actor_type": spec.actor.kind.value,
            "actor_id": str(spec.actor.id) if spec.actor.id is not None else None,
            "actor_label": spec.actor.label,
            "action": spec.action.value,
            "target_type": spec.target_type,
            "target_id": str(spec.target_id) if spec.target_id is not None else None,
            "outcome": spec.outcome.value,
            "severity": spec.severity.value,
            "reason": spec.reason,
            "request_id": spec.request.request_id,
            "source_address": spec.request.source_address,
            "context": dict(spec.context or {}),
            "prev_hash": prev_hash,
        }
        event["hash"] = prev_hash = event_hash(event)
        event["context"] = msgspec.json.encode(event["context"]).decode()
        rows.append(tuple(event[column] for column in _COLUMNS))
    # Plain SQL: building Piccolo's insert costs more than the insert itself on the hot path.
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        chunk = rows[start : start + _ROWS_PER_INSERT]
        values = ", ".join([_ROW_PLACEHOLDERS] * len(chunk))
        await AuditEvent.raw(_INSERT + values, *(value for row in chunk for value in row))
    await AuditHead.update({AuditHead.hash: prev_hash}).where(AuditHead.tenant_id == tenant_id)
    return prev_hash


_INSERT = (
    "INSERT INTO audit_events (id, tenant_id, seq, occurred_at, actor_type, actor_id,"
    " actor_label, action, target_type, target_id, outcome, severity, reason, request_id,"
    " source_address, context, prev_hash, hash) VALUES "
)
_COLUMNS = tuple(_INSERT.split("(", 1)[1].split(")", 1)[0].split(", "))
_ROW_PLACEHOLDERS = "(" + ", ".join(["{}"] * len(_COLUMNS)) + ")"
_ROWS_PER_INSERT = 1000  # 18,000 parameters: within SQLite's and PostgreSQL's limits


async def append_events(specs: list[EventSpec]) -> None:
    """Append events of several chains in one transaction, chains locked in one fixed order."""
    by_tenant: dict[uuid.UUID, list[EventSpec]] = {}
    for spec in specs:
        by_tenant.setdefault(spec.tenant_id, []).append(spec)
    async with write_transaction():
        for tenant_id in sorted(by_tenant):
            await _append(tenant_id, by_tenant[tenant_id])


async def _advance_head(tenant_id: uuid.UUID, count: int = 1) -> tuple[int, str]:
    """Take the next `count` sequence numbers; the row lock serialises appends to one chain.

    Returns the last number taken and the chain's hash before them.
    """
    for _ in range(2):
        rows = (
            await AuditHead.update({AuditHead.seq: AuditHead.seq + count})
            .where(AuditHead.tenant_id == tenant_id)
            .returning(AuditHead.seq, AuditHead.hash)
        )
        if rows:
            return int(rows[0]["seq"]), str(rows[0]["hash"])
        await AuditHead.insert(
            AuditHead(tenant_id=tenant_id, seq=0, hash=GENESIS_HASH)
        ).on_conflict(action="DO NOTHING")
    raise RuntimeError("the audit chain head could not be created")


class AuditAppender:
    """Group commit for the hot path: events of concurrent requests share one transaction.

    `append` returns once its events are committed (or raises what the commit raised), so a
    caller that serves only after `append` never serves what is not on the record.
    """

    def __init__(self, max_batch: int = 256) -> None:
        self._max_batch = max_batch
        self._loops: dict[int, _LoopQueue] = {}

    async def append(self, specs: list[EventSpec]) -> None:
        loop = asyncio.get_running_loop()
        queue = self._loops.get(id(loop))
        if queue is None or queue.closed:
            queue = self._loops[id(loop)] = _LoopQueue(self._max_batch)
        await queue.submit(specs)

    async def close(self) -> None:
        queue = self._loops.pop(id(asyncio.get_running_loop()), None)
        if queue is not None:
            await queue.close()


class _LoopQueue:
    def __init__(self, max_batch: int) -> None:
        self._max_batch = max_batch
        self._pending: list[tuple[list[EventSpec], asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())
        self.closed = False

    async def submit(self, specs: list[EventSpec]) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((specs, future))
        self._wake.set()
        await future

    async def close(self) -> None:
        self.closed = True
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch, self._pending = (
                    self._pending[: self._max_batch],
                    self._pending[self._max_batch :],
                )
                try:
                    await append_events([spec for specs, _ in batch for spec in specs])
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                else:
                    for _, future in batch:
                        if not future.done():
                            future.set_result(None)


@dataclass(frozen=True, slots=True)
class ChainReport:
    """The result of walking a chain: how many events verified, and the first break if any."""

    verified: int
    broken_at: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.broken_at is None


async def _events(tenant_id: uuid.UUID, batch: int = 1000) -> AsyncIterator[dict[str, Any]]:
    last = 0
    while True:
        rows = (
            await AuditEvent.select()
            .where((AuditEvent.tenant_id == tenant_id) & (AuditEvent.seq > last))
            .order_by(AuditEvent.seq)
            .limit(batch)
            .output(load_json=True)
        )
        for row in rows:
            yield row
        if len(rows) < batch:
            return
        last = rows[-1]["seq"]


async def verify_chain(tenant_id: uuid.UUID) -> ChainReport:
    """Recompute every hash of the tenant's chain in the database; report the first broken link.

    A chain whose oldest months were archived starts later: its first event must then link to
    a signed checkpoint of the last archived one (see `checkpoints.archive_anchor`).
    """
    expected_prev, expected_seq, verified = GENESIS_HASH, 1, 0
    async for row in _events(tenant_id):
        seq = row["seq"]
        if verified == 0 and seq > 1:
            from sharing.checkpoints import archive_anchor

            anchor = await archive_anchor(tenant_id, seq - 1)
            if anchor is None:
                return ChainReport(0, 1, "events before this one are missing (no signed cut)")
            expected_prev, expected_seq = anchor, seq
        if seq != expected_seq:
            return ChainReport(verified, expected_seq, f"event {expected_seq} is missing")
        if row["prev_hash"] != expected_prev:
            return ChainReport(verified, seq, "its previous-hash does not match the event before")
        if event_hash(row) != row["hash"]:
            return ChainReport(verified, seq, "its contents do not match its hash (altered)")
        expected_prev, expected_seq, verified = row["hash"], seq + 1, verified + 1
    head = await AuditHead.select().where(AuditHead.tenant_id == tenant_id).first()
    if head is not None and (head["seq"] != expected_seq - 1 or head["hash"] != expected_prev):
        return ChainReport(verified, expected_seq, "events from this one on are missing (cut)")
    return ChainReport(verified)
