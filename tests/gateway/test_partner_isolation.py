"""Cross-tenant matrix over every handoff and partner endpoint: whoever calls from outside a grant
(another MSP, another NOC, the same NOC after the grant ended or with the wrong token) gets a
clear refusal, never a byte of content, and every read attempt is on the record."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from sharing.clock import ManualClock
from sharing.tables import AuditEvent, Grant, GrantExtension, RotationItem
from tenants.roles import PLATFORM_TENANT_ID
from tests.helpers import (
    NOC_SCOPES,
    PUBLIC_ORIGIN,
    STORY_START,
    AppClient,
    MspSide,
    NocSide,
    api_token,
    bearer,
    csrf_header,
    grant_token,
    hand_off,
    make_msp_side,
    make_noc_side,
    partner_up,
    request_token,
    served_at,
    sign_in,
)

SHIFT_END = datetime(2026, 12, 28, 7, 0, tzinfo=UTC)
REASON = "PSA-4411: console password needed to restore the uplinks"
IN_SCOPE_TITLES = (
    "Contoso Hamburg network",
    "HH-CORE-1 switch configuration",
    "Core switch outage",
    "HH-CORE-1 admin",
)


@dataclass
class Scene:
    """Northwind (`msp`) hands PSA-4411 (`grant`) and PSA-4412 (`other_grant`) to `noc`, and
    PSA-4413 to `other_noc`; `other_msp` is a stranger with documents of its own. The grant has
    a pending extension request and a credential on the rotation list."""

    http: AppClient
    clock: ManualClock
    msp: MspSide
    noc: NocSide
    other_noc: NocSide
    other_msp: MspSide
    handoff: str
    grant: str
    other_grant: str
    extension: str
    rotation_item: str
    tokens: dict[str, str] = field(default_factory=dict)
    cleanups: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    def forbidden_strings(self) -> list[str]:
        """What must never reach an outsider: every body, password, summary, title."""
        return [self.msp.marker, self.other_msp.marker, *IN_SCOPE_TITLES]

    def chains(self) -> dict[str, uuid.UUID]:
        return {
            "msp": self.msp.tenant.id,
            "noc": self.noc.tenant.id,
            "other_noc": self.other_noc.tenant.id,
            "other_msp": self.other_msp.tenant.id,
            "platform": PLATFORM_TENANT_ID,
        }


@pytest.fixture
async def scene(settings, db) -> AsyncIterator[Scene]:
    clock = ManualClock(STORY_START)
    async with served_at(settings, clock) as http:
        msp, other_msp = await make_msp_side(http), await make_msp_side(http)
        noc, other_noc = await make_noc_side(), await make_noc_side()
        await partner_up(msp, noc)
        await partner_up(msp, other_noc)
        made = await hand_off(http, msp, noc)
        other = await hand_off(http, msp, noc, psa_reference="PSA-4412")
        theirs = await hand_off(http, msp, other_noc, psa_reference="PSA-4413")
        grant = made["grant"]["id"]
        tokens = {
            "grant": await grant_token(http, noc, grant),
            "other_grant": await grant_token(http, noc, other["grant"]["id"]),
            "other_noc": await grant_token(http, other_noc, theirs["grant"]["id"]),
        }
        unbound = await request_token(http, noc.client_id, noc.secret, scope=" ".join(NOC_SCOPES))
        tokens["unbound"] = unbound.json()["access_token"]
        tokens["msp_api"] = msp.token
        tokens["other_msp_api"] = other_msp.token
        tokens["noc_api"] = await api_token(noc.admin)
        revealed = await http.get(
            f"/api/v1/partner/grants/{grant}/documents/{msp.documents['credential']}",
            headers={**bearer(tokens["grant"]), "X-Break-Glass-Reason": REASON},
        )
        assert revealed.status_code == 200, revealed.text
        asked = await http.post(
            f"/api/v1/partner/grants/{grant}/extension-requests",
            json={"reason": "vendor RMA arrives at 10:00"},
            headers=bearer(tokens["grant"]),
        )
        assert asked.status_code == 201, asked.text
        [rotation] = (await http.get("/api/v1/rotation-list", headers=msp.headers)).json()
        built = Scene(
            http=http,
            clock=clock,
            msp=msp,
            noc=noc,
            other_noc=other_noc,
            other_msp=other_msp,
            handoff=made["id"],
            grant=grant,
            other_grant=other["grant"]["id"],
            extension=asked.json()["id"],
            rotation_item=rotation["id"],
            tokens=tokens,
        )
        yield built
        for cleanup in built.cleanups:
            await cleanup()


@dataclass(frozen=True)
class Caller:
    """How a request is sent: a client (with its cookies) and headers for reads and writes."""

    http: AppClient
    headers: dict[str, str]
    write_headers: dict[str, str]


async def _token_caller(scene: Scene, name: str) -> Caller:
    headers = bearer(scene.tokens[name])
    return Caller(scene.http, headers, headers)


async def _session_caller(scene: Scene) -> Caller:
    browser = AppClient(scene.http.app, PUBLIC_ORIGIN)
    await sign_in(browser, scene.other_msp.admin)
    return Caller(browser, {}, csrf_header(browser))


async def _expired(scene: Scene) -> Caller:
    scene.clock.set(SHIFT_END)
    return await _token_caller(scene, "grant")


async def _revoked(scene: Scene) -> Caller:
    response = await scene.http.post(
        f"/api/v1/grants/{scene.grant}/revoke",
        json={"reason": "handed to the wrong NOC"},
        headers=scene.msp.headers,
    )
    assert response.status_code == 200, response.text
    return await _token_caller(scene, "grant")


# --- The MSP side: /api/v1 handoffs, grants, extensions, rotation list, schedule, rules -------

# name -> (method, path, JSON body)
MSP_ENDPOINTS: dict[str, tuple[str, str, dict[str, Any] | None]] = {
    "get-handoff": ("GET", "/api/v1/handoffs/{handoff}", None),
    "list-grants": ("GET", "/api/v1/grants", None),
    "list-live-grants": ("GET", "/api/v1/grants?live_only=true", None),
    "revoke": ("POST", "/api/v1/grants/{grant}/revoke", {"reason": "not yours"}),
    "complete": ("POST", "/api/v1/grants/{grant}/complete", None),
    "approve": (
        "POST",
        "/api/v1/extension-requests/{extension}/approve",
        {"new_ends_at": "2026-12-28T09:00:00Z"},
    ),
    "decline": ("POST", "/api/v1/extension-requests/{extension}/decline", None),
    "rotation-list": ("GET", "/api/v1/rotation-list?include_rotated=true", None),
    "mark-rotated": ("POST", "/api/v1/rotation-list/{rotation_item}/rotated", None),
    "get-schedule": ("GET", "/api/v1/schedule", None),
    "set-schedule": (
        "PUT",
        "/api/v1/schedule",
        {"hours": {"time_zone": "America/New_York", "weekly": {"mon": [["09:00", "17:00"]]}}},
    ),
    "get-rules": ("GET", "/api/v1/rules", None),
    "set-rules": ("PUT", "/api/v1/rules", {"reads_per_minute": 7}),
}
_STRANGER = {
    "get-handoff": 404,
    "list-grants": 200,
    "list-live-grants": 200,
    "revoke": 404,
    "complete": 404,
    "approve": 404,
    "decline": 404,
    "rotation-list": 200,
    "mark-rotated": 404,
    "get-schedule": 200,  # its own
    "set-schedule": 200,
    "get-rules": 200,
    "set-rules": 200,
}
MSP_CALLERS: dict[str, tuple[Callable[[Scene], Any], dict[str, int]]] = {
    "other-msp-token": (lambda scene: _token_caller(scene, "other_msp_api"), _STRANGER),
    "other-msp-admin-session": (_session_caller, _STRANGER),
    "noc-oauth-token": (
        lambda scene: _token_caller(scene, "grant"),
        dict.fromkeys(MSP_ENDPOINTS, 401),
    ),
    "noc-api-token": (
        lambda scene: _token_caller(scene, "noc_api"),
        {
            **dict.fromkeys(MSP_ENDPOINTS, 403),  # not an MSP
            "rotation-list": 200,  # its own, empty
            "mark-rotated": 404,
        },
    ),
}


@pytest.mark.parametrize("who", list(MSP_CALLERS))
async def test_msp_endpoints_serve_nothing_of_another_tenant(scene: Scene, who: str) -> None:
    make_caller, expected = MSP_CALLERS[who]
    caller: Caller = await make_caller(scene)
    if caller.http is not scene.http:
        scene.cleanups.append(caller.http.aclose)
    ids = {
        "handoff": scene.handoff,
        "grant": scene.grant,
        "extension": scene.extension,
        "rotation_item": scene.rotation_item,
    }
    outcomes = {}
    for name, (method, path, body) in MSP_ENDPOINTS.items():
        headers = caller.headers if method == "GET" else caller.write_headers
        response = await caller.http.request(method, path.format(**ids), json=body, headers=headers)
        outcomes[name] = response.status_code
        leaked = [s for s in [*scene.forbidden_strings(), *ids.values()] if s in response.text]
        assert leaked == [], (name, response.text)
        if response.status_code >= 400:
            assert response.headers["content-type"].startswith("application/problem+json")
    assert outcomes == expected

    # Northwind's objects are as they were; what a stranger set, it set for itself only.
    grant = await Grant.select(Grant.status).where(Grant.id == uuid.UUID(scene.grant)).first()
    assert grant == {"status": "active"}
    extension = await GrantExtension.select(GrantExtension.status).first()
    assert extension == {"status": "pending"}
    assert await RotationItem.count().where(RotationItem.rotated_at.is_null()) == 1
    own = scene.msp.headers
    assert (await scene.http.get("/api/v1/schedule", headers=own)).json()["hours"][
        "time_zone"
    ] == "Europe/Berlin"
    assert (await scene.http.get("/api/v1/rules", headers=own)).json()["reads_per_minute"] == 120
    listed = (await scene.http.get("/api/v1/grants", headers=own)).json()
    assert scene.grant in [g["id"] for g in listed]


# --- The partner side: /api/v1/partner --------------------------------------------------------

# name -> (method, path, JSON body, extra headers); the reads are audited attempts
PARTNER_ENDPOINTS: dict[str, tuple[str, str, dict[str, Any] | None, dict[str, str]]] = {
    "me": ("GET", "/api/v1/partner/me", None, {}),
    "grants": ("GET", "/api/v1/partner/grants", None, {}),
    "bundle": ("GET", "/api/v1/partner/grants/{grant}/bundle", None, {}),
    "document": ("GET", "/api/v1/partner/grants/{grant}/documents/{network}", None, {}),
    "secret": (
        "GET",
        "/api/v1/partner/grants/{grant}/documents/{credential}",
        None,
        {"X-Break-Glass-Reason": REASON},
    ),
    "other-client-document": (
        "GET",
        "/api/v1/partner/grants/{grant}/documents/{other_client}",
        None,
        {},
    ),
    "foreign-document": (
        "GET",
        "/api/v1/partner/grants/{grant}/documents/{foreign}",
        None,
        {},
    ),
    "notes": ("POST", "/api/v1/partner/grants/{grant}/notes", {"body": "all quiet"}, {}),
    "extension": (
        "POST",
        "/api/v1/partner/grants/{grant}/extension-requests",
        {"reason": "one more hour"},
        {},
    ),
}
READS = ("bundle", "document", "secret", "other-client-document", "foreign-document")
Expected = int | tuple[int, str]


def _denied(code: str, notes: Expected, extension: Expected) -> dict[str, Expected]:
    return {
        "me": 200,
        "grants": 200,
        **{read: (403, code) for read in READS},
        "notes": notes,
        "extension": extension,
    }


@dataclass(frozen=True)
class PartnerCase:
    caller: Callable[[Scene], Any]
    statuses: dict[str, Expected]
    listed: Callable[[Scene], set[str]] | None  # the grants GET /partner/grants shows
    audited: dict[str, int]  # new events per chain for each read attempt
    serves_content: bool = False


PARTNER_CASES: dict[str, PartnerCase] = {
    # the control: the grant's own live token reads, so the searches below can find content
    "grant-token-control": PartnerCase(
        caller=lambda scene: _token_caller(scene, "grant"),
        statuses={
            "me": 200,
            "grants": 200,
            "bundle": 200,
            "document": 200,
            "secret": 200,
            "other-client-document": (403, "client_out_of_scope"),
            "foreign-document": 404,
            "notes": 201,
            "extension": (409, "pending"),
        },
        listed=lambda scene: {scene.grant, scene.other_grant},
        audited={"msp": 1, "noc": 1},
        serves_content=True,
    ),
    "other-noc-own-grant-token": PartnerCase(
        caller=lambda scene: _token_caller(scene, "other_noc"),
        statuses={"me": 200, "grants": 200, **dict.fromkeys([*READS, "notes", "extension"], 404)},
        listed=None,  # its own PSA-4413 only: checked below
        audited={"other_noc": 1},
    ),
    "same-noc-after-expiry": PartnerCase(
        caller=_expired,
        statuses={
            **_denied("grant_ended", (409, "grant_not_active"), (409, "grant_not_active")),
            "other-client-document": (403, "grant_ended,client_out_of_scope"),
            "foreign-document": 404,
        },
        listed=lambda scene: set(),
        audited={"msp": 1, "noc": 1},
    ),
    "same-noc-after-revocation": PartnerCase(
        caller=_revoked,
        statuses=dict.fromkeys(PARTNER_ENDPOINTS, 401),
        listed=None,
        audited={"noc": 1},  # token:rejected
    ),
    "token-of-another-grant": PartnerCase(
        caller=lambda scene: _token_caller(scene, "other_grant"),
        statuses=_denied("token_not_bound", (403, "token_not_bound"), (403, "token_not_bound")),
        listed=lambda scene: {scene.grant, scene.other_grant},
        audited={"msp": 1, "noc": 1},
    ),
    "token-without-grant": PartnerCase(
        caller=lambda scene: _token_caller(scene, "unbound"),
        statuses=_denied("token_not_bound", (403, "token_not_bound"), (403, "token_not_bound")),
        listed=lambda scene: {scene.grant, scene.other_grant},
        audited={"msp": 1, "noc": 1},
    ),
    "other-msp-api-token": PartnerCase(
        caller=lambda scene: _token_caller(scene, "other_msp_api"),
        statuses=dict.fromkeys(PARTNER_ENDPOINTS, 401),
        listed=None,
        audited={"platform": 1},  # not a JWT: no tenant can be named
    ),
    "owner-msp-api-token": PartnerCase(
        caller=lambda scene: _token_caller(scene, "msp_api"),
        statuses=dict.fromkeys(PARTNER_ENDPOINTS, 401),
        listed=None,
        audited={"platform": 1},
    ),
}


async def _audit_counts(scene: Scene) -> dict[str, int]:
    return {
        name: await AuditEvent.count().where(AuditEvent.tenant_id == tenant_id)
        for name, tenant_id in scene.chains().items()
    }


async def _new_events(scene: Scene, before: dict[str, int]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for name, tenant_id in scene.chains().items():
        events += (
            await AuditEvent.select()
            .where((AuditEvent.tenant_id == tenant_id) & (AuditEvent.seq > before[name]))
            .output(load_json=True)
        )
    return events


@pytest.mark.parametrize("who", list(PARTNER_CASES))
async def test_partner_endpoints_serve_only_the_grant_the_token_is_bound_to(
    scene: Scene, who: str
) -> None:
    case = PARTNER_CASES[who]
    caller: Caller = await case.caller(scene)
    ids = {
        "grant": scene.grant,
        "network": scene.msp.documents["network"],
        "credential": scene.msp.documents["credential"],
        "other_client": scene.msp.documents["other_client"],
        "foreign": scene.other_msp.documents["network"],
    }
    outcomes: dict[str, Expected] = {}
    for name, (method, path, body, extra) in PARTNER_ENDPOINTS.items():
        before = await _audit_counts(scene)
        response = await caller.http.request(
            method, path.format(**ids), json=body, headers={**caller.headers, **extra}
        )
        status = response.status_code
        outcomes[name] = (status, response.json()["code"]) if status in (403, 409) else status
        if status >= 400:
            assert response.headers["content-type"].startswith("application/problem+json")
            assert scene.msp.marker not in response.text, (name, response.text)
        if status == 403:
            assert response.json()["reasons"], (name, response.text)
        if not (case.serves_content and status < 300):
            leaked = [s for s in scene.forbidden_strings() if s in response.text]
            assert leaked == [], (name, response.text)
        if name == "grants" and status == 200:
            shown = {grant["id"] for grant in response.json()}
            if case.listed is not None:
                assert shown == case.listed(scene)
            else:
                assert scene.grant not in shown and scene.other_grant not in shown
        if name in READS:
            after = await _audit_counts(scene)
            grew = {chain: after[chain] - before[chain] for chain in after}
            assert {chain: n for chain, n in grew.items() if n} == case.audited, name
            for event in await _new_events(scene, before):
                assert event["outcome"] == ("success" if status == 200 else "denied")
                if event["action"] != "token:rejected":
                    assert event["context"]["grant_id"] == scene.grant
    assert outcomes == case.statuses

    if case.serves_content:  # the searches above would have found a leak
        bundle = await caller.http.get(
            f"/api/v1/partner/grants/{scene.grant}/bundle", headers=caller.headers
        )
        assert f"{scene.msp.marker}-summary" in bundle.text
        assert all(title in bundle.text for title in IN_SCOPE_TITLES)
