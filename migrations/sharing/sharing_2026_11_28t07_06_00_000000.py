"""An index for the auditors' commonest question, "what happened under this grant": the grant id
inside each event's context, led by tenant_id. The expression must match the search's SQL
exactly, and differs by engine. (Each index costs every audit write, on the partner read path
too: the other filters go without one for now.)"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder
from piccolo.engine.postgres import PostgresEngine

ID = "2026-11-28T07:06:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "audit events by grant"


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="sharing", description=DESCRIPTION)

    async def create_index() -> None:
        engine = engine_finder()
        assert engine is not None
        member = (
            "(context->>'grant_id')"
            if isinstance(engine, PostgresEngine)
            else "json_extract(context, '$.grant_id')"
        )
        await engine.run_ddl(
            f"CREATE INDEX audit_events_tenant_grant ON audit_events (tenant_id, {member}, seq)"
        )

    manager.add_raw(create_index)
    return manager
