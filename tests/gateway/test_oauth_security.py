"""Regressions of partner-token security: every forged, stale or misplaced token is refused with
401 at the partner API and leaves a `token:rejected` event; every refusal at `/oauth/token`
leaves a `token:refused` event; tenants never reach each other's tokens.

Tokens with a bad claim are signed here with the gateway's real signing key, so the signature
is never the reason; the `issued_tokens` row is written to match, so the database is not either.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from gateway.settings import Settings
from tenants.roles import PLATFORM_TENANT_ID, Role
from tenants.service import TenantInfo
from tenants.tables import IssuedToken, OAuthClient
from tests.helpers import (
    GatewayClient,
    Person,
    access_token,
    api_token,
    assertion_form,
    audit_events,
    bearer,
    client_assertion,
    client_key,
    csrf_header,
    gateway,
    key_client,
    make_person,
    make_tenant,
    request_token,
    secret_client,
    session_for,
)

ME = "/api/v1/partner/me"


@dataclass(frozen=True)
class Noc:
    tenant: TenantInfo
    admin: Person
    client_pk: uuid.UUID
    client_id: str
    secret: str


async def _make_noc(**client_options: Any) -> Noc:
    tenant = await make_tenant("noc")
    admin = await make_person(tenant, Role.ADMIN)
    view, secret = await secret_client(admin, **client_options)
    return Noc(tenant, admin, view.id, view.client_id, secret)


@pytest.fixture
async def noc(db: object) -> Noc:
    return await _make_noc()


@pytest.fixture
async def http(settings: Settings, db: object) -> Any:
    async with gateway(settings) as client:
        yield client


# --- building tokens by hand -------------------------------------------------------------------


def _segment(value: dict[str, Any]) -> str:
    raw = json.dumps(value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _claims(settings: Settings, noc: Noc, **changes: Any) -> dict[str, Any]:
    """What the gateway itself would put in a token of `noc`'s client, with `changes`."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": settings.issuer,
        "sub": noc.client_id,
        "aud": settings.api_audience,
        "client_id": noc.client_id,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": secrets.token_urlsafe(24),
        "scope": "partner:read",
        "tenant_id": str(noc.tenant.id),
    }
    claims.update(changes)
    return claims


async def _signed_and_recorded(
    http: GatewayClient, noc: Noc, claims: dict[str, Any], **header: Any
) -> str:
    """`claims` signed with the gateway's current key, and a matching `issued_tokens` row."""
    kid, key = await http.app.state.signer.signing_key()
    await IssuedToken.insert(
        IssuedToken(
            jti=claims["jti"],
            tenant_id=noc.tenant.id,
            oauth_client_id=noc.client_pk,
            scope=claims["scope"],
            issued_at=datetime.fromtimestamp(claims["iat"], UTC),
            expires_at=datetime.fromtimestamp(claims["exp"], UTC),
        )
    )
    return jwt.encode({"alg": "ES256", "typ": "at+jwt", "kid": kid, **header}, claims, key)


async def _rejected_once(http: GatewayClient, token: str, chain: uuid.UUID) -> dict[str, Any]:
    """GET /me with `token`: a 401 and exactly one new `token:rejected` event in `chain`.

    Returns the event; its reason is also the `detail` of the 401.
    """
    before = len(await audit_events(chain, "token:rejected"))
    response = await http.get(ME, headers=bearer(token))
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    events = await audit_events(chain, "token:rejected")
    assert len(events) == before + 1, "the refusal was not audited in the expected chain"
    event = events[-1]
    assert event["outcome"] == "denied"
    assert event["source_address"] == "127.0.0.1"
    assert response.json()["detail"] == event["reason"]
    return event


async def _refused_once(
    response_call: Any, chain: uuid.UUID
) -> tuple[httpx.Response, dict[str, Any]]:
    """Run a /oauth/token request: exactly one new `token:refused` event in `chain`."""
    before = len(await audit_events(chain, "token:refused"))
    response: httpx.Response = await response_call
    events = await audit_events(chain, "token:refused")
    assert len(events) == before + 1, (response.status_code, response.text)
    assert events[-1]["outcome"] == "denied"
    return response, events[-1]


async def test_a_hand_signed_token_with_the_real_key_is_accepted(
    http: GatewayClient, settings: Settings, noc: Noc
) -> None:
    """The control for the claim tests below: the hand-made token is right in all but one way."""
    token = await _signed_and_recorded(http, noc, _claims(settings, noc))
    response = await http.get(ME, headers=bearer(token))
    assert response.status_code == 200, response.text
    assert response.json()["client_id"] == noc.client_id


# --- tokens the gateway cannot verify: refused, audited in the platform chain -------------------


async def test_alg_none_is_refused(http: GatewayClient, settings: Settings, noc: Noc) -> None:
    kid, _ = await http.app.state.signer.signing_key()
    header = {"alg": "none", "typ": "at+jwt", "kid": kid}
    token = f"{_segment(header)}.{_segment(_claims(settings, noc))}."
    event = await _rejected_once(http, token, PLATFORM_TENANT_ID)
    assert event["reason"] == "algorithm 'none' is not accepted"


async def test_hs256_keyed_with_the_public_key_is_refused(
    http: GatewayClient, settings: Settings, noc: Noc
) -> None:
    """The key-confusion attack: HMAC with the published public key (PEM, then JWK JSON)."""
    jwks = (await http.get("/.well-known/jwks.json")).json()
    published = jwks["keys"][0]
    public = ECKey.import_key(published)
    header = {"alg": "HS256", "typ": "at+jwt", "kid": published["kid"]}
    signing_input = f"{_segment(header)}.{_segment(_claims(settings, noc))}"
    for secret in (public.as_pem(private=False), json.dumps(published).encode()):
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        token = f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
        event = await _rejected_once(http, token, PLATFORM_TENANT_ID)
        assert event["reason"] == "algorithm 'HS256' is not accepted"


async def test_a_token_carrying_its_own_jwk_is_refused(
    http: GatewayClient, settings: Settings, noc: Noc
) -> None:
    kid, _ = await http.app.state.signer.signing_key()
    attacker = ECKey.generate_key("P-256", parameters={"kid": kid})
    header = {"alg": "ES256", "typ": "at+jwt", "kid": kid, "jwk": attacker.as_dict(private=False)}
    token = jwt.encode(header, _claims(settings, noc), attacker)
    event = await _rejected_once(http, token, PLATFORM_TENANT_ID)
    assert "may not name their own keys" in event["reason"]


async def test_a_token_pointing_at_a_jku_is_refused(
    http: GatewayClient, settings: Settings, noc: Noc
) -> None:
    kid, _ = await http.app.state.signer.signing_key()
    attacker = ECKey.generate_key("P-256", parameters={"kid": kid})
    header = {"alg": "ES256", "typ": "at+jwt", "kid": kid, "jku": "https://evil.example/jwks"}
    token = jwt.encode(header, _claims(settings, noc), attacker)
    event = await _rejected_once(http, token, PLATFORM_TENANT_ID)
    assert "may not name their own keys" in event["reason"]


async def test_a_token_signed_by_another_key_is_refused(
    http: GatewayClient, settings: Settings, noc: Noc
) -> None:
    """Another key under the gateway's own kid, then under a kid of its own."""
    kid, _ = await http.app.state.signer.signing_key()
    attacker = ECKey.generate_key("P-256")
    claims = _claims(settings, noc)
    same_kid = jwt.encode({"alg": "ES256", "typ": "at+jwt", "kid": kid}, claims, attacker)
    event = await _rejected_once(http, same_kid, PLATFORM_TENANT_ID)
    assert event["reason"].startswith("the signature does not verify")
    own_kid = jwt.encode({"alg": "ES256", "typ": "at+jwt", "kid": "evil-1"}, claims, attacker)
    event = await _rejected_once(http, own_kid, PLATFORM_TENANT_ID)
    assert event["reason"] == "the token is signed by an unknown key"


async def test_a_token_accepted_once_does_not_vouch_for_an_altered_copy(
    http: GatewayClient, settings: Settings, noc: Noc
) -> None:
    """Verified signatures are remembered by the token's exact text: a copy with another payload
    under the same signature is verified again, and refused."""
    token = await _signed_and_recorded(http, noc, _claims(settings, noc))
    assert (await http.get(ME, headers=bearer(token))).status_code == 200
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["scope"] = "partner:read partner:notes"
    altered = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    event = await _rejected_once(http, f"{header}.{altered}.{signature}", PLATFORM_TENANT_ID)
    assert event["reason"].startswith("the signature does not verify")
    assert (await http.get(ME, headers=bearer(token))).status_code == 200


async def test_a_64_kb_token_is_refused_before_parsing(
    http: GatewayClient, settings: Settings, noc: Noc
) -> None:
    """Signed with the real key and known to the database: only its size is wrong."""
    claims = _claims(settings, noc, padding="x" * 64 * 1024)
    token = await _signed_and_recorded(http, noc, claims)
    assert len(token) > 64 * 1024
    event = await _rejected_once(http, token, PLATFORM_TENANT_ID)
    assert event["reason"] == "the token is too large"


@pytest.mark.parametrize("typ", ["JWT", "at+JWT ", None])
async def test_a_token_of_another_type_is_refused(
    http: GatewayClient, settings: Settings, noc: Noc, typ: str | None
) -> None:
    """RFC 9068 4: `typ` must say at+jwt; a missing `typ` is no excuse (authlib skips it)."""
    kid, key = await http.app.state.signer.signing_key()
    header: dict[str, Any] = {"alg": "ES256", "kid": kid}
    if typ is not None:
        header["typ"] = typ
    token = jwt.encode(header, _claims(settings, noc), key)
    event = await _rejected_once(http, token, PLATFORM_TENANT_ID)
    assert event["reason"] == "the token is not an access token (typ must be at+jwt)"


async def test_an_msp_session_or_api_token_cannot_call_the_partner_api(
    http: GatewayClient, settings: Settings, noc: Noc
) -> None:
    msp = await make_tenant("msp")
    admin = await make_person(msp, Role.ADMIN)
    await session_for(http, admin)
    assert (await http.get("/api/v1/me")).status_code == 200  # the session itself works
    refused = await http.get(ME)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    http.cookies = httpx.Cookies()
    secret = await api_token(admin)
    assert (await http.get("/api/v1/me", headers=bearer(secret))).status_code == 200
    event = await _rejected_once(http, secret, PLATFORM_TENANT_ID)
    assert event["reason"] == "the token is not a signed JWT"


async def test_a_partner_token_cannot_call_msp_endpoints(
    http: GatewayClient, settings: Settings, noc: Noc
) -> None:
    token = await access_token(http, noc.client_id, noc.secret)
    assert (await http.get(ME, headers=bearer(token))).status_code == 200
    for path in ("/api/v1/me", "/api/v1/partnerships", "/api/v1/oauth-clients"):
        response = await http.get(path, headers=bearer(token))
        assert response.status_code == 401, (path, response.text)
    response = await http.post(
        "/api/v1/partnerships", json={"noc": noc.tenant.slug}, headers=bearer(token)
    )
    assert response.status_code == 401


# --- signed by the gateway but not acceptable: refused, audited in the NOC's chain --------------


async def test_an_expired_token_is_refused(
    http: GatewayClient, settings: Settings, noc: Noc
) -> None:
    now = int(time.time())
    claims = _claims(settings, noc, iat=now - 900, nbf=now - 900, exp=now - 300)
    token = await _signed_and_recorded(http, noc, claims)
    event = await _rejected_once(http, token, noc.tenant.id)
    assert event["reason"] == "the token has expired"
    assert event["actor_label"] == noc.client_id


async def test_a_token_not_valid_yet_is_refused(
    http: GatewayClient, settings: Settings, noc: Noc
) -> None:
    now = int(time.time())
    token = await _signed_and_recorded(http, noc, _claims(settings, noc, nbf=now + 300))
    event = await _rejected_once(http, token, noc.tenant.id)
    assert event["reason"] == "the token is not valid yet (nbf)"


@pytest.mark.parametrize(
    ("claim", "value", "reason"),
    [
        ("aud", "http://127.0.0.1:8000/api/v1/other", "the token is for another audience"),
        ("aud", ["https://api.example.com"], "the token is for another audience"),
        ("iss", "https://evil.example", "the token comes from another issuer"),
        ("iss", "http://127.0.0.1:8000/", "the token comes from another issuer"),
    ],
)
async def test_a_token_for_another_audience_or_from_another_issuer_is_refused(
    http: GatewayClient, settings: Settings, noc: Noc, claim: str, value: Any, reason: str
) -> None:
    token = await _signed_and_recorded(http, noc, _claims(settings, noc, **{claim: value}))
    event = await _rejected_once(http, token, noc.tenant.id)
    assert event["reason"] == reason


async def test_a_revoked_token_is_refused_at_once(http: GatewayClient, noc: Noc) -> None:
    token = await access_token(http, noc.client_id, noc.secret)
    assert (await http.get(ME, headers=bearer(token))).status_code == 200
    revoked = await http.post(
        "/oauth/revoke", data={"token": token}, auth=(noc.client_id, noc.secret)
    )
    assert revoked.status_code == 200
    event = await _rejected_once(http, token, noc.tenant.id)
    assert event["reason"] == "the token was revoked"
    assert event["actor_label"] == noc.client_id
    row = await IssuedToken.select(IssuedToken.revoked_at).first()
    assert row is not None and row["revoked_at"] is not None


async def test_a_disabled_clients_tokens_are_refused(http: GatewayClient, noc: Noc) -> None:
    token = await access_token(http, noc.client_id, noc.secret)
    assert (await http.get(ME, headers=bearer(token))).status_code == 200
    await session_for(http, noc.admin)
    disabled = await http.post(
        f"/api/v1/oauth-clients/{noc.client_pk}/disable", headers=csrf_header(http)
    )
    assert disabled.status_code == 200, disabled.text
    assert disabled.json()["disabled_at"] is not None
    http.cookies = httpx.Cookies()
    event = await _rejected_once(http, token, noc.tenant.id)
    assert event["reason"] == "the client is disabled"
    response, refused = await _refused_once(
        request_token(http, noc.client_id, noc.secret), noc.tenant.id
    )
    assert response.status_code in (400, 401)
    assert response.json()["error"] == "invalid_client"
    assert refused["reason"] == "invalid_client: the client is disabled"


async def test_a_token_used_from_outside_the_clients_networks_is_refused(
    http: GatewayClient, noc: Noc
) -> None:
    """Issued while the client had no networks; the NOC then narrowed them."""
    token = await access_token(http, noc.client_id, noc.secret)
    await OAuthClient.update({OAuthClient.networks: ["203.0.113.0/24"]}).where(
        OAuthClient.id == noc.client_pk
    )
    event = await _rejected_once(http, token, noc.tenant.id)
    assert event["reason"] == "the request comes from outside the client's networks"


async def test_a_token_of_an_unknown_jti_is_refused(
    http: GatewayClient, settings: Settings, noc: Noc
) -> None:
    """Signed with the real key but never issued (no `issued_tokens` row): nothing vouches for
    its tenant claim, so the platform chain records it."""
    kid, key = await http.app.state.signer.signing_key()
    token = jwt.encode({"alg": "ES256", "typ": "at+jwt", "kid": kid}, _claims(settings, noc), key)
    event = await _rejected_once(http, token, PLATFORM_TENANT_ID)
    assert event["reason"] == "the token is not known to this server"
    assert await audit_events(noc.tenant.id, "token:rejected") == []


# --- the token endpoint: client assertions, networks, rate limits --------------------------------


@pytest.fixture
async def key_noc(db: object) -> tuple[Noc, ECKey]:
    noc = await _make_noc()
    key = client_key()
    view = await key_client(noc.admin, key)
    return Noc(noc.tenant, noc.admin, view.id, view.client_id, ""), key


async def test_a_replayed_client_assertion_is_refused(
    http: GatewayClient, settings: Settings, key_noc: tuple[Noc, ECKey]
) -> None:
    noc, key = key_noc
    assertion = client_assertion(noc.client_id, key, audience=settings.issuer)
    first = await http.post("/oauth/token", data=assertion_form(assertion))
    assert first.status_code == 200, first.text
    response, event = await _refused_once(
        http.post("/oauth/token", data=assertion_form(assertion)), noc.tenant.id
    )
    assert response.status_code in (400, 401)
    assert response.json()["error"] == "invalid_client"
    assert "used before" in event["reason"]
    assert await IssuedToken.count() == 1


async def test_a_client_assertion_replayed_concurrently_gets_one_token(
    http: GatewayClient, settings: Settings, key_noc: tuple[Noc, ECKey]
) -> None:
    noc, key = key_noc
    assertion = client_assertion(noc.client_id, key, audience=settings.issuer)
    responses = await asyncio.gather(
        *(http.post("/oauth/token", data=assertion_form(assertion)) for _ in range(4))
    )
    assert sorted(r.status_code for r in responses) == [200, 400, 400, 400]
    assert {r.json().get("error") for r in responses if r.status_code != 200} == {"invalid_client"}
    assert await IssuedToken.count() == 1
    assert len(await audit_events(noc.tenant.id, "token:refused")) == 3


@pytest.mark.parametrize(
    "audience",
    ["https://other-as.example/oauth/token", "http://127.0.0.1:8000/api/v1/partner"],
)
async def test_a_client_assertion_for_another_audience_is_refused(
    http: GatewayClient, key_noc: tuple[Noc, ECKey], audience: str
) -> None:
    noc, key = key_noc
    assertion = client_assertion(noc.client_id, key, audience=audience)
    response, event = await _refused_once(
        http.post("/oauth/token", data=assertion_form(assertion)), noc.tenant.id
    )
    assert response.status_code in (400, 401)
    assert response.json()["error"] == "invalid_client"
    assert "aud" in event["reason"]


async def test_a_client_assertion_older_than_five_minutes_is_refused(
    http: GatewayClient, settings: Settings, key_noc: tuple[Noc, ECKey]
) -> None:
    noc, key = key_noc
    now = int(time.time())
    assertion = client_assertion(
        noc.client_id, key, audience=settings.issuer, iat=now - 600, exp=now + 60
    )
    response, event = await _refused_once(
        http.post("/oauth/token", data=assertion_form(assertion)), noc.tenant.id
    )
    assert response.status_code in (400, 401)
    assert response.json()["error"] == "invalid_client"
    assert event["reason"] == "invalid_client: the client assertion is too old (iat)"


async def test_a_client_assertion_may_live_an_hour_but_not_longer(
    http: GatewayClient, settings: Settings, key_noc: tuple[Noc, ECKey]
) -> None:
    """An hour is what common client libraries sign for; its replay is refused all the same."""
    noc, key = key_noc
    now = int(time.time())
    hour = client_assertion(noc.client_id, key, audience=settings.token_url, exp=now + 3600)
    assert (await http.post("/oauth/token", data=assertion_form(hour))).status_code == 200
    replayed = await http.post("/oauth/token", data=assertion_form(hour))
    assert replayed.json()["error"] == "invalid_client"
    longer = client_assertion(noc.client_id, key, audience=settings.issuer, exp=now + 3700)
    response, event = await _refused_once(
        http.post("/oauth/token", data=assertion_form(longer)), noc.tenant.id
    )
    assert response.json()["error"] == "invalid_client"
    assert event["reason"] == "invalid_client: the client assertion lives too long (exp)"
    assert await IssuedToken.count() == 1


async def test_forged_client_assertions_are_refused(
    http: GatewayClient, settings: Settings, key_noc: tuple[Noc, ECKey]
) -> None:
    """Signed by another key under the client's kid; `alg: none`; HS256 keyed with the public
    JWK. Each is refused and audited, and none leaves a token behind."""
    noc, key = key_noc
    claims = {
        "iss": noc.client_id,
        "sub": noc.client_id,
        "aud": settings.issuer,
        "iat": int(time.time()),
        "exp": int(time.time()) + 60,
    }
    other = ECKey.generate_key("P-256", parameters={"kid": key.kid})
    public = json.dumps(key.as_dict(private=False)).encode()
    forged = [client_assertion(noc.client_id, other, audience=settings.issuer)]
    for alg in ("none", "HS256"):
        payload = {**claims, "jti": secrets.token_urlsafe(8)}
        signing_input = f"{_segment({'alg': alg, 'kid': key.kid})}.{_segment(payload)}"
        mac = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
        signature = "" if alg == "none" else base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
        forged.append(f"{signing_input}.{signature}")
    for assertion in forged:
        response, _ = await _refused_once(
            http.post("/oauth/token", data=assertion_form(assertion)), noc.tenant.id
        )
        assert response.status_code in (400, 401), response.text
        assert response.json()["error"] == "invalid_client"
    assert await IssuedToken.count() == 0


async def test_a_token_request_from_outside_the_clients_networks_is_refused(
    settings: Settings, db: object
) -> None:
    noc = await _make_noc(networks=["203.0.113.0/24"])
    async with gateway(settings) as http:
        response, event = await _refused_once(
            request_token(http, noc.client_id, noc.secret), noc.tenant.id
        )
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_client"
        assert event["reason"] == (
            "invalid_client: the request comes from outside the client's networks"
        )
    async with gateway(settings, address="203.0.113.9") as inside:
        token = await access_token(inside, noc.client_id, noc.secret)
        assert (await inside.get(ME, headers=bearer(token))).status_code == 200


async def test_the_fourth_token_request_in_a_minute_is_throttled(
    settings: Settings, db: object
) -> None:
    noc = await _make_noc()
    async with gateway(settings, token_rate_per_client=3) as http:
        for _ in range(3):
            assert (await request_token(http, noc.client_id, noc.secret)).status_code == 200
        response, event = await _refused_once(
            request_token(http, noc.client_id, noc.secret), noc.tenant.id
        )
        assert response.status_code == 429
        assert response.headers["retry-after"] == "60"
        assert response.json()["error"] == "slow_down"
        assert event["reason"] == "rate limit (client)"
        assert event["actor_label"] == noc.client_id
        assert await IssuedToken.count() == 3


async def test_one_address_is_throttled_whatever_clients_it_names(
    settings: Settings, db: object
) -> None:
    first, second = await _make_noc(), await _make_noc()
    async with gateway(settings, token_rate_per_address=3) as http:
        for noc in (first, second, first):
            assert (await request_token(http, noc.client_id, noc.secret)).status_code == 200
        response, event = await _refused_once(
            request_token(http, second.client_id, second.secret), PLATFORM_TENANT_ID
        )
        assert response.status_code == 429
        assert response.headers["retry-after"] == "60"
        assert event["reason"] == "rate limit (source address)"
        assert event["source_address"] == "127.0.0.1"
        async with GatewayClient(http.app, "198.51.100.4") as elsewhere:  # its own budget
            response = await request_token(elsewhere, second.client_id, second.secret)
            assert response.status_code == 200


async def test_requests_that_fail_authentication_do_not_use_up_a_clients_budget(
    settings: Settings, db: object
) -> None:
    """A client_id is no secret (it is in every token): naming it with a wrong secret must not
    lock the real client out of its tokens."""
    noc = await _make_noc()
    async with gateway(settings, token_rate_per_client=3) as http:
        for _ in range(5):
            wrong = await request_token(http, noc.client_id, "sgs_wrong")
            assert wrong.status_code == 401
        response = await request_token(http, noc.client_id, noc.secret)
        assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("form", "auth", "error"),
    [
        ({"grant_type": "client_credentials"}, "wrong-secret", "invalid_client"),
        (
            {"grant_type": "password", "username": "a", "password": "b"},
            None,
            "unsupported_grant_type",
        ),
        (
            {"grant_type": "client_credentials", "resource": "https://evil.example"},
            None,
            "invalid_target",
        ),
        ({"grant_type": "client_credentials", "scope": "grant:not-a-uuid"}, None, "invalid_scope"),
        ({"scope": "partner:read"}, None, "unsupported_grant_type"),
    ],
)
async def test_every_refusal_at_the_token_endpoint_is_audited(
    http: GatewayClient,
    noc: Noc,
    form: dict[str, str],
    auth: str | None,
    error: str,
) -> None:
    secret = auth or noc.secret
    response, event = await _refused_once(
        http.post("/oauth/token", data=form, auth=(noc.client_id, secret)), noc.tenant.id
    )
    assert 400 <= response.status_code < 500
    assert response.json()["error"] == error
    assert event["reason"].startswith(error)
    assert event["actor_label"] == noc.client_id


@pytest.mark.parametrize(
    ("request_kwargs", "error"),
    [
        (
            {"data": {"grant_type": "client_credentials"}, "auth": ("sgc_nobody", "x")},
            "invalid_client",
        ),
        ({"data": {"grant_type": "client_credentials"}}, "invalid_client"),
        ({"json": {"grant_type": "client_credentials"}}, "invalid_request"),
        (
            {
                "content": b"grant_type=client_credentials&grant_type=password",
                "headers": {"content-type": "application/x-www-form-urlencoded"},
            },
            "invalid_request",
        ),
    ],
)
async def test_refusals_of_unknown_callers_are_audited_in_the_platform_chain(
    http: GatewayClient, db: object, request_kwargs: dict[str, Any], error: str
) -> None:
    response, _ = await _refused_once(
        http.post("/oauth/token", **request_kwargs), PLATFORM_TENANT_ID
    )
    assert 400 <= response.status_code < 500
    assert response.json()["error"] == error


async def test_a_token_never_carries_a_scope_the_client_was_not_given(
    http: GatewayClient, noc: Noc
) -> None:
    # asking for more than the client has narrows the token to what it has ...
    asked = "partner:read partner:break_glass partner:notes"
    response = await request_token(http, noc.client_id, noc.secret, scope=asked)
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    introspected = await http.post(
        "/oauth/introspect", data={"token": token}, auth=(noc.client_id, noc.secret)
    )
    assert introspected.json()["scope"].split() == ["partner:read"]
    # ... and asking only for what it lacks gets no token at all
    refused = await request_token(http, noc.client_id, noc.secret, scope="partner:break_glass")
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_scope"


# --- tenants never reach each other's tokens ------------------------------------------------------


async def test_a_client_cannot_introspect_or_revoke_another_nocs_token(
    http: GatewayClient, noc: Noc
) -> None:
    other = await _make_noc()
    theirs = await access_token(http, other.client_id, other.secret)
    introspected = await http.post(
        "/oauth/introspect", data={"token": theirs}, auth=(noc.client_id, noc.secret)
    )
    assert introspected.status_code == 200
    assert introspected.json() == {"active": False}
    response, event = await _refused_once(
        http.post("/oauth/revoke", data={"token": theirs}, auth=(noc.client_id, noc.secret)),
        noc.tenant.id,
    )
    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"
    assert event["reason"] == "revoke: foreign token"
    still = await http.get(ME, headers=bearer(theirs))
    assert still.status_code == 200
    assert still.json()["tenant_id"] == str(other.tenant.id)
    assert await audit_events(other.tenant.id, "token:revoked") == []
    assert (await IssuedToken.select(IssuedToken.revoked_at)) == [
        {"revoked_at": None},
    ]
