"""Interoperability: a partner's machine with a standard OAuth client library (authlib's httpx
client) gets tokens by both client authentication methods, and an independent JWT library
(PyJWT) verifies them against the published JWKS, as a resource server elsewhere would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt as pyjwt
import pytest
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc.jwk import ECKey

from gateway.settings import Settings
from tenants.roles import Role
from tenants.service import TenantInfo
from tests.helpers import (
    PUBLIC_ORIGIN,
    GatewayClient,
    Person,
    audit_events,
    bearer,
    client_key,
    gateway,
    key_client,
    make_person,
    make_tenant,
    secret_client,
)

ME = "/api/v1/partner/me"


@pytest.fixture
async def http(settings: Settings, db: object) -> AsyncIterator[GatewayClient]:
    async with gateway(settings) as client:
        yield client


@pytest.fixture
async def noc(db: object) -> tuple[TenantInfo, Person]:
    tenant = await make_tenant("noc")
    return tenant, await make_person(tenant, Role.ADMIN)


def _library_client(http: GatewayClient, client_id: str, credential: Any, method: Any) -> Any:
    """authlib's httpx client, wired to the app in-process; otherwise as a partner configures it."""
    return AsyncOAuth2Client(
        client_id,
        credential,
        token_endpoint_auth_method=method,
        revocation_endpoint_auth_method=method,
        transport=httpx.ASGITransport(app=http.app),
        base_url=PUBLIC_ORIGIN,
    )


async def _metadata(http: GatewayClient) -> dict[str, Any]:
    response = await http.get("/.well-known/oauth-authorization-server")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def _path(url: str) -> str:
    """A URL the metadata advertises, as a path on the in-process app."""
    assert url.startswith(PUBLIC_ORIGIN + "/"), url
    return url.removeprefix(PUBLIC_ORIGIN)


async def _verify_independently(
    http: GatewayClient, settings: Settings, token: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify `token` as a third-party resource server would: PyJWT, keys from the JWKS that the
    metadata names, ES256 only, audience and issuer required. Returns (header, claims)."""
    metadata = await _metadata(http)
    jwks = (await http.get(_path(metadata["jwks_uri"]))).json()
    header = pyjwt.get_unverified_header(token)
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "ES256"
    assert header.get("kid"), "no kid: a verifier could not pick the key"
    matching = [key for key in jwks["keys"] if key["kid"] == header["kid"]]
    assert len(matching) == 1, "the signing key is not published exactly once"
    assert "d" not in matching[0]
    key = pyjwt.PyJWK(matching[0])
    claims: dict[str, Any] = pyjwt.decode(
        token,
        key,
        algorithms=["ES256"],
        audience=settings.api_audience,
        issuer=metadata["issuer"],
        options={"require": ["iss", "sub", "aud", "exp", "iat", "jti"]},
    )
    return header, claims


def _check_claims(
    claims: dict[str, Any], settings: Settings, tenant: TenantInfo, client_id: str
) -> None:
    assert claims["iss"] == settings.issuer
    assert claims["sub"] == client_id
    assert claims["client_id"] == client_id
    assert claims["aud"] == settings.api_audience
    assert claims["tenant_id"] == str(tenant.id)
    assert claims["scope"] == "partner:read"
    assert isinstance(claims["jti"], str) and len(claims["jti"]) >= 16
    assert 0 < claims["exp"] - claims["iat"] <= 600
    assert claims["exp"] - claims["iat"] == settings.access_token_seconds


async def test_client_secret_basic_with_authlib_and_pyjwt(
    http: GatewayClient, settings: Settings, noc: tuple[TenantInfo, Person]
) -> None:
    tenant, admin = noc
    view, secret = await secret_client(admin)
    token_url = (await _metadata(http))["token_endpoint"]
    async with _library_client(http, view.client_id, secret, "client_secret_basic") as oauth:
        token = await oauth.fetch_token(token_url, grant_type="client_credentials")
        assert token["token_type"] == "Bearer"
        assert token["expires_in"] == settings.access_token_seconds
        assert token["scope"] == "partner:read"
        _, claims = await _verify_independently(http, settings, token["access_token"])
        _check_claims(claims, settings, tenant, view.client_id)
        me = await oauth.get(ME)  # the library sends the token as a Bearer header
    assert me.status_code == 200, me.text
    assert me.json()["tenant_id"] == str(tenant.id)
    assert me.json()["client_id"] == view.client_id
    issued = await audit_events(tenant.id, "token:issued")
    assert [event["target_id"] for event in issued] == [claims["jti"]]


async def test_private_key_jwt_with_authlib_and_pyjwt(
    http: GatewayClient, settings: Settings, noc: tuple[TenantInfo, Person]
) -> None:
    """authlib's PrivateKeyJWT as shipped: audience = the token URL, a fresh jti per request,
    and its default assertion lifetime of one hour."""
    tenant, admin = noc
    key = client_key()
    view = await key_client(admin, key)
    token_url = (await _metadata(http))["token_endpoint"]
    auth = PrivateKeyJWT(token_url, alg="ES256")
    async with _library_client(http, view.client_id, key, auth) as oauth:
        first = await oauth.fetch_token(token_url, grant_type="client_credentials")
        second = await oauth.fetch_token(token_url, grant_type="client_credentials")
        me = await oauth.get(ME)
    assert me.status_code == 200, me.text
    assert me.json()["client_id"] == view.client_id
    jtis = set()
    for token in (first, second):
        _, claims = await _verify_independently(http, settings, token["access_token"])
        _check_claims(claims, settings, tenant, view.client_id)
        jtis.add(claims["jti"])
    assert len(jtis) == 2


async def test_the_token_response_is_not_cached(
    http: GatewayClient, noc: tuple[TenantInfo, Person]
) -> None:
    """RFC 6749 5.1: Cache-Control: no-store on every token response."""
    _, admin = noc
    view, secret = await secret_client(admin)
    response = await http.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(view.client_id, secret)
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"


async def test_authorization_server_metadata(http: GatewayClient, settings: Settings) -> None:
    """RFC 8414: the issuer is ours, every advertised endpoint answers, and what is advertised
    is exactly what the token endpoint does."""
    metadata = await _metadata(http)
    assert metadata["issuer"] == settings.issuer
    assert metadata["token_endpoint"] == f"{settings.issuer}/oauth/token"
    assert metadata["jwks_uri"] == f"{settings.issuer}/.well-known/jwks.json"
    assert metadata["revocation_endpoint"] == f"{settings.issuer}/oauth/revoke"
    assert metadata["introspection_endpoint"] == f"{settings.issuer}/oauth/introspect"
    assert metadata["grant_types_supported"] == ["client_credentials"]
    assert sorted(metadata["token_endpoint_auth_methods_supported"]) == [
        "client_secret_basic",
        "private_key_jwt",
    ]
    assert "none" not in metadata["token_endpoint_auth_signing_alg_values_supported"]
    assert not any(
        alg.startswith("HS") for alg in metadata["token_endpoint_auth_signing_alg_values_supported"]
    )
    assert "partner:read" in metadata["scopes_supported"]
    assert "authorization_endpoint" not in metadata
    jwks = await http.get(_path(metadata["jwks_uri"]))
    assert jwks.status_code == 200
    [published] = jwks.json()["keys"]
    assert published["kty"] == "EC" and published["crv"] == "P-256"
    assert published["alg"] == "ES256" and published["use"] == "sig"
    assert "d" not in published
    for endpoint in ("token_endpoint", "revocation_endpoint", "introspection_endpoint"):
        # each exists and authenticates its caller: no client, no answer
        response = await http.post(_path(metadata[endpoint]), data={"token": "x"})
        assert response.status_code in (400, 401), endpoint
        assert response.json()["error"] in {"invalid_client", "unsupported_grant_type"}


@pytest.mark.parametrize("method", ["client_secret_basic", "private_key_jwt"])
async def test_introspection_and_revocation_with_authlib(
    http: GatewayClient, settings: Settings, noc: tuple[TenantInfo, Person], method: str
) -> None:
    tenant, admin = noc
    metadata = await _metadata(http)
    credential: Any
    auth: Any
    if method == "client_secret_basic":
        view, credential = await secret_client(admin)
        auth = method
    else:
        credential = client_key()
        view = await key_client(admin, credential)
        auth = PrivateKeyJWT(metadata["token_endpoint"], alg="ES256")
    async with _library_client(http, view.client_id, credential, auth) as oauth:
        token = await oauth.fetch_token(metadata["token_endpoint"], grant_type="client_credentials")
        access = token["access_token"]
        _, claims = await _verify_independently(http, settings, access)

        active = await oauth.introspect_token(metadata["introspection_endpoint"], token=access)
        assert active.status_code == 200
        body = active.json()
        assert body["active"] is True
        assert body["token_type"] == "Bearer"
        for name in ("iss", "sub", "aud", "client_id", "iat", "exp", "jti", "scope"):
            assert body[name] == claims[name], name

        revoked = await oauth.revoke_token(metadata["revocation_endpoint"], token=access)
        assert revoked.status_code == 200

        after = await http.get(ME, headers=bearer(access))
        assert after.status_code == 401
        assert after.json()["detail"] == "the token was revoked"
        inactive = await oauth.introspect_token(metadata["introspection_endpoint"], token=access)
        assert inactive.json() == {"active": False}
    [revocation] = await audit_events(tenant.id, "token:revoked")
    assert revocation["target_id"] == claims["jti"][:64]
    assert revocation["outcome"] == "success"


async def test_the_resource_parameter(
    http: GatewayClient, settings: Settings, noc: tuple[TenantInfo, Person]
) -> None:
    """RFC 8707: the partner API's identifier is accepted and becomes `aud`; anything else is
    invalid_target."""
    tenant, admin = noc
    view, secret = await secret_client(admin)
    async with _library_client(http, view.client_id, secret, "client_secret_basic") as oauth:
        token = await oauth.fetch_token(
            settings.token_url, grant_type="client_credentials", resource=settings.api_audience
        )
        _, claims = await _verify_independently(http, settings, token["access_token"])
        assert claims["aud"] == settings.api_audience
        for other in (
            "https://evil.example/api",
            f"{settings.issuer}/api/v1",
            f"{settings.api_audience}/",
        ):
            with pytest.raises(OAuthError) as refused:
                await oauth.fetch_token(
                    settings.token_url, grant_type="client_credentials", resource=other
                )
            assert refused.value.error == "invalid_target"
    assert len(await audit_events(tenant.id, "token:issued")) == 1
    reasons = [event["reason"] for event in await audit_events(tenant.id, "token:refused")]
    assert len(reasons) == 3
    assert all(reason.startswith("invalid_target") for reason in reasons)


async def test_the_password_grant_is_unsupported(
    http: GatewayClient, noc: tuple[TenantInfo, Person]
) -> None:
    tenant, admin = noc
    view, secret = await secret_client(admin)
    response = await http.post(
        "/oauth/token",
        data={"grant_type": "password", "username": admin.email, "password": admin.password},
        auth=(view.client_id, secret),
    )
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"
    [refused] = await audit_events(tenant.id, "token:refused")
    assert refused["reason"] == "unsupported_grant_type"
    assert await audit_events(tenant.id, "token:issued") == []


async def test_a_client_outside_its_networks_gets_invalid_client(
    settings: Settings, noc: tuple[TenantInfo, Person]
) -> None:
    """The library's request comes from 127.0.0.1; the client only allows 203.0.113.0/24."""
    tenant, admin = noc
    view, secret = await secret_client(admin, networks=["203.0.113.0/24"])
    async with gateway(settings) as http:
        async with _library_client(http, view.client_id, secret, "client_secret_basic") as oauth:
            with pytest.raises(OAuthError) as refused:
                await oauth.fetch_token(settings.token_url, grant_type="client_credentials")
        assert refused.value.error == "invalid_client"
    [event] = await audit_events(tenant.id, "token:refused")
    assert event["reason"] == "invalid_client: the request comes from outside the client's networks"
    assert event["source_address"] == "127.0.0.1"

    allowed, allowed_secret = await secret_client(admin, networks=["127.0.0.0/8"])
    async with (
        gateway(settings) as http,
        _library_client(http, allowed.client_id, allowed_secret, "client_secret_basic") as oauth,
    ):
        token = await oauth.fetch_token(settings.token_url, grant_type="client_credentials")
        assert (await oauth.get(ME)).status_code == 200
    assert token["access_token"]


async def test_a_key_unknown_to_the_gateway_gets_no_token(
    http: GatewayClient, settings: Settings, noc: tuple[TenantInfo, Person]
) -> None:
    """The library signs with a key the NOC never registered (same kid): invalid_client."""
    tenant, admin = noc
    registered = client_key()
    view = await key_client(admin, registered)
    impostor = ECKey.generate_key("P-256", parameters={"kid": registered.kid})
    auth = PrivateKeyJWT(settings.token_url, alg="ES256")
    async with _library_client(http, view.client_id, impostor, auth) as oauth:
        with pytest.raises(OAuthError) as refused:
            await oauth.fetch_token(settings.token_url, grant_type="client_credentials")
    assert refused.value.error == "invalid_client"
    assert len(await audit_events(tenant.id, "token:refused")) == 1
    assert await audit_events(tenant.id, "token:issued") == []
