from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from migrations import index_migration

ID = "2026-11-28T02:28:28:000000"
VERSION = "1.38.0"
DESCRIPTION = "key ring indexes"


async def forwards() -> MigrationManager:
    return index_migration(
        migration_id=ID,
        app_name="tenants",
        description=DESCRIPTION,
        statements=(
            "CREATE UNIQUE INDEX tenant_keys_tenant_version ON tenant_keys (tenant_id, version)",
        ),
    )
