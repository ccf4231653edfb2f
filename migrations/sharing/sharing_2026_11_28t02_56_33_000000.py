from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from migrations import index_migration

ID = "2026-11-28T02:56:33:000000"
VERSION = "1.38.0"
DESCRIPTION = "handoff and grant indexes"


async def forwards() -> MigrationManager:
    return index_migration(
        migration_id=ID,
        app_name="sharing",
        description=DESCRIPTION,
        statements=(
            "CREATE INDEX handoffs_tenant_created ON handoffs (tenant_id, created_at)",
            "CREATE INDEX grants_tenant_status ON grants (tenant_id, status, ends_at)",
            "CREATE INDEX grants_noc_status ON grants (noc_tenant_id, status, ends_at)",
            "CREATE INDEX grant_extensions_tenant_grant ON grant_extensions (tenant_id, grant_id)",
            "CREATE INDEX handoff_notes_tenant_grant ON handoff_notes (tenant_id, grant_id, created_at)",
            "CREATE INDEX rotation_list_tenant ON rotation_list (tenant_id, rotated_at, revealed_at)",
            "CREATE INDEX issued_tokens_grant ON issued_tokens (grant_id)",
            "CREATE INDEX outbox_events_tenant_created ON outbox_events (tenant_id, created_at)",
        ),
    )
