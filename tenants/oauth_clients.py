"""Partner NOCs' OAuth clients: registration rows, their credentials, and checking them.

A client authenticates with `client_secret_basic` (a generated secret, stored as a SHA-256 hash:
it carries 256 random bits) or `private_key_jwt` (public keys pasted at registration; no JWKS URL
is ever fetched). Rotation adds a credential and lets the old one live for an overlap period.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import ipaddress
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from tenants.errors import Conflict, Invalid, NotFound
from tenants.tables import OAuthClient, OAuthCredential

__all__ = [
    "ALLOWED_ASSERTION_ALGS",
    "CLIENT_ID_PREFIX",
    "CLIENT_SECRET_PREFIX",
    "AuthMethod",
    "LoadedClient",
    "OAuthClientView",
    "PartnerScope",
    "add_credential",
    "address_allowed",
    "check_jwks",
    "get_client",
    "insert_client",
    "list_clients",
    "load_client",
    "set_disabled",
]

CLIENT_ID_PREFIX = "sgc_"
CLIENT_SECRET_PREFIX = "sgs_"
ALLOWED_ASSERTION_ALGS = ("ES256", "ES384", "EdDSA", "RS256", "PS256")
_MAX_KEYS = 5
_MAX_NETWORKS = 20


class AuthMethod(enum.StrEnum):
    PRIVATE_KEY_JWT = "private_key_jwt"
    CLIENT_SECRET_BASIC = "client_secret_basic"


class PartnerScope(enum.StrEnum):
    """What a partner client may ask for. Grant-bound scopes come with handoffs."""

    READ = "partner:read"
    NOTES = "partner:notes"
    BREAK_GLASS = "partner:break_glass"


class OAuthClientView(msgspec.Struct, frozen=True):
    id: uuid.UUID
    client_id: str
    name: str
    auth_method: AuthMethod
    scopes: list[PartnerScope]
    networks: list[str]
    created_at: datetime
    disabled_at: datetime | None
    credentials: int


@dataclass(frozen=True, slots=True)
class LoadedClient:
    """A client row with its live credentials, loaded before authlib's synchronous hooks run."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    client_id: str
    name: str
    auth_method: AuthMethod
    scopes: frozenset[str]
    networks: tuple[str, ...]
    disabled: bool
    secret_hashes: tuple[str, ...]
    jwks: dict[str, Any]

    def secret_matches(self, secret: str) -> bool:
        digest = _digest(secret)
        # compare against every live hash, without stopping early
        matches = [hmac.compare_digest(digest, known) for known in self.secret_hashes]
        return any(matches)

    def allows_address(self, address: str | None) -> bool:
        return address_allowed(self.networks, address)


def address_allowed(networks: Iterable[str], address: str | None) -> bool:
    """True when no networks are set, or `address` lies in one of them."""
    networks = list(networks)
    if not networks:
        return True
    if address is None:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(net, strict=False) for net in networks)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_jwks(raw: Any) -> dict[str, Any]:
    """A client's public key set: only public keys of allowed types, each with a `kid`."""
    if not isinstance(raw, dict) or not isinstance(raw.get("keys"), list) or not raw["keys"]:
        raise Invalid('jwks must be a JSON Web Key Set: {"keys": [...]}', code="jwks")
    if len(raw["keys"]) > _MAX_KEYS:
        raise Invalid(f"a client has at most {_MAX_KEYS} keys", code="jwks")
    cleaned = []
    for key in raw["keys"]:
        if not isinstance(key, dict):
            raise Invalid("each key must be a JSON object", code="jwks")
        if any(part in key for part in ("d", "p", "q", "dp", "dq", "qi", "k")):
            raise Invalid("paste public keys only, not a private or symmetric key", code="jwks")
        if key.get("kty") not in {"EC", "OKP", "RSA"}:
            raise Invalid("keys must be EC, OKP (Ed25519) or RSA", code="jwks")
        if not key.get("kid"):
            raise Invalid("every key needs a kid", code="jwks")
        if key.get("alg") and key["alg"] not in ALLOWED_ASSERTION_ALGS:
            raise Invalid(f"alg {key['alg']!r} is not allowed", code="jwks")
        cleaned.append(key)
    try:
        KeySet.import_key_set({"keys": cleaned})
    except (JoseError, ValueError, TypeError) as exc:
        raise Invalid(f"jwks could not be read: {exc}", code="jwks") from None
    return {"keys": cleaned}


def _check_networks(networks: Iterable[str]) -> list[str]:
    result = []
    for net in networks:
        try:
            result.append(str(ipaddress.ip_network(net.strip(), strict=False)))
        except ValueError:
            raise Invalid(f"{net!r} is not a network in CIDR notation", code="networks") from None
    if len(result) > _MAX_NETWORKS:
        raise Invalid(f"at most {_MAX_NETWORKS} networks", code="networks")
    return result


def _check_scopes(scopes: Iterable[str]) -> list[str]:
    try:
        chosen = sorted({PartnerScope(scope).value for scope in scopes})
    except ValueError:
        allowed = ", ".join(scope.value for scope in PartnerScope)
        raise Invalid(f"scopes must be among {allowed}", code="scopes") from None
    if not chosen:
        raise Invalid("a client needs at least one scope", code="scopes")
    return chosen


async def insert_client(
    *,
    tenant_id: uuid.UUID,
    name: str,
    auth_method: AuthMethod,
    scopes: Iterable[str],
    networks: Iterable[str],
    jwks: dict[str, Any] | None,
    created_by: str,
    now: datetime,
) -> tuple[OAuthClientView, str | None]:
    """A new client and its first credential. Returns the view and the secret (shown once)."""
    name = name.strip()
    if not 1 <= len(name) <= 100:
        raise Invalid("the client name needs 1 to 100 characters", code="name")
    client = OAuthClient(
        id=uuid.uuid4(),
        tenant_id=tenant_id,
        client_id=CLIENT_ID_PREFIX + secrets.token_urlsafe(16),
        name=name,
        auth_method=auth_method.value,
        scopes=_check_scopes(scopes),
        networks=_check_networks(networks),
        created_by=created_by,
        created_at=now,
    )
    if auth_method is AuthMethod.PRIVATE_KEY_JWT and jwks is None:
        raise Invalid("private_key_jwt needs the client's public keys (jwks)", code="jwks")
    if auth_method is AuthMethod.CLIENT_SECRET_BASIC and jwks is not None:
        raise Invalid("client_secret_basic takes no keys: the secret is generated", code="jwks")
    await OAuthClient.insert(client)
    secret = await add_credential(tenant_id, client.id, auth_method, jwks, now=now, overlap=None)
    return await _view(tenant_id, client.id), secret


async def add_credential(
    tenant_id: uuid.UUID,
    client_pk: uuid.UUID,
    auth_method: AuthMethod,
    jwks: dict[str, Any] | None,
    *,
    now: datetime,
    overlap: timedelta | None,
) -> str | None:
    """A new credential; live older ones expire after `overlap`. Returns a new secret, if any."""
    if overlap is not None:
        await OAuthCredential.update({OAuthCredential.expires_at: now + overlap}).where(
            (OAuthCredential.tenant_id == tenant_id)
            & (OAuthCredential.oauth_client_id == client_pk)
            & (OAuthCredential.expires_at.is_null() | (OAuthCredential.expires_at > now + overlap))
        )
    secret = None
    if auth_method is AuthMethod.CLIENT_SECRET_BASIC:
        secret = CLIENT_SECRET_PREFIX + secrets.token_urlsafe(32)
        row = OAuthCredential(secret_hash=_digest(secret))
    else:
        row = OAuthCredential(jwks=check_jwks(jwks))
    row.id = uuid.uuid4()
    row.tenant_id = tenant_id
    row.oauth_client_id = client_pk
    row.created_at = now
    await OAuthCredential.insert(row)
    return secret


async def _view(tenant_id: uuid.UUID, client_pk: uuid.UUID) -> OAuthClientView:
    row = (
        await OAuthClient.select()
        .where((OAuthClient.id == client_pk) & (OAuthClient.tenant_id == tenant_id))
        .first()
        .output(load_json=True)
    )
    if row is None:
        raise NotFound("no such OAuth client")
    count = await OAuthCredential.count().where(OAuthCredential.oauth_client_id == client_pk)
    return msgspec.convert({**row, "credentials": count}, OAuthClientView, strict=False)


async def list_clients(tenant_id: uuid.UUID) -> list[OAuthClientView]:
    rows = await OAuthClient.select(OAuthClient.id).where(OAuthClient.tenant_id == tenant_id)
    return [await _view(tenant_id, row["id"]) for row in rows]


async def get_client(tenant_id: uuid.UUID, client_pk: uuid.UUID) -> OAuthClientView:
    return await _view(tenant_id, client_pk)


async def set_disabled(
    tenant_id: uuid.UUID, client_pk: uuid.UUID, disabled: bool, now: datetime
) -> OAuthClientView:
    current = await _view(tenant_id, client_pk)
    if (current.disabled_at is not None) == disabled:
        raise Conflict(
            f"the client is {'disabled' if disabled else 'enabled'} already", code="unchanged"
        )
    await OAuthClient.update({OAuthClient.disabled_at: now if disabled else None}).where(
        (OAuthClient.id == client_pk) & (OAuthClient.tenant_id == tenant_id)
    )
    return await _view(tenant_id, client_pk)


async def load_client(client_id: str, now: datetime) -> LoadedClient | None:
    """The client with `client_id` and its live credentials, or None."""
    if not client_id.startswith(CLIENT_ID_PREFIX) or len(client_id) > 64:
        return None
    row = (
        await OAuthClient.select()
        .where(OAuthClient.client_id == client_id)
        .first()
        .output(load_json=True)
    )
    if row is None:
        return None
    credentials = (
        await OAuthCredential.select()
        .where(
            (OAuthCredential.oauth_client_id == row["id"])
            & (OAuthCredential.expires_at.is_null() | (OAuthCredential.expires_at > now))
        )
        .output(load_json=True)
    )
    keys = [key for cred in credentials if cred["jwks"] for key in cred["jwks"]["keys"]]
    return LoadedClient(
        id=row["id"],
        tenant_id=row["tenant_id"],
        client_id=row["client_id"],
        name=row["name"],
        auth_method=AuthMethod(row["auth_method"]),
        scopes=frozenset(row["scopes"]),
        networks=tuple(row["networks"]),
        disabled=row["disabled_at"] is not None,
        secret_hashes=tuple(cred["secret_hash"] for cred in credentials if cred["secret_hash"]),
        jwks={"keys": keys},
    )
