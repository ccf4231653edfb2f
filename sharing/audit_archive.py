"""Archiving a month of a tenant's audit log: export it, verify the file, then remove it.

Only months older than the tenant's retention can go, oldest first. The cut is signed first (a
checkpoint at the last archived event), so the chain that stays verifies from there on
(`verify_chain` anchors its first event to that checkpoint) and the archive file verifies on
its own. On PostgreSQL a month partition left empty by every tenant is detached and dropped.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from piccolo.engine.postgres import PostgresEngine

from sharing.audit import AuditAction, Severity, record
from sharing.audit_export import ExportPlan, export_chunks, verify_export
from sharing.audit_storage import archiving, partition_name
from sharing.checkpoints import public_keys, sign_checkpoint_at
from sharing.tables import AuditEvent
from tenants.errors import Conflict, Invalid
from tenants.keyring import KeyRing
from tenants.roles import Actor
from tenants.tables import Tenant

__all__ = ["ArchiveReport", "archive_month"]

_log = logging.getLogger("shiftgate.audit")


@dataclass(frozen=True, slots=True)
class ArchiveReport:
    month: str
    from_seq: int
    to_seq: int
    events: int
    sha256: str
    partition_dropped: bool


def _month_bounds(month: date) -> tuple[datetime, datetime]:
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    following = (month.year + 1, 1) if month.month == 12 else (month.year, month.month + 1)
    return start, datetime(*following, 1, tzinfo=UTC)


def _months_between(earlier: datetime, later: datetime) -> int:
    return (later.year - earlier.year) * 12 + later.month - earlier.month


async def _seq(tenant_id: uuid.UUID, where: object, *, last: bool) -> int | None:
    row = (
        await AuditEvent.select(AuditEvent.seq)
        .where((AuditEvent.tenant_id == tenant_id) & where)  # type: ignore[operator]
        .order_by(AuditEvent.seq, ascending=not last)
        .first()
    )
    return None if row is None else int(row["seq"])


async def archive_month(
    keyring: KeyRing,
    tenant_id: uuid.UUID,
    month: date,
    out: Path,
    *,
    actor: Actor,
    now: datetime,
) -> ArchiveReport:
    """Archive the tenant's events up to the end of `month` to `out` (refused unless the
    retention lets that month go); they leave the database only once the written file has
    verified. The archive's own event then continues the chain from the signed cut."""
    start, end = _month_bounds(month)
    label = f"{month.year:04d}-{month.month:02d}"
    tenant = (
        await Tenant.select(Tenant.audit_retention_months).where(Tenant.id == tenant_id).first()
    )
    months = None if tenant is None else tenant["audit_retention_months"]
    if months is None:
        raise Conflict(
            "this tenant keeps its audit log forever: set a retention first", code="retention"
        )
    if _months_between(end, now) < months:
        raise Conflict(
            f"the retention of {months} months keeps {label} in the database for now",
            code="retention",
        )
    first = await _seq(tenant_id, AuditEvent.seq > 0, last=False)
    last = await _seq(tenant_id, AuditEvent.occurred_at < end, last=True)
    if first is None or last is None or last < first:
        raise Invalid(f"no events of {label} or earlier are left to archive", code="month")

    await sign_checkpoint_at(keyring, tenant_id, last, now)
    plan = ExportPlan(tenant_id, first, last, start, end, now)
    digest = hashlib.sha256()
    with out.open("wb") as file:
        async for chunk in export_chunks(plan):
            digest.update(chunk)
            file.write(chunk)
    trusted = [
        base64.urlsafe_b64decode(key.public_key + "==") for key in await public_keys(tenant_id)
    ]
    with out.open("rb") as file:
        report = verify_export(file, trusted_keys=trusted)
    if not report.ok or report.events_verified != plan.events:
        raise Conflict(f"the archive file did not verify ({report}); nothing was removed")

    async with archiving():
        await AuditEvent.raw(
            "DELETE FROM audit_events WHERE tenant_id = {} AND seq >= {} AND seq <= {}",
            tenant_id,
            first,
            last,
        )
        await record(
            tenant_id,
            AuditAction.AUDIT_ARCHIVED,
            actor=actor,
            target_type="audit_month",
            target_id=label,
            severity=Severity.WARNING,
            at=now,
            context={
                "month": label,
                "from_seq": str(first),
                "to_seq": str(last),
                "events": str(plan.events),
                "sha256": digest.hexdigest(),
            },
        )
    try:
        dropped = await _drop_if_empty(month)
    except Exception as exc:  # the archive is done; a partition left in place is harmless
        _log.warning("audit partition of %s kept: %s", label, exc)
        dropped = False
    return ArchiveReport(
        month=label,
        from_seq=first,
        to_seq=last,
        events=plan.events,
        sha256=digest.hexdigest(),
        partition_dropped=dropped,
    )


async def _drop_if_empty(month: date) -> bool:
    """Detach and drop the month's partition once no tenant has an event left in it."""
    engine = AuditEvent._meta.db
    if not isinstance(engine, PostgresEngine):
        return False
    name = partition_name(month.year, month.month)
    found = await engine.run_ddl(f"SELECT to_regclass('{name}') IS NOT NULL AS found")
    if not found[0]["found"]:
        return False
    start, end = _month_bounds(month)
    rows = await AuditEvent.raw(
        "SELECT EXISTS (SELECT 1 FROM audit_events WHERE occurred_at >= {} AND occurred_at < {})"
        " AS used",
        start,
        end,
    )
    if rows[0]["used"]:
        return False
    async with archiving():
        await engine.run_ddl(f"ALTER TABLE audit_events DETACH PARTITION {name}")
        await engine.run_ddl(f"DROP TABLE {name}")
    return True
