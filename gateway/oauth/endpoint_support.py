"""What revocation and introspection share: client authentication through authlib, and
reading the token the client presents."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from authlib.oauth2.rfc6749 import InvalidClientError, OAuth2Error
from litestar import Request

from gateway.auth import request_meta
from gateway.oauth.server import ShiftgateServer, TokenRequest, peek_client_id
from gateway.oauth.token import public_url, read_form
from gateway.oauth.tokens import TokenInvalid, verify_access_token
from sharing import token_records
from tenants.oauth_clients import LoadedClient, load_client

__all__ = ["authenticated_client", "verified_claims"]


async def authenticated_client(
    request: Request[Any, Any, Any], endpoint_class: type[Any]
) -> tuple[LoadedClient, dict[str, str]]:
    """Authenticate the calling client with authlib (Basic or private_key_jwt); refusals audited."""
    meta = request_meta(request)
    client: LoadedClient | None = None
    client_id: str | None = None
    try:
        form = await read_form(request)
        client_id = peek_client_id(request.headers, form)
        client = await load_client(client_id, datetime.now(UTC)) if client_id else None
        if client is not None and not client.allows_address(meta.source_address):
            raise InvalidClientError(
                status_code=401, description="the request comes from outside the client's networks"
            )
        server = ShiftgateServer(
            settings=request.app.state.settings,
            client=client,
            signing_key=await request.app.state.signer.signing_key(),
        )
        endpoint = endpoint_class(server)
        oauth_request = TokenRequest(request.method, public_url(request), request.headers, form)
        endpoint.authenticate_endpoint_client(oauth_request)
        endpoint.check_params(oauth_request, client)
    except OAuth2Error as error:
        reason = f"{error.error}: {error.description or ''}".strip(": ")
        await token_records.record_refused(client, client_id, reason, meta)
        raise
    assert client is not None  # authenticate_endpoint_client raised otherwise
    return client, form


async def verified_claims(request: Request[Any, Any, Any], token: str) -> dict[str, Any] | None:
    """The claims of one of our tokens if its signature verifies (expired ones included)."""
    try:
        verified = await verify_access_token(
            token, request.app.state.settings, request.app.state.signer
        )
    except TokenInvalid as invalid:
        return invalid.claims
    return verified.claims
