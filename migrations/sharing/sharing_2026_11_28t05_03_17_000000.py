from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from migrations import index_migration

ID = "2026-11-28T05:03:17:000000"
VERSION = "1.38.0"
DESCRIPTION = "worker and webhook indexes"


async def forwards() -> MigrationManager:
    return index_migration(
        migration_id=ID,
        app_name="sharing",
        description=DESCRIPTION,
        statements=(
            # What the worker looks for: each index holds only the rows still to be done.
            "CREATE INDEX grants_due_start ON grants (starts_at) WHERE status = 'scheduled'",
            "CREATE INDEX grants_due_end ON grants (ends_at)"
            " WHERE status IN ('scheduled', 'active')",
            "CREATE INDEX grants_due_warning ON grants (warn_at)"
            " WHERE warned_at IS NULL AND status IN ('scheduled', 'active')",
            "CREATE INDEX outbox_events_undispatched ON outbox_events (created_at)"
            " WHERE dispatched_at IS NULL",
            "CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)"
            " WHERE status = 'pending'",
            "CREATE UNIQUE INDEX webhook_deliveries_once"
            " ON webhook_deliveries (endpoint_id, outbox_event_id)",
            "CREATE INDEX webhook_deliveries_tenant_endpoint"
            " ON webhook_deliveries (tenant_id, endpoint_id, created_at)",
            "CREATE INDEX webhook_attempts_tenant_delivery"
            " ON webhook_attempts (tenant_id, delivery_id, attempted_at)",
            "CREATE INDEX webhook_endpoints_tenant ON webhook_endpoints (tenant_id, status)",
        ),
    )
