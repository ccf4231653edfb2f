from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from migrations import index_migration

ID = "2026-11-28T02:48:19:000000"
VERSION = "1.38.0"
DESCRIPTION = "OAuth indexes"


async def forwards() -> MigrationManager:
    return index_migration(
        migration_id=ID,
        app_name="tenants",
        description=DESCRIPTION,
        statements=(
            "CREATE INDEX oauth_clients_tenant ON oauth_clients (tenant_id, created_at)",
            "CREATE INDEX oauth_credentials_tenant_client ON oauth_credentials (tenant_id, oauth_client_id)",
            "CREATE INDEX issued_tokens_tenant_issued ON issued_tokens (tenant_id, issued_at)",
            "CREATE INDEX issued_tokens_client ON issued_tokens (oauth_client_id, issued_at)",
            "CREATE UNIQUE INDEX client_assertions_client_jti ON client_assertions (tenant_id, oauth_client_id, jti)",
        ),
    )
