"""Where audit events live on PostgreSQL: monthly partitions of an append-only table.

The table refuses UPDATE, DELETE and TRUNCATE (a trigger, see the migration); `archiving()` is
the one way to delete rows, used by the archive command after it has exported them. The worker
keeps partitions ready for this month and the next two. SQLite keeps one plain table: these are
no-ops there.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from piccolo.engine.postgres import PostgresEngine

from sharing.audit import AuditAction, RequestMeta, Severity, record
from sharing.tables import AuditEvent
from tenants.db import write_transaction
from tenants.errors import Invalid
from tenants.roles import Actor, Permission
from tenants.tables import Tenant

__all__ = [
    "MAX_RETENTION_MONTHS",
    "archiving",
    "ensure_partitions",
    "get_retention",
    "partition_name",
    "set_retention",
]

MAX_RETENTION_MONTHS = 1200

_log = logging.getLogger("shiftgate.audit")
_NO_REQUEST = RequestMeta()
_ready: set[str] = set()  # partitions this process has seen, so a pass costs nothing


def _postgres() -> PostgresEngine | None:
    engine = AuditEvent._meta.db
    return engine if isinstance(engine, PostgresEngine) else None


def partition_name(year: int, month: int) -> str:
    return f"audit_events_y{year:04d}m{month:02d}"


def _following(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


@contextlib.asynccontextmanager
async def archiving() -> AsyncIterator[None]:
    """A write transaction in which audit rows may be deleted (PostgreSQL's trigger lets them
    go only here). For archiving exported months; nothing else deletes audit events."""
    async with write_transaction():
        engine = _postgres()
        if engine is not None:
            await engine.run_ddl("SELECT set_config('shiftgate.audit_archiving', 'on', true)")
        yield


async def ensure_partitions(now: datetime, *, months_ahead: int = 2) -> list[str]:
    """Create the partitions of this month and the next `months_ahead`; the names created.

    A month whose rows already sit in the default partition (events dated far ahead, say) is
    left there: still correct, only not archivable by detaching.
    """
    engine = _postgres()
    if engine is None:
        return []
    created = []
    year, month = now.year, now.month
    for _ in range(months_ahead + 1):
        name = partition_name(year, month)
        upper = _following(year, month)
        year_month = f"{year:04d}-{month:02d}-01 00:00:00+00"
        if name not in _ready:
            exists = await engine.run_ddl(f"SELECT to_regclass('{name}') IS NOT NULL AS found")
            if not exists[0]["found"]:
                bound = f"{upper[0]:04d}-{upper[1]:02d}-01 00:00:00+00"
                crowded = await AuditEvent.raw(
                    "SELECT EXISTS (SELECT 1 FROM audit_events_default"
                    " WHERE occurred_at >= {} AND occurred_at < {}) AS found",
                    datetime(year, month, 1, tzinfo=UTC),
                    datetime(*upper, 1, tzinfo=UTC),
                )
                if crowded[0]["found"]:
                    _log.warning("audit partition %s not created: its month is in use", name)
                else:
                    try:
                        async with write_transaction():
                            await engine.run_ddl(
                                f"CREATE TABLE {name} PARTITION OF audit_events"
                                f" FOR VALUES FROM ('{year_month}') TO ('{bound}')"
                            )
                            await engine.run_ddl(
                                f"CREATE UNIQUE INDEX {name}_tenant_seq ON {name} (tenant_id, seq)"
                            )
                    except Exception as exc:  # another worker made it meanwhile
                        _log.info("audit partition %s: %s", name, exc)
                    else:
                        created.append(name)
            _ready.add(name)
        year, month = upper
    return created


async def get_retention(actor: Actor) -> int | None:
    """Months of audit events the tenant keeps in the database; None: forever (the default)."""
    tenant_id = actor.require(Permission.AUDIT_READ)
    row = await Tenant.select(Tenant.audit_retention_months).where(Tenant.id == tenant_id).first()
    return None if row is None else row["audit_retention_months"]


async def set_retention(
    actor: Actor, months: int | None, *, request: RequestMeta = _NO_REQUEST
) -> int | None:
    """Keep `months` months of events (1 to 1200), or None for ever. Older months may then be
    archived; nothing is removed by this call."""
    tenant_id = actor.require(Permission.AUDIT_MANAGE)
    if months is not None and not 1 <= months <= MAX_RETENTION_MONTHS:
        raise Invalid(f"months must be 1 to {MAX_RETENTION_MONTHS}, or null", code="months")
    async with write_transaction():
        await Tenant.update({Tenant.audit_retention_months: months}).where(Tenant.id == tenant_id)
        await record(
            tenant_id,
            AuditAction.AUDIT_RETENTION_CHANGED,
            actor=actor,
            target_type="tenant",
            target_id=tenant_id,
            severity=Severity.WARNING,
            request=request,
            context={"months": "forever" if months is None else str(months)},
        )
    return months
