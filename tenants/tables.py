"""Piccolo tables of the `tenants` app: tenants, users, memberships and tenant API tokens."""

from __future__ import annotations

from piccolo.columns import (
    JSON,
    UUID,
    Boolean,
    Bytea,
    ForeignKey,
    Integer,
    OnDelete,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.table import Table

__all__ = [
    "ApiToken",
    "ClientAssertion",
    "IssuedToken",
    "Membership",
    "OAuthClient",
    "OAuthCredential",
    "SigningKey",
    "Tenant",
    "TenantKey",
    "User",
]


class Tenant(Table, tablename="tenants"):
    id = UUID(primary_key=True)
    name = Varchar(length=200)
    slug = Varchar(length=63, unique=True)
    kind = Varchar(length=8)
    time_zone = Varchar(length=64)
    created_at = Timestamptz()
    deleted_at = Timestamptz(null=True, default=None)
    # Months of audit events kept in the database; None keeps them forever. Older months may
    # be archived (exported, verified, then removed): `shiftgate audit archive`.
    audit_retention_months = Integer(null=True, default=None)


class User(Table, tablename="users"):
    id = UUID(primary_key=True)
    email = Varchar(length=254, unique=True)
    display_name = Varchar(length=200)
    password_hash = Text(secret=True)
    disabled = Boolean(default=False)
    created_at = Timestamptz()


class Membership(Table, tablename="memberships"):
    id = UUID(primary_key=True)
    tenant_id = ForeignKey(references=Tenant, on_delete=OnDelete.restrict)
    user_id = ForeignKey(references=User, on_delete=OnDelete.restrict, index=True)
    role = Varchar(length=16)
    created_at = Timestamptz()


class ApiToken(Table, tablename="api_tokens"):
    id = UUID(primary_key=True)
    tenant_id = ForeignKey(references=Tenant, on_delete=OnDelete.restrict, index=True)
    name = Varchar(length=100)
    token_hash = Varchar(length=64, unique=True, secret=True)
    hint = Varchar(length=16)
    scopes = JSON()
    created_by = UUID(null=True, default=None)
    created_at = Timestamptz()
    expires_at = Timestamptz()
    revoked_at = Timestamptz(null=True, default=None)


class TenantKey(Table, tablename="tenant_keys"):
    """One version of a tenant's key-encryption key, wrapped by the root key `root_key_id`.

    `wrapped_key` is emptied when the version is retired or the tenant is deleted: with it goes
    every data key it wrapped, and so the content (crypto-shredding).
    """

    id = UUID(primary_key=True)
    tenant_id = ForeignKey(references=Tenant, on_delete=OnDelete.restrict)
    version = Integer()
    wrapped_key = Bytea(null=True, default=None, secret=True)
    root_key_id = Varchar(length=16)
    status = Varchar(length=12)
    created_at = Timestamptz()
    retired_at = Timestamptz(null=True, default=None)


class OAuthClient(Table, tablename="oauth_clients"):
    """A partner NOC's machine client. `client_id` is its public identifier."""

    id = UUID(primary_key=True)
    tenant_id = ForeignKey(references=Tenant, on_delete=OnDelete.restrict)
    client_id = Varchar(length=64, unique=True)
    name = Varchar(length=100)
    auth_method = Varchar(length=24)
    scopes = JSON()
    networks = JSON()
    created_by = Varchar(length=254)
    created_at = Timestamptz()
    disabled_at = Timestamptz(null=True, default=None)


class OAuthCredential(Table, tablename="oauth_credentials"):
    """A client's secret (hashed) or public key set; superseded ones expire after an overlap."""

    id = UUID(primary_key=True)
    tenant_id = ForeignKey(references=Tenant, on_delete=OnDelete.restrict)
    oauth_client_id = ForeignKey(references=OAuthClient, on_delete=OnDelete.restrict)
    secret_hash = Varchar(length=64, null=True, default=None, secret=True)
    jwks = JSON(null=True, default=None)
    created_at = Timestamptz()
    expires_at = Timestamptz(null=True, default=None)


class SigningKey(Table, tablename="signing_keys"):
    """The gateway's token-signing keys, the private half sealed by the root key."""

    id = UUID(primary_key=True)
    kid = Varchar(length=64, unique=True)
    alg = Varchar(length=16)
    private_sealed = Bytea(secret=True)
    root_key_id = Varchar(length=16)
    public_jwk = JSON()
    created_at = Timestamptz()
    retired_at = Timestamptz(null=True, default=None)


class IssuedToken(Table, tablename="issued_tokens"):
    """Every access token issued: the database's word on revocation and introspection."""

    jti = Varchar(length=64, primary_key=True)
    tenant_id = ForeignKey(references=Tenant, on_delete=OnDelete.restrict)
    oauth_client_id = ForeignKey(references=OAuthClient, on_delete=OnDelete.restrict)
    grant_id = UUID(null=True, default=None)
    scope = Text()
    issued_at = Timestamptz()
    expires_at = Timestamptz()
    revoked_at = Timestamptz(null=True, default=None)


class ClientAssertion(Table, tablename="client_assertions"):
    """Seen `jti`s of client assertions (private_key_jwt), kept until they expire: no replay."""

    id = UUID(primary_key=True)
    tenant_id = ForeignKey(references=Tenant, on_delete=OnDelete.restrict)
    oauth_client_id = ForeignKey(references=OAuthClient, on_delete=OnDelete.restrict)
    jti = Varchar(length=255)
    expires_at = Timestamptz()
