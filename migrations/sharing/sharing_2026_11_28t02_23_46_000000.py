from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from migrations import index_migration

ID = "2026-11-28T02:23:46:000000"
VERSION = "1.38.0"
DESCRIPTION = "composite indexes led by tenant_id"


async def forwards() -> MigrationManager:
    return index_migration(
        migration_id=ID,
        app_name="sharing",
        description=DESCRIPTION,
        statements=(
            "CREATE UNIQUE INDEX clients_tenant_code ON clients (tenant_id, short_code)",
            "CREATE UNIQUE INDEX audit_events_tenant_seq ON audit_events (tenant_id, seq)",
            "CREATE INDEX audit_events_tenant_time ON audit_events (tenant_id, occurred_at)",
        ),
    )
