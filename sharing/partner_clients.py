"""Audited management of a NOC's OAuth clients: register, rotate credentials, disable, enable."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sharing.audit import AuditAction, RequestMeta, Severity, record
from tenants import oauth_clients
from tenants.db import write_transaction
from tenants.errors import Forbidden, Invalid
from tenants.oauth_clients import AuthMethod, OAuthClientView
from tenants.roles import Actor, ActorKind, Permission

__all__ = [
    "MAX_OVERLAP_HOURS",
    "list_clients",
    "register_client",
    "rotate_credentials",
    "set_client_disabled",
]

MAX_OVERLAP_HOURS = 168
_NO_REQUEST = RequestMeta()


def _noc_admin(actor: Actor) -> uuid.UUID:
    tenant_id = actor.require(Permission.MEMBER_MANAGE)
    if actor.tenant_kind is not None and not actor.tenant_kind.is_noc:
        raise Forbidden("OAuth clients belong to partner NOC tenants", code="not_noc")
    if actor.kind is ActorKind.API_TOKEN:
        raise Forbidden("OAuth clients are managed by a signed-in admin", code="user_required")
    return tenant_id


async def list_clients(actor: Actor) -> list[OAuthClientView]:
    return await oauth_clients.list_clients(_noc_admin(actor))


async def register_client(
    actor: Actor,
    *,
    name: str,
    auth_method: AuthMethod,
    scopes: Iterable[str],
    networks: Iterable[str] = (),
    jwks: dict[str, Any] | None = None,
    request: RequestMeta = _NO_REQUEST,
) -> tuple[OAuthClientView, str | None]:
    """A new client; for client_secret_basic also its secret, to show once."""
    tenant_id = _noc_admin(actor)
    async with write_transaction():
        view, secret = await oauth_clients.insert_client(
            tenant_id=tenant_id,
            name=name,
            auth_method=auth_method,
            scopes=scopes,
            networks=networks,
            jwks=jwks,
            created_by=actor.label,
            now=datetime.now(UTC),
        )
        await record(
            tenant_id,
            AuditAction.OAUTH_CLIENT_REGISTERED,
            actor=actor,
            target_type="oauth_client",
            target_id=view.id,
            request=request,
            context={
                "client_id": view.client_id,
                "auth_method": view.auth_method.value,
                "scopes": " ".join(view.scopes),
            },
        )
    return view, secret


async def rotate_credentials(
    actor: Actor,
    client_pk: uuid.UUID,
    *,
    jwks: dict[str, Any] | None = None,
    overlap_hours: int = 24,
    request: RequestMeta = _NO_REQUEST,
) -> tuple[OAuthClientView, str | None]:
    """A new secret or key set; the old ones keep working for `overlap_hours` (0: not at all)."""
    tenant_id = _noc_admin(actor)
    if not 0 <= overlap_hours <= MAX_OVERLAP_HOURS:
        raise Invalid(f"overlap_hours is 0 to {MAX_OVERLAP_HOURS}", code="overlap_hours")
    async with write_transaction():
        current = await oauth_clients.get_client(tenant_id, client_pk)
        if current.auth_method is AuthMethod.PRIVATE_KEY_JWT and jwks is None:
            raise Invalid("a private_key_jwt client rotates to new public keys (jwks)", code="jwks")
        if current.auth_method is AuthMethod.CLIENT_SECRET_BASIC and jwks is not None:
            raise Invalid("a client_secret_basic client gets a generated secret", code="jwks")
        secret = await oauth_clients.add_credential(
            tenant_id,
            client_pk,
            current.auth_method,
            jwks,
            now=datetime.now(UTC),
            overlap=timedelta(hours=overlap_hours),
        )
        await record(
            tenant_id,
            AuditAction.OAUTH_CLIENT_ROTATED,
            actor=actor,
            target_type="oauth_client",
            target_id=client_pk,
            severity=Severity.WARNING,
            request=request,
            context={"overlap_hours": str(overlap_hours)},
        )
    return await oauth_clients.get_client(tenant_id, client_pk), secret


async def set_client_disabled(
    actor: Actor, client_pk: uuid.UUID, disabled: bool, *, request: RequestMeta = _NO_REQUEST
) -> OAuthClientView:
    """A disabled client gets no token, and its live tokens stop working at once."""
    tenant_id = _noc_admin(actor)
    async with write_transaction():
        view = await oauth_clients.set_disabled(tenant_id, client_pk, disabled, datetime.now(UTC))
        await record(
            tenant_id,
            AuditAction.OAUTH_CLIENT_DISABLED if disabled else AuditAction.OAUTH_CLIENT_ENABLED,
            actor=actor,
            target_type="oauth_client",
            target_id=client_pk,
            severity=Severity.WARNING if disabled else Severity.INFO,
            request=request,
        )
    return view
