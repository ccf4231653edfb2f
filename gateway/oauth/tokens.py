"""Reading our own access tokens: verify signature and claims, then ask the database.

Used by the partner API (every request), revocation (RFC 7009) and introspection (RFC 7662).
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError

from gateway.oauth.claims import TENANT_CLAIM
from gateway.settings import Settings
from tenants.signing import SIGNING_ALG, TokenSigner

__all__ = [
    "LEEWAY_SECONDS",
    "MAX_TOKEN_BYTES",
    "TokenInvalid",
    "VerifiedToken",
    "verify_access_token",
]

MAX_TOKEN_BYTES = 4096
LEEWAY_SECONDS = 30
_FORBIDDEN_HEADERS = {"jwk", "jku", "x5u", "x5c", "crit"}
# Tokens whose signature verified, by their exact text, with the key object that verified them: a
# partner pulls many documents with one token, and an ES256 verification costs more than all the
# other checks. The key is still looked up on every call, so a retired key fails at once, and a
# hit counts only for that same key object; the claims are checked on every call.
_VERIFIED: dict[str, tuple[object, dict[str, Any]]] = {}
_VERIFIED_MAX = 4096


class TokenInvalid(Exception):
    """Why a bearer token is refused (safe to tell the caller and to audit)."""

    def __init__(self, reason: str, claims: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.claims = claims


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    claims: dict[str, Any]

    @property
    def jti(self) -> str:
        return str(self.claims["jti"])

    @property
    def client_id(self) -> str:
        return str(self.claims["client_id"])

    @property
    def tenant_id(self) -> str:
        return str(self.claims[TENANT_CLAIM])

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(str(self.claims.get("scope", "")).split())


def _header(token: str) -> dict[str, Any]:
    try:
        segment = token.split(".")[0]
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (IndexError, ValueError, binascii.Error, UnicodeDecodeError):
        raise TokenInvalid("the token is not a JWT") from None
    if not isinstance(header, dict):
        raise TokenInvalid("the token is not a JWT")
    return header


async def verify_access_token(token: str, settings: Settings, signer: TokenSigner) -> VerifiedToken:
    """Signature (ES256 only, our published keys only), `typ`, `iss`, `aud`, `exp`, `nbf`."""
    if len(token) > MAX_TOKEN_BYTES:
        raise TokenInvalid("the token is too large")
    if token.count(".") != 2:
        raise TokenInvalid("the token is not a signed JWT")
    header = _header(token)
    if header.get("alg") != SIGNING_ALG:
        raise TokenInvalid(f"algorithm {header.get('alg')!r} is not accepted")
    if _FORBIDDEN_HEADERS & header.keys():
        raise TokenInvalid("tokens may not name their own keys (jwk, jku, x5u, x5c)")
    if header.get("typ") != "at+jwt":
        raise TokenInvalid("the token is not an access token (typ must be at+jwt)")
    kid = header.get("kid")
    key = await signer.verification_key(kid) if isinstance(kid, str) else None
    if key is None:
        raise TokenInvalid("the token is signed by an unknown key")
    cached = _VERIFIED.get(token)
    if cached is not None and cached[0] is key:
        claims = dict(cached[1])
    else:
        try:
            decoded = jwt.decode(token, key, algorithms=[SIGNING_ALG])
        except (JoseError, ValueError) as exc:
            raise TokenInvalid(f"the signature does not verify ({type(exc).__name__})") from None
        claims = dict(decoded.claims)
        if len(_VERIFIED) >= _VERIFIED_MAX:
            del _VERIFIED[next(iter(_VERIFIED))]
        _VERIFIED[token] = (key, dict(claims))
    now = time.time()
    required = ("iss", "aud", "exp", "iat", "jti", "client_id", "sub", TENANT_CLAIM)
    missing = [name for name in required if name not in claims]
    if missing:
        raise TokenInvalid(f"the token lacks {', '.join(missing)}", claims)
    if claims["iss"] != settings.issuer:
        raise TokenInvalid("the token comes from another issuer", claims)
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if settings.api_audience not in audiences:
        raise TokenInvalid("the token is for another audience", claims)
    # we issue and verify with one clock: expiry has no leeway, only `nbf` tolerates skew
    if not isinstance(claims["exp"], int | float) or claims["exp"] <= now:
        raise TokenInvalid("the token has expired", claims)
    nbf = claims.get("nbf", claims["iat"])
    if not isinstance(nbf, int | float) or nbf - LEEWAY_SECONDS > now:
        raise TokenInvalid("the token is not valid yet (nbf)", claims)
    return VerifiedToken(claims)
