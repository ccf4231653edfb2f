"""`POST /oauth/introspect` (RFC 7662): a client asks about one of its own tokens."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from authlib.oauth2.rfc6749 import OAuth2Error
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from litestar import Request, Response, post

from gateway.auth import request_meta
from gateway.oauth.endpoint_support import authenticated_client, verified_claims
from gateway.oauth.token import oauth_error
from sharing import token_records

__all__ = ["introspection_endpoint"]


class _Introspection(IntrospectionEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = ["client_secret_basic", "private_key_jwt"]

    """Used for client authentication and parameter checks; the answer is the endpoint's."""


@post(
    "/oauth/introspect",
    operation_id="introspectToken",
    tags=["oauth"],
    summary="Introspect one of the client's own tokens (RFC 7662)",
    status_code=200,
)
async def introspection_endpoint(request: Request[Any, Any, Any]) -> Response[Any]:
    meta = request_meta(request)
    try:
        client, form = await authenticated_client(request, _Introspection)
    except OAuth2Error as error:
        return oauth_error(error)
    claims = await verified_claims(request, form.get("token", ""))
    body: dict[str, Any] = {"active": False}
    jti = claims.get("jti") if claims else None
    if claims and claims.get("client_id") == client.client_id and jti:
        state = await token_records.token_state(str(jti))
        now = datetime.now(UTC)
        if (
            state is not None
            and state.client_pk == client.id
            and state.revoked_at is None
            and state.expires_at > now
            and not state.disabled
        ):
            body = {"active": True, "token_type": "Bearer", **claims}
    await token_records.record_introspection(client, jti, body["active"], meta)
    return Response(body, status_code=200, headers={"Cache-Control": "no-store"})
