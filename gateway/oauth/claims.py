"""The one place that decides what an access token says (RFC 9068 claims)."""

from __future__ import annotations

from typing import Any

from gateway.settings import Settings
from tenants.oauth_clients import LoadedClient

__all__ = ["TENANT_CLAIM", "access_token_claims"]

TENANT_CLAIM = "tenant_id"


def access_token_claims(
    *,
    settings: Settings,
    client: LoadedClient,
    scope: str,
    resource: str | None,
    now: int,
    jti: str,
) -> dict[str, Any]:
    """Claims of a token for `client`. Its lifetime never passes `access_token_seconds`.

    A token bound to a grant will also end no later than the grant (handoffs add that here).
    """
    return {
        "iss": settings.issuer,
        "sub": client.client_id,
        "aud": resource or settings.api_audience,
        "client_id": client.client_id,
        "iat": now,
        "nbf": now,
        "exp": now + settings.access_token_seconds,
        "jti": jti,
        "scope": scope,
        TENANT_CLAIM: str(client.tenant_id),
    }
