"""PostgreSQL only: the audit table becomes append-only and partitioned by month.

`audit_events` is rebuilt as a table partitioned by `occurred_at` (one partition a month, plus a
default one for anything outside them), so that an old month can be archived and detached. A
trigger refuses UPDATE, DELETE and TRUNCATE; only the archive command may delete rows, inside a
transaction that sets `shiftgate.audit_archiving`. (A partitioned table cannot have a unique
index without the partition key: each partition has its own unique (tenant_id, seq) index, and
the head row's lock keeps sequence numbers increasing across months.)
SQLite keeps the plain table.
"""

from datetime import UTC, datetime

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder
from piccolo.engine.postgres import PostgresEngine

ID = "2026-11-28T05:52:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "append-only, monthly partitioned audit table on PostgreSQL"

_TRIGGER = """
CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('shiftgate.audit_archiving', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""


def _months(first: datetime, last: datetime) -> list[tuple[int, int]]:
    months = []
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month):
        months.append((year, month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def _next(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="sharing", description=DESCRIPTION)

    async def partition() -> None:
        engine = engine_finder()
        assert engine is not None
        if not isinstance(engine, PostgresEngine):
            return
        now = datetime.now(UTC)
        span = await engine.run_ddl(
            "SELECT min(occurred_at) AS first, max(occurred_at) AS last FROM audit_events"
        )
        first = span[0]["first"] or now
        last = max(span[0]["last"] or now, now)
        end_year, end_month = _next(*_next(last.year, last.month))  # two months ahead
        months = _months(first, datetime(end_year, end_month, 1, tzinfo=UTC))
        statements = [
            "ALTER TABLE audit_events RENAME TO audit_events_unpartitioned",
            "DROP INDEX IF EXISTS audit_events_tenant_seq",
            "DROP INDEX IF EXISTS audit_events_tenant_time",
            "CREATE TABLE audit_events (LIKE audit_events_unpartitioned INCLUDING DEFAULTS)"
            " PARTITION BY RANGE (occurred_at)",
            "ALTER TABLE audit_events ADD PRIMARY KEY (id, occurred_at)",
            "CREATE TABLE audit_events_default PARTITION OF audit_events DEFAULT",
            "CREATE UNIQUE INDEX audit_events_default_tenant_seq"
            " ON audit_events_default (tenant_id, seq)",
        ]
        for year, month in months:
            upper = _next(year, month)
            name = f"audit_events_y{year:04d}m{month:02d}"
            statements += [
                f"CREATE TABLE {name} PARTITION OF audit_events"
                f" FOR VALUES FROM ('{year:04d}-{month:02d}-01 00:00:00+00')"
                f" TO ('{upper[0]:04d}-{upper[1]:02d}-01 00:00:00+00')",
                f"CREATE UNIQUE INDEX {name}_tenant_seq ON {name} (tenant_id, seq)",
            ]
        statements += [
            "INSERT INTO audit_events SELECT * FROM audit_events_unpartitioned",
            "DROP TABLE audit_events_unpartitioned",
            "CREATE INDEX audit_events_tenant_seq ON audit_events (tenant_id, seq)",
            "CREATE INDEX audit_events_tenant_time ON audit_events (tenant_id, occurred_at)",
            _TRIGGER,
            "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events"
            " FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()",
            "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events"
            " FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()",
        ]
        async with engine.transaction():
            for statement in statements:
                await engine.run_ddl(statement)

    manager.add_raw(partition)
    return manager
