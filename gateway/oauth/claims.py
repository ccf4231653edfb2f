"""The one place that decides what an access token says (RFC 9068 claims)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from gateway.settings import Settings
from tenants.oauth_clients import LoadedClient

__all__ = ["GRANT_CLAIM", "GRANT_SCOPE_PREFIX", "TENANT_CLAIM", "BoundGrant", "access_token_claims"]

TENANT_CLAIM = "tenant_id"
GRANT_CLAIM = "grant_id"
GRANT_SCOPE_PREFIX = "grant:"


@dataclass(frozen=True, slots=True)
class BoundGrant:
    """The grant a token is requested for, checked before issuance."""

    id: uuid.UUID
    ends_at: int


def access_token_claims(
    *,
    settings: Settings,
    client: LoadedClient,
    scope: str,
    resource: str | None,
    now: int,
    jti: str,
    grant: BoundGrant | None = None,
) -> dict[str, Any]:
    """Claims of a token for `client`: it lives at most `access_token_seconds`, and a token
    bound to a grant (scope `grant:<id>`) never outlives the grant."""
    expires = now + settings.access_token_seconds
    if grant is not None:
        expires = min(expires, grant.ends_at)
    claims = {
        "iss": settings.issuer,
        "sub": client.client_id,
        "aud": resource or settings.api_audience,
        "client_id": client.client_id,
        "iat": now,
        "nbf": now,
        "exp": expires,
        "jti": jti,
        "scope": scope,
        TENANT_CLAIM: str(client.tenant_id),
    }
    if grant is not None:
        claims[GRANT_CLAIM] = str(grant.id)
    return claims
