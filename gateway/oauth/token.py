"""`POST /oauth/token` (RFC 6749 client_credentials; client auth per RFC 7523 or Basic)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from authlib.oauth2.rfc6749 import (
    InvalidClientError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
)
from litestar import Request, Response, post
from litestar.status_codes import HTTP_429_TOO_MANY_REQUESTS

from gateway.auth import request_meta
from gateway.oauth.claims import GRANT_SCOPE_PREFIX, BoundGrant
from gateway.oauth.server import ShiftgateServer, TokenRequest, peek_client_id
from gateway.settings import Settings
from sharing import token_records
from sharing.tables import Grant
from tenants.errors import Conflict
from tenants.oauth_clients import LoadedClient, load_client
from tenants.signing import TokenSigner
from tenants.tables import ClientAssertion

__all__ = ["oauth_error", "public_url", "read_form", "token_endpoint"]

_MAX_FORM_BYTES = 16 * 1024
_WINDOW_SECONDS = 60


def public_url(request: Request[Any, Any, Any]) -> str:
    """The URL as the world sees it (behind a TLS proxy too): authlib insists on https, or
    loopback for local development, and production settings require an https origin."""
    settings: Settings = request.app.state.settings
    return settings.issuer + request.url.path


def oauth_error(error: OAuth2Error) -> Response[Any]:
    status, body, headers = error()
    return Response(
        content=dict(body), status_code=status, headers=dict(headers), media_type="application/json"
    )


async def read_form(request: Request[Any, Any, Any]) -> dict[str, str]:
    """The form as single values; repeated or oversized parameters are refused (RFC 6749 3.2)."""
    body = await request.body()
    if len(body) > _MAX_FORM_BYTES:
        raise InvalidRequestError(description="the request body is too large")
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("application/x-www-form-urlencoded"):
        raise InvalidRequestError(description="use application/x-www-form-urlencoded")
    form = await request.form()
    single: dict[str, str] = {}
    for key in form:
        values = form.getall(key)
        if len(values) != 1:
            raise InvalidRequestError(description=f"parameter {key!r} appears more than once")
        single[key] = str(values[0])
    return single


async def _rate_limited(request: Request[Any, Any, Any], key: str, limit: int) -> bool:
    throttle = request.app.state.throttle
    return bool(await throttle.hit(f"token:{key}", _WINDOW_SECONDS) > limit)


def _too_many() -> Response[Any]:
    return Response(
        {"error": "slow_down", "error_description": "too many token requests: wait a minute"},
        status_code=HTTP_429_TOO_MANY_REQUESTS,
        headers={"Retry-After": str(_WINDOW_SECONDS), "Cache-Control": "no-store"},
    )


@post(
    "/oauth/token",
    operation_id="issueToken",
    tags=["oauth"],
    summary="Issue an access token (client_credentials)",
    status_code=200,
)
async def token_endpoint(request: Request[Any, Any, Any]) -> Response[Any]:
    settings: Settings = request.app.state.settings
    meta = request_meta(request)
    if await _rate_limited(request, f"addr:{meta.source_address}", settings.token_rate_per_address):
        await token_records.record_refused(None, None, "rate limit (source address)", meta)
        return _too_many()
    client: LoadedClient | None = None
    client_id: str | None = None
    try:
        form = await read_form(request)
        client_id = peek_client_id(request.headers, form)
        now = datetime.now(UTC)
        client = await load_client(client_id, now) if client_id else None
        if client is not None and not client.allows_address(meta.source_address):
            raise InvalidClientError(
                status_code=401, description="the request comes from outside the client's networks"
            )
        resource = form.get("resource")
        if resource is not None and resource != settings.api_audience:
            error = OAuth2Error(description=f"unknown resource; use {settings.api_audience}")
            error.error = "invalid_target"
            raise error
        grant = await _requested_grant(
            client, form.get("scope", ""), await request.app.state.clock.now()
        )
        seen = await _seen_assertions(client)
        signer: TokenSigner = request.app.state.signer
        server = ShiftgateServer(
            settings=settings,
            client=client,
            signing_key=await signer.signing_key(),
            seen_assertions=seen,
            resource=resource,
            grant=grant,
        )
        status, body, headers = server.create_token_response(
            TokenRequest(request.method, public_url(request), request.headers, form)
        )
    except OAuth2Error as error:
        await token_records.record_refused(client, client_id, _describe(error), meta)
        return oauth_error(error)
    payload = json.loads(body) if isinstance(body, str) else dict(body)
    collected = server.collected
    if status != 200 or collected.token_claims is None or client is None:
        await token_records.record_refused(client, client_id, _describe_body(payload), meta)
        return Response(payload, status_code=status, headers=dict(headers))
    # Counted once the client is authenticated: a client_id is no secret (every token carries
    # it), and requests that merely name a client must not use up its tokens.
    if await _rate_limited(request, f"client:{client.client_id}", settings.token_rate_per_client):
        await token_records.record_refused(client, client_id, "rate limit (client)", meta)
        return _too_many()
    try:
        await token_records.record_issued(
            client,
            collected.token_claims,
            assertion_jti=collected.assertion_jti,
            assertion_exp=collected.assertion_exp,
            request=meta,
        )
    except Conflict:
        replayed = InvalidClientError(description="the client assertion was used before")
        await token_records.record_refused(client, client_id, _describe(replayed), meta)
        return oauth_error(replayed)
    return Response(payload, status_code=status, headers=dict(headers))


async def _requested_grant(
    client: LoadedClient | None, scope: str, now: datetime
) -> BoundGrant | None:
    """The grant named by a `grant:<id>` scope, if it is this NOC's and still running."""
    named = [part for part in scope.split() if part.startswith(GRANT_SCOPE_PREFIX)]
    if not named:
        return None
    if len(named) > 1:
        raise InvalidScopeError(description="a token is bound to one grant at most")
    try:
        grant_id = uuid.UUID(named[0].removeprefix(GRANT_SCOPE_PREFIX))
    except ValueError:
        raise InvalidScopeError(description="grant scopes look like grant:<uuid>") from None
    if client is None:
        return None  # authentication fails next, with its own reason
    row = (
        await Grant.select(Grant.ends_at)
        .where(
            (Grant.id == grant_id)
            & (Grant.noc_tenant_id == client.tenant_id)
            & Grant.status.is_in(["scheduled", "active"])
            & (Grant.ends_at > datetime.now(UTC))
        )
        .first()
    )
    if row is None:
        raise InvalidScopeError(description="no running grant of this partner has that id")
    return BoundGrant(grant_id, int(row["ends_at"].timestamp()))


async def _seen_assertions(client: LoadedClient | None) -> frozenset[str]:
    if client is None:
        return frozenset()
    rows = await ClientAssertion.select(ClientAssertion.jti).where(
        (ClientAssertion.tenant_id == client.tenant_id)
        & (ClientAssertion.oauth_client_id == client.id)
        & (ClientAssertion.expires_at > datetime.now(UTC))
    )
    return frozenset(row["jti"] for row in rows)


def _describe(error: OAuth2Error) -> str:
    return f"{error.error}: {error.description or ''}".strip(": ")


def _describe_body(body: dict[str, Any]) -> str:
    return f"{body.get('error', 'error')}: {body.get('error_description', '')}".strip(": ")
