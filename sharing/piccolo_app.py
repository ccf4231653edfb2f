"""Piccolo app registration for `sharing`; its migrations live in the top-level `migrations/`."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

from sharing.tables import (
    AuditCheckpoint,
    AuditEvent,
    AuditHead,
    AuditSigningKey,
    Client,
    Document,
    DocumentRevision,
    Grant,
    GrantExtension,
    Handoff,
    HandoffNote,
    MspRuleSet,
    OutboxEvent,
    Partnership,
    RotationItem,
    Schedule,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WorkerCounter,
)

__all__ = ["APP_CONFIG"]

APP_CONFIG = AppConfig(
    app_name="sharing",
    migrations_folder_path=str(Path(__file__).parent.parent / "migrations" / "sharing"),
    table_classes=[
        Client,
        Document,
        DocumentRevision,
        Partnership,
        AuditEvent,
        AuditHead,
        AuditSigningKey,
        AuditCheckpoint,
        Schedule,
        MspRuleSet,
        Handoff,
        Grant,
        GrantExtension,
        HandoffNote,
        RotationItem,
        OutboxEvent,
        WebhookEndpoint,
        WebhookDelivery,
        WebhookAttempt,
        WorkerCounter,
    ],
    migration_dependencies=["tenants.piccolo_app"],
    commands=[],
)
