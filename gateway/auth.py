"""Who is calling: a tenant API token (`Authorization: Bearer sgt_...`) or a portal session.

A request that carries an `Authorization` header is judged by that header alone, never by a
cookie; that is also why such requests need no CSRF token.
"""

from __future__ import annotations

import ipaddress
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException
from litestar.middleware.csrf import CSRFMiddleware
from litestar.middleware.session.server_side import (
    ServerSideSessionBackend,
    ServerSideSessionConfig,
)
from litestar.types import Empty, Message, Receive, Scope, ScopeSession, Send

from gateway.settings import Settings
from sharing.audit import RequestMeta
from tenants import service
from tenants.roles import Actor

__all__ = [
    "SESSION_COOKIE",
    "SESSION_STORE",
    "SESSION_TENANT",
    "BearerExemptCSRFMiddleware",
    "RotatingSessionConfig",
    "api_actor",
    "bearer_token",
    "client_address",
    "remember_sign_in",
    "request_meta",
    "resolve_actor",
]

SESSION_COOKIE = "shiftgate_session"
SESSION_STORE = "sessions"
SESSION_USER = "user_id"
SESSION_TENANT = "tenant_id"
_NEW_SESSION_ID = "new_session_id"


class _RotatingSessionBackend(ServerSideSessionBackend):
    """Server-side sessions whose id is replaced at sign-in (no session fixation)."""

    def get_session_id(self, connection: ASGIConnection[Any, Any, Any, Any]) -> str:
        renewed = connection.scope.get("state", {}).get(_NEW_SESSION_ID)
        return str(renewed) if renewed else super().get_session_id(connection)

    async def store_in_message(
        self,
        scope_session: ScopeSession,
        message: Message,
        connection: ASGIConnection[Any, Any, Any, Any],
    ) -> None:
        # An anonymous request with nothing in its session gets neither a cookie nor a store
        # entry: API calls and probes must not fill the store.
        if not scope_session and not connection.cookies.get(self.config.key):
            return
        await super().store_in_message(scope_session or Empty, message, connection)


class RotatingSessionConfig(ServerSideSessionConfig):
    _backend_class = _RotatingSessionBackend


class BearerExemptCSRFMiddleware(CSRFMiddleware):
    """CSRF checks for cookie-authenticated requests only.

    A bearer-token call carries no cookie authority, and a cross-site page cannot set an
    `Authorization` header.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP and any(
            key == b"authorization" for key, _ in scope["headers"]
        ):
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def bearer_token(request: Request[Any, Any, Any]) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise NotAuthorizedException(
            "the Authorization header must be `Bearer <token>`",
            headers={"WWW-Authenticate": 'Bearer error="invalid_request"'},
        )
    return value.strip()


async def resolve_actor(request: Request[Any, Any, Any]) -> Actor | None:
    """The caller, or None when anonymous. A bad bearer token is an error, not anonymity."""
    token = bearer_token(request)
    if token is not None:
        actor = await service.actor_for_token(token, datetime.now(UTC))
        if actor is None:
            raise NotAuthorizedException(
                "the API token is unknown, expired or revoked",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        return actor
    session = request.scope.get("session")
    if not isinstance(session, dict):
        return None
    user_id = session.get(SESSION_USER)
    if not user_id:
        return None
    tenant_id = session.get(SESSION_TENANT)
    return await service.actor_for_user(
        uuid.UUID(user_id), uuid.UUID(tenant_id) if tenant_id else None
    )


async def api_actor(request: Request[Any, Any, Any]) -> Actor:
    """Dependency of `/api/v1`: the caller, or 401."""
    actor = await resolve_actor(request)
    if actor is None:
        raise NotAuthorizedException(
            "sign in, or send a tenant API token as `Authorization: Bearer sgt_...`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return actor


async def remember_sign_in(request: Request[Any, Any, Any], actor: Actor) -> None:
    """Start a fresh session for `actor`: a new id, so a planted cookie is worth nothing."""
    old_id = request.cookies.get(SESSION_COOKIE)
    if old_id:
        await request.app.stores.get(SESSION_STORE).delete(old_id)
    request.scope.setdefault("state", {})[_NEW_SESSION_ID] = secrets.token_hex(32)
    request.set_session(
        {
            SESSION_USER: str(actor.id),
            SESSION_TENANT: str(actor.tenant_id) if actor.tenant_id else None,
            "signed_in_at": datetime.now(UTC).isoformat(),
        }
    )


def client_address(request: Request[Any, Any, Any], settings: Settings) -> str | None:
    """The caller's address; `X-Forwarded-For` is believed only from a trusted proxy."""
    peer = request.client.host if request.client else None
    if peer is None or not settings.trusted_proxies:
        return peer
    try:
        peer_ip = ipaddress.ip_address(peer)
        trusted = any(
            peer_ip in ipaddress.ip_network(net, strict=False) for net in settings.trusted_proxies
        )
    except ValueError:
        return peer
    forwarded = request.headers.get("x-forwarded-for")
    if not trusted or not forwarded:
        return peer
    candidate = forwarded.split(",")[-1].strip()
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return peer


def request_meta(request: Request[Any, Any, Any]) -> RequestMeta:
    settings: Settings = request.app.state.settings
    return RequestMeta(
        request_id=request.scope.get("state", {}).get("request_id"),
        source_address=client_address(request, settings),
    )
