"""`POST /oauth/revoke` (RFC 7009): a client revokes one of its own access tokens by `jti`.

The database is the truth: the partner API reads the revocation on every request, so a revoked
token stops working on every replica at once, with or without Redis.
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import OAuth2Error, UnauthorizedClientError
from authlib.oauth2.rfc7009 import RevocationEndpoint
from litestar import Request, Response, post

from gateway.auth import request_meta
from gateway.oauth.endpoint_support import authenticated_client, verified_claims
from gateway.oauth.token import oauth_error
from sharing import token_records

__all__ = ["revocation_endpoint"]


class _Revocation(RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = ["client_secret_basic", "private_key_jwt"]

    """Used for client authentication and parameter checks; revoking is the endpoint's."""


@post(
    "/oauth/revoke",
    operation_id="revokeToken",
    tags=["oauth"],
    summary="Revoke an access token (RFC 7009)",
    status_code=200,
)
async def revocation_endpoint(request: Request[Any, Any, Any]) -> Response[Any]:
    meta = request_meta(request)
    try:
        client, form = await authenticated_client(request, _Revocation)
    except OAuth2Error as error:
        return oauth_error(error)
    claims = await verified_claims(request, form.get("token", ""))
    if claims and claims.get("client_id") != client.client_id:
        foreign = UnauthorizedClientError(description="the token was not issued to this client")
        await token_records.record_refused(client, client.client_id, "revoke: foreign token", meta)
        return oauth_error(foreign)
    if claims and claims.get("jti"):
        await token_records.revoke_token(client, str(claims["jti"]), meta)
    # RFC 7009 2.2: an invalid or foreign token is answered 200 like any other
    return Response({}, status_code=200, headers={"Cache-Control": "no-store"})
