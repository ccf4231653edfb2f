"""`/.well-known/oauth-authorization-server` (RFC 8414) and `/.well-known/jwks.json`."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get

from gateway.settings import Settings
from tenants.oauth_clients import ALLOWED_ASSERTION_ALGS, PartnerScope
from tenants.signing import TokenSigner

__all__ = ["authorization_server_metadata", "jwks"]


@get(
    "/.well-known/oauth-authorization-server",
    operation_id="getAuthorizationServerMetadata",
    tags=["oauth"],
    summary="Authorization server metadata (RFC 8414)",
)
async def authorization_server_metadata(request: Request[Any, Any, Any]) -> Response[Any]:
    settings: Settings = request.app.state.settings
    issuer = settings.issuer
    auth_methods = ["private_key_jwt", "client_secret_basic"]
    body = {
        "issuer": issuer,
        "token_endpoint": settings.token_url,
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "revocation_endpoint": f"{issuer}/oauth/revoke",
        "introspection_endpoint": f"{issuer}/oauth/introspect",
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": [],
        "scopes_supported": [scope.value for scope in PartnerScope],
        "token_endpoint_auth_methods_supported": auth_methods,
        "token_endpoint_auth_signing_alg_values_supported": list(ALLOWED_ASSERTION_ALGS),
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_signing_alg_values_supported": list(ALLOWED_ASSERTION_ALGS),
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_signing_alg_values_supported": list(ALLOWED_ASSERTION_ALGS),
        "resource_indicators_supported": True,
        "authorization_response_iss_parameter_supported": False,
    }
    return Response(body, headers={"Cache-Control": "public, max-age=300"})


@get(
    "/.well-known/jwks.json",
    operation_id="getJwks",
    tags=["oauth"],
    summary="Public keys that sign access tokens (current and still-valid retired ones)",
)
async def jwks(request: Request[Any, Any, Any]) -> Response[Any]:
    signer: TokenSigner = request.app.state.signer
    keys = [key.public_jwk for key in await signer.published()]
    if not keys:  # before the first token: publish the key that will sign it
        await signer.signing_key()
        keys = [key.public_jwk for key in await signer.published()]
    return Response({"keys": keys}, headers={"Cache-Control": "public, max-age=60"})
