from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from migrations import index_migration

ID = "2026-11-28T02:23:44:000000"
VERSION = "1.38.0"
DESCRIPTION = "composite indexes led by tenant_id"


async def forwards() -> MigrationManager:
    return index_migration(
        migration_id=ID,
        app_name="tenants",
        description=DESCRIPTION,
        statements=(
            "CREATE UNIQUE INDEX memberships_tenant_user ON memberships (tenant_id, user_id)",
            "CREATE INDEX api_tokens_tenant_created ON api_tokens (tenant_id, created_at)",
        ),
    )
