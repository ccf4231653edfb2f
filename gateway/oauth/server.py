"""authlib's authorization server, fed with rows loaded beforehand: its hooks do no I/O.

The async endpoint reads the form, loads the client (and what else the hooks need), builds a
`ShiftgateServer` for that one request, lets authlib decide, then writes what the hooks
collected (the issued token, the seen assertion) in one transaction with the audit event.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import (
    ClientMixin,
    InvalidClientError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Payload,
    OAuth2Request,
)
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from gateway.oauth.claims import GRANT_SCOPE_PREFIX, BoundGrant, access_token_claims
from gateway.settings import Settings
from tenants.oauth_clients import ALLOWED_ASSERTION_ALGS, AuthMethod, LoadedClient

__all__ = [
    "ASSERTION_MAX_AGE_SECONDS",
    "ASSERTION_TYPE",
    "Collected",
    "ShiftgateServer",
    "TokenRequest",
    "peek_client_id",
]

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_MAX_AGE_SECONDS = 300
# authlib's PrivateKeyJWT (and other common clients) sign assertions that live an hour by default;
# `iat` freshness, not `exp`, is what bounds how long one is accepted
_MAX_ASSERTION_LIFETIME_SECONDS = 3600
_MAX_ASSERTION_BYTES = 8192


class _Payload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, form: dict[str, str]) -> None:
        self._data = form
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in form.items():
            self._datalist[key].append(value)

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class TokenRequest(OAuth2Request):  # type: ignore[misc]
    """An authlib request over a form already read by litestar (single values only)."""

    def __init__(self, method: str, uri: str, headers: Any, form: dict[str, str]) -> None:
        # `headers` is litestar's case-insensitive object: a plain dict would break Basic auth
        super().__init__(method=method, uri=uri, headers=headers)
        self._form = form
        self.payload = _Payload(form)

    @property
    def form(self) -> dict[str, str]:
        return self._form

    @property
    def args(self) -> dict[str, str]:
        return {}


class _Client(ClientMixin):  # type: ignore[misc]
    def __init__(self, loaded: LoadedClient, grant: BoundGrant | None) -> None:
        self.loaded = loaded
        self.grant = grant

    def get_client_id(self) -> str:
        return self.loaded.client_id

    def get_default_redirect_uri(self) -> None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        allowed = set(self.loaded.scopes)
        if self.grant is not None:
            allowed.add(f"{GRANT_SCOPE_PREFIX}{self.grant.id}")
        wanted = (scope or "").split()
        if not wanted:
            return " ".join(sorted(self.loaded.scopes))
        granted = [s for s in wanted if s in allowed]
        if not granted:  # narrower than asked is fine (RFC 6749 3.3); nothing at all is not
            raise InvalidScopeError(description="none of the requested scopes is allowed")
        return " ".join(granted)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return self.loaded.secret_matches(client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.loaded.auth_method is AuthMethod.CLIENT_SECRET_BASIC:
            return method == "client_secret_basic"
        return method == _AssertionAuth.CLIENT_AUTH_METHOD

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"


@dataclass
class Collected:
    """What the hooks decided, for the endpoint to write after authlib returns."""

    client: LoadedClient | None = None
    token_claims: dict[str, Any] | None = None
    assertion_jti: str | None = None
    assertion_exp: int | None = None
    notes: list[str] = field(default_factory=list)


class _AssertionAuth(JWTBearerClientAssertion):  # type: ignore[misc]
    """private_key_jwt (RFC 7523): audience is the issuer (the token URL is accepted too);
    an assertion must be fresh (`iat` within five minutes), live an hour at most, and never have
    been seen before."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, server: ShiftgateServer) -> None:
        super().__init__(validate_jti=True, leeway=30)
        self._server = server

    def get_audiences(self) -> list[str]:
        return [self._server.settings.issuer, self._server.settings.token_url]

    def resolve_client_public_key(self, client: _Client) -> KeySet:
        return KeySet.import_key_set(client.loaded.jwks)  # type: ignore[arg-type]

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> dict[str, Any]:
        if len(assertion) > _MAX_ASSERTION_BYTES:
            raise InvalidClientError(description="the client assertion is too large")
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=list(ALLOWED_ASSERTION_ALGS))
        except Exception as exc:  # joserfc raises several kinds; all mean "not valid"
            raise InvalidClientError(description=f"invalid client assertion: {exc}") from None
        self.verify_claims(token.claims)
        claims: dict[str, Any] = token.claims
        now = time.time()
        issued = claims.get("iat")
        if not isinstance(issued, int | float) or issued < now - ASSERTION_MAX_AGE_SECONDS:
            raise InvalidClientError(description="the client assertion is too old (iat)")
        if claims["exp"] - issued > _MAX_ASSERTION_LIFETIME_SECONDS:
            raise InvalidClientError(description="the client assertion lives too long (exp)")
        self._server.collected.assertion_jti = str(claims["jti"])
        # remembered for as long as it could be accepted: `iat` ends that before a long `exp`
        accepted_until = min(issued + ASSERTION_MAX_AGE_SECONDS, claims["exp"] + self.leeway)
        self._server.collected.assertion_exp = int(accepted_until) + 1
        return claims

    def validate_jti(self, claims: dict[str, Any], jti: str) -> bool:
        return str(jti) not in self._server.seen_assertions


def _binds(grant: BoundGrant | None, scope: str) -> bool:
    return grant is not None and f"{GRANT_SCOPE_PREFIX}{grant.id}" in scope.split()


class _Generator(BearerTokenGenerator):  # type: ignore[misc]
    def __init__(self, server: ShiftgateServer) -> None:
        super().__init__(access_token_generator=self._access_token)
        self._server = server

    def _access_token(self, client: _Client, grant_type: str, user: Any, scope: str) -> str:
        server = self._server
        claims = access_token_claims(
            settings=server.settings,
            client=client.loaded,
            scope=scope,
            resource=server.resource,
            now=int(time.time()),
            jti=secrets.token_urlsafe(24),
            grant=client.grant if _binds(client.grant, scope) else None,
        )
        server.collected.token_claims = claims
        kid, key = server.signing_key
        return jwt.encode({"alg": "ES256", "typ": "at+jwt", "kid": kid}, claims, key)

    def _get_expires_in(self, client: _Client, grant_type: str) -> int:
        claims = self._server.collected.token_claims
        if claims is None:
            return self._server.settings.access_token_seconds
        return int(claims["exp"] - claims["iat"])


class _ClientCredentials(ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", _AssertionAuth.CLIENT_AUTH_METHOD]


class ShiftgateServer(AuthorizationServer):  # type: ignore[misc]
    """One request's authorization server: client_credentials only, two client auth methods."""

    def __init__(
        self,
        *,
        settings: Settings,
        client: LoadedClient | None,
        signing_key: tuple[str, ECKey],
        seen_assertions: frozenset[str] = frozenset(),
        resource: str | None = None,
        grant: BoundGrant | None = None,
    ) -> None:
        super().__init__(scopes_supported=None)
        self.settings = settings
        self.signing_key = signing_key
        self.seen_assertions = seen_assertions
        self.resource = resource
        self.grant = grant
        self.collected = Collected(client=client)
        self._client = client
        self.register_grant(_ClientCredentials)
        self.register_client_auth_method(_AssertionAuth.CLIENT_AUTH_METHOD, _AssertionAuth(self))
        self.register_token_generator("client_credentials", _Generator(self))

    def query_client(self, client_id: str) -> _Client | None:
        if self._client is None or self._client.client_id != client_id:
            return None
        if self._client.disabled:
            raise InvalidClientError(description="the client is disabled")
        return _Client(self._client, self.grant)

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        """Nothing to do here: the endpoint stores the token after authlib returns."""

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """No signal receivers: what happened is read from `collected`."""

    def create_oauth2_request(self, request: TokenRequest) -> TokenRequest:
        return request

    def handle_response(
        self, status: int, body: Any, headers: list[tuple[str, str]]
    ) -> tuple[int, Any, list[tuple[str, str]]]:
        return status, body, headers


def peek_client_id(headers: Any, form: dict[str, str]) -> str | None:
    """The client_id a request claims, read without trusting it: to load the client row."""
    assertion = form.get("client_assertion")
    if assertion:
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise InvalidRequestError(description="unsupported client_assertion_type")
        if len(assertion) > _MAX_ASSERTION_BYTES:
            raise InvalidClientError(description="the client assertion is too large")
        try:
            payload = assertion.split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except (IndexError, ValueError, binascii.Error, UnicodeDecodeError):
            raise InvalidClientError(description="the client assertion is not a JWT") from None
        subject = claims.get("sub") if isinstance(claims, dict) else None
        return subject if isinstance(subject, str) else None
    header = headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise InvalidClientError(
                status_code=401, description="malformed Basic credentials"
            ) from None
        return unquote(decoded.partition(":")[0])
    return form.get("client_id")
