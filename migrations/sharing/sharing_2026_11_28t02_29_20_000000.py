from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from migrations import index_migration

ID = "2026-11-28T02:29:20:000000"
VERSION = "1.38.0"
DESCRIPTION = "document indexes"


async def forwards() -> MigrationManager:
    return index_migration(
        migration_id=ID,
        app_name="sharing",
        description=DESCRIPTION,
        statements=(
            "CREATE INDEX documents_tenant_created ON documents (tenant_id, created_at, id)",
            "CREATE UNIQUE INDEX documents_tenant_source ON documents (tenant_id, source_key)",
            "CREATE UNIQUE INDEX document_revisions_tenant_doc_rev ON document_revisions (tenant_id, document_id, revision)",
            "CREATE INDEX document_revisions_tenant_kek ON document_revisions (tenant_id, kek_version)",
        ),
    )
