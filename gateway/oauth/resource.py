"""The resource-server side: who a partner request is, checked in full on every request.

Signature and claims (see `tokens`), then the database: the token not revoked, the client not
disabled, the source address inside the client's networks. Every refusal is a 401 and an audit
event; nothing of an MSP endpoint accepts these tokens, and nothing here accepts anything else.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from litestar import Request
from litestar.exceptions import NotAuthorizedException

from gateway.auth import bearer_token, client_address
from gateway.oauth.claims import TENANT_CLAIM
from gateway.oauth.tokens import TokenInvalid, verify_access_token
from gateway.settings import Settings
from sharing import token_records
from sharing.audit import RequestMeta
from tenants.oauth_clients import address_allowed

__all__ = ["PartnerCaller", "partner_caller"]


@dataclass(frozen=True, slots=True)
class PartnerCaller:
    """A partner NOC's client, as its verified token and the database say."""

    tenant_id: uuid.UUID
    client_pk: uuid.UUID
    client_id: str
    jti: str
    scopes: frozenset[str]
    grant_id: uuid.UUID | None


def _refuse(reason: str) -> NotAuthorizedException:
    description = reason.replace('"', "'")
    return NotAuthorizedException(
        reason,
        headers={
            "WWW-Authenticate": f'Bearer error="invalid_token", error_description="{description}"'
        },
    )


async def _issued_to(claims: dict[str, Any] | None) -> tuple[uuid.UUID | None, str]:
    """The NOC and client of a refused token whose signature verified (expired, not yet valid)
    and that this server issued: its refusal belongs in the NOC's chain. Otherwise nothing
    vouches for the token's claims, and the platform chain records it."""
    jti = claims.get("jti") if claims else None
    if claims is None or not isinstance(jti, str):
        return None, "unverified token"
    state = await token_records.token_state(jti)
    if state is None or str(state.tenant_id) != claims.get(TENANT_CLAIM):
        return None, "unverified token"
    return state.tenant_id, str(claims.get("client_id", "unverified token"))


async def partner_caller(request: Request[Any, Any, Any]) -> PartnerCaller:
    """Dependency of `/api/v1/partner`: the verified caller, or 401 (audited)."""
    settings: Settings = request.app.state.settings
    meta = RequestMeta(
        request_id=request.scope.get("state", {}).get("request_id"),
        source_address=client_address(request, settings),
    )
    token = bearer_token(request)
    if token is None:
        raise NotAuthorizedException(
            "send a partner access token: Authorization: Bearer <token from /oauth/token>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    try:
        verified = await verify_access_token(token, settings, request.app.state.signer)
    except TokenInvalid as invalid:
        tenant_id, label = await _issued_to(invalid.claims)
        await token_records.record_rejected(tenant_id, label, invalid.reason, meta)
        raise _refuse(invalid.reason) from None
    tenant_id = uuid.UUID(verified.tenant_id)
    state = await token_records.token_state(verified.jti)
    reason = None
    if state is None or state.tenant_id != tenant_id:
        reason = "the token is not known to this server"
    elif state.revoked_at is not None:
        reason = "the token was revoked"
    elif state.expires_at <= datetime.now(UTC):
        reason = "the token has expired"
    elif state.disabled:
        reason = "the client is disabled"
    elif not address_allowed(state.networks, meta.source_address):
        reason = "the request comes from outside the client's networks"
    if reason is not None:
        await token_records.record_rejected(
            tenant_id if state else None, verified.client_id, reason, meta
        )
        raise _refuse(reason)
    assert state is not None
    return PartnerCaller(
        tenant_id=tenant_id,
        client_pk=state.client_pk,
        client_id=verified.client_id,
        jti=verified.jti,
        scopes=verified.scopes,
        grant_id=state.grant_id,
    )
