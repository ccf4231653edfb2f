"""Piccolo app registration for `tenants`; its migrations live in the top-level `migrations/`."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

from tenants.tables import (
    ApiToken,
    ClientAssertion,
    IssuedToken,
    Membership,
    OAuthClient,
    OAuthCredential,
    SigningKey,
    Tenant,
    TenantKey,
    User,
)

__all__ = ["APP_CONFIG"]

APP_CONFIG = AppConfig(
    app_name="tenants",
    migrations_folder_path=str(Path(__file__).parent.parent / "migrations" / "tenants"),
    table_classes=[
        Tenant,
        User,
        Membership,
        ApiToken,
        TenantKey,
        OAuthClient,
        OAuthCredential,
        SigningKey,
        IssuedToken,
        ClientAssertion,
    ],
    migration_dependencies=[],
    commands=[],
)
