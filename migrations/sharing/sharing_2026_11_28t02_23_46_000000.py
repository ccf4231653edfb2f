from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-28T02:23:46:000000"
VERSION = "1.38.0"
DESCRIPTION = "composite indexes led by tenant_id"


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="sharing", description=DESCRIPTION)

    async def create_indexes() -> None:
        # Composite unique indexes, each led by tenant_id: Piccolo's `Unique` constraint is
        # added by ALTER TABLE, which SQLite cannot do; an index works on both databases.
        from piccolo.engine import engine_finder

        engine = engine_finder()
        for statement in (
            "CREATE UNIQUE INDEX clients_tenant_code ON clients (tenant_id, short_code)",
            "CREATE UNIQUE INDEX audit_events_tenant_seq ON audit_events (tenant_id, seq)",
            "CREATE INDEX audit_events_tenant_time ON audit_events (tenant_id, occurred_at)",
        ):
            await engine.run_ddl(statement)

    manager.add_raw(create_indexes)

    return manager
