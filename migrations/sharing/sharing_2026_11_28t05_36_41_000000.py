from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from migrations import index_migration

ID = "2026-11-28T05:36:41:000000"
VERSION = "1.38.0"
DESCRIPTION = "audit checkpoint and signing key indexes"


async def forwards() -> MigrationManager:
    return index_migration(
        migration_id=ID,
        app_name="sharing",
        description=DESCRIPTION,
        statements=(
            "CREATE UNIQUE INDEX audit_checkpoints_tenant_seq ON audit_checkpoints (tenant_id, seq)",
            "CREATE INDEX audit_signing_keys_tenant ON audit_signing_keys (tenant_id, created_at)",
        ),
    )
