"""The record of partner access tokens: issued, refused, revoked, introspected, rejected.

Each write goes with its audit event in the NOC tenant's chain (the platform chain when no
client could be identified), in one transaction: a token whose issuance cannot be audited is
never handed out.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec

from sharing.audit import AuditAction, Outcome, RequestMeta, Severity, record
from tenants.db import write_transaction
from tenants.errors import Conflict
from tenants.oauth_clients import LoadedClient
from tenants.roles import PLATFORM_TENANT_ID, Actor, ActorKind
from tenants.tables import ClientAssertion, IssuedToken

__all__ = [
    "TokenState",
    "client_actor",
    "record_introspection",
    "record_issued",
    "record_refused",
    "record_rejected",
    "revoke_token",
    "token_state",
]


def client_actor(client: LoadedClient) -> Actor:
    return Actor(
        kind=ActorKind.OAUTH_CLIENT,
        id=client.id,
        label=client.client_id,
        tenant_id=client.tenant_id,
    )


async def record_issued(
    client: LoadedClient,
    claims: dict[str, Any],
    *,
    assertion_jti: str | None,
    assertion_exp: int | None,
    request: RequestMeta,
) -> None:
    """Store the token and the assertion it was obtained with; a replayed assertion fails."""
    async with write_transaction():
        if assertion_jti is not None:
            exists = await ClientAssertion.exists().where(
                (ClientAssertion.tenant_id == client.tenant_id)
                & (ClientAssertion.oauth_client_id == client.id)
                & (ClientAssertion.jti == assertion_jti)
            )
            if exists:
                raise Conflict("the client assertion was used before", code="assertion_replayed")
            # the unique index decides between concurrent uses that both passed the check above
            stored = (
                await ClientAssertion.insert(
                    ClientAssertion(
                        id=uuid.uuid4(),
                        tenant_id=client.tenant_id,
                        oauth_client_id=client.id,
                        jti=assertion_jti,
                        expires_at=datetime.fromtimestamp(assertion_exp or 0, UTC),
                    )
                )
                .on_conflict(action="DO NOTHING")
                .returning(ClientAssertion.id)
            )
            if not stored:
                raise Conflict("the client assertion was used before", code="assertion_replayed")
        await IssuedToken.insert(
            IssuedToken(
                jti=claims["jti"],
                tenant_id=client.tenant_id,
                oauth_client_id=client.id,
                grant_id=uuid.UUID(claims["grant_id"]) if "grant_id" in claims else None,
                scope=claims["scope"],
                issued_at=datetime.fromtimestamp(claims["iat"], UTC),
                expires_at=datetime.fromtimestamp(claims["exp"], UTC),
            )
        )
        await record(
            client.tenant_id,
            AuditAction.TOKEN_ISSUED,
            actor=client_actor(client),
            target_type="access_token",
            target_id=claims["jti"],
            request=request,
            context={
                "scope": claims["scope"],
                "expires_at": str(claims["exp"]),
                **({"grant_id": claims["grant_id"]} if "grant_id" in claims else {}),
            },
        )


async def record_refused(
    client: LoadedClient | None, client_id: str | None, reason: str, request: RequestMeta
) -> None:
    actor = (
        client_actor(client)
        if client
        else Actor(kind=ActorKind.OAUTH_CLIENT, id=None, label=(client_id or "unknown")[:100])
    )
    await record(
        client.tenant_id if client else PLATFORM_TENANT_ID,
        AuditAction.TOKEN_REFUSED,
        actor=actor,
        outcome=Outcome.DENIED,
        severity=Severity.WARNING,
        reason=reason[:500],
        request=request,
    )


class TokenState:
    """What the database says of a token, read on every partner request."""

    __slots__ = (
        "client_pk",
        "disabled",
        "expires_at",
        "grant_id",
        "networks",
        "revoked_at",
        "tenant_id",
    )

    def __init__(self, row: dict[str, Any]) -> None:
        self.tenant_id: uuid.UUID = row["tenant_id"]
        self.client_pk: uuid.UUID = row["oauth_client_id"]
        self.revoked_at: datetime | None = row["revoked_at"]
        self.expires_at: datetime = row["expires_at"]
        self.grant_id: uuid.UUID | None = row["grant_id"]
        self.disabled: bool = row["oauth_client_id.disabled_at"] is not None
        self.networks: list[str] = row["oauth_client_id.networks"]


_TOKEN_STATE_SQL = """
SELECT t.tenant_id, t.oauth_client_id, t.revoked_at, t.expires_at, t.grant_id,
       c.disabled_at AS "oauth_client_id.disabled_at", c.networks AS "oauth_client_id.networks"
FROM issued_tokens t JOIN oauth_clients c ON c.id = t.oauth_client_id
WHERE t.jti = {}
"""


async def token_state(jti: str) -> TokenState | None:
    """Read on every partner request: one indexed lookup, written as plain SQL because it is
    on the hot path."""
    rows = await IssuedToken.raw(_TOKEN_STATE_SQL, jti)
    if not rows:
        return None
    row = dict(rows[0])
    networks = row["oauth_client_id.networks"]
    if isinstance(networks, str | bytes):
        row["oauth_client_id.networks"] = msgspec.json.decode(networks)
    return TokenState(row)


async def revoke_token(client: LoadedClient, jti: str, request: RequestMeta) -> bool:
    """Revoke the client's own token (RFC 7009: unknown or foreign tokens are not an error)."""
    async with write_transaction():
        rows = (
            await IssuedToken.update({IssuedToken.revoked_at: datetime.now(UTC)})
            .where(
                (IssuedToken.jti == jti)
                & (IssuedToken.oauth_client_id == client.id)
                & IssuedToken.revoked_at.is_null()
            )
            .returning(IssuedToken.jti)
        )
        await record(
            client.tenant_id,
            AuditAction.TOKEN_REVOKED,
            actor=client_actor(client),
            outcome=Outcome.SUCCESS if rows else Outcome.FAILURE,
            target_type="access_token",
            target_id=jti[:64],
            reason=None if rows else "not an active token of this client",
            request=request,
        )
    return bool(rows)


async def record_introspection(
    client: LoadedClient, jti: str | None, active: bool, request: RequestMeta
) -> None:
    await record(
        client.tenant_id,
        AuditAction.TOKEN_INTROSPECTED,
        actor=client_actor(client),
        target_type="access_token",
        target_id=(jti or "")[:64] or None,
        context={"active": "true" if active else "false"},
        request=request,
    )


async def record_rejected(
    tenant_id: uuid.UUID | None, label: str, reason: str, request: RequestMeta
) -> None:
    """A bearer token refused at the partner API; unverifiable ones go to the platform chain."""
    await record(
        tenant_id or PLATFORM_TENANT_ID,
        AuditAction.TOKEN_REJECTED,
        actor=Actor(kind=ActorKind.OAUTH_CLIENT, id=None, label=label[:100]),
        outcome=Outcome.DENIED,
        severity=Severity.WARNING,
        reason=reason[:500],
        request=request,
    )
