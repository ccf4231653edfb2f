"""Handoffs and grants through the API: scheduled, revoked, completed, extended; bad input that
writes nothing; the read-rate ceiling; and reads that fail closed when the audit log cannot be
written."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from gateway.database import ALL_TABLES
from policies.ceiling import Ceiling
from policies.vocabulary import DocumentKind
from sharing import partnerships
from sharing.clock import DatabaseClock, ManualClock
from sharing.partnerships import PartnershipAction
from sharing.tables import AuditEvent, Grant, OutboxEvent, RotationItem
from tenants.tables import IssuedToken
from tests.helpers import (
    STORY_START,
    AppClient,
    MspSide,
    NocSide,
    bearer,
    grant_token,
    hand_off,
    handoff_body,
    make_msp_side,
    make_noc_side,
    partner_up,
    request_token,
    served_at,
)

CEILING = Ceiling(
    document_kinds=[kind for kind in DocumentKind if kind is not DocumentKind.CONTACT],
    max_grant_hours=120,
    secrets_allowed=True,
)
"""Everything but contacts, for at most 120 hours (the MSP's own rules allow 168)."""
SHIFT_END = datetime(2026, 12, 28, 7, 0, tzinfo=UTC)
REASON = "PSA-4411: console password needed to restore the uplinks"


@dataclass(frozen=True)
class Parties:
    msp: MspSide
    noc: NocSide
    partnership_id: uuid.UUID


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(STORY_START)


@pytest.fixture
async def http(settings, db, clock) -> AsyncIterator[AppClient]:
    async with served_at(settings, clock) as client:
        yield client


@pytest.fixture
async def parties(http: AppClient) -> Parties:
    msp = await make_msp_side(http, max_grant_hours=168)
    noc = await make_noc_side()
    return Parties(msp, noc, await partner_up(msp, noc, CEILING))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _read_url(grant_id: str, document_id: uuid.UUID) -> str:
    return f"/api/v1/partner/grants/{grant_id}/documents/{document_id}"


async def _row_counts() -> dict[str, int]:
    return {table._meta.tablename: await table.count() for table in ALL_TABLES}


async def _grant(grant_id: str) -> dict[str, Any]:
    row: dict[str, Any] | None = await Grant.select().where(Grant.id == uuid.UUID(grant_id)).first()
    assert row is not None
    return row


async def _events(tenant_id: uuid.UUID, action: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = (
        await AuditEvent.select()
        .where((AuditEvent.tenant_id == tenant_id) & (AuditEvent.action == action))
        .order_by(AuditEvent.seq)
        .output(load_json=True)
    )
    return rows


async def _outbox(tenant_id: uuid.UUID, event_type: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = (
        await OutboxEvent.select()
        .where((OutboxEvent.tenant_id == tenant_id) & (OutboxEvent.event_type == event_type))
        .output(load_json=True)
    )
    return rows


# --- Lifecycle ---------------------------------------------------------------------------


async def test_a_grant_that_starts_later_is_scheduled_and_refuses_reads_until_then(
    http: AppClient, parties: Parties, clock: ManualClock
) -> None:
    msp, noc = parties.msp, parties.noc
    starts = STORY_START + timedelta(hours=2)
    made = await hand_off(http, msp, noc, starts_at=_iso(starts))
    grant = made["grant"]
    assert grant["status"] == "scheduled"
    assert (grant["starts_at"], grant["ends_at"]) == (_iso(starts), _iso(SHIFT_END))
    token = bearer(await grant_token(http, noc, grant["id"]))
    listed = (await http.get("/api/v1/partner/grants", headers=token)).json()
    assert [(g["id"], g["status"]) for g in listed] == [(grant["id"], "scheduled")]

    for url in (
        f"/api/v1/partner/grants/{grant['id']}/bundle",
        _read_url(grant["id"], msp.documents["network"]),
    ):
        early = await http.get(url, headers=token)
        assert early.status_code == 403, early.text
        assert [r["code"] for r in early.json()["reasons"]] == ["grant_not_started"]
        assert msp.marker not in early.text

    clock.set(starts)  # no worker moves it: the window alone decides
    opened = await http.get(_read_url(grant["id"], msp.documents["network"]), headers=token)
    assert opened.status_code == 200, opened.text
    assert opened.json()["body"].endswith(f"{msp.marker}-network")
    assert (await _grant(grant["id"]))["status"] == "scheduled"
    listed = (await http.get("/api/v1/partner/grants", headers=token)).json()
    assert [g["status"] for g in listed] == ["active"]


@pytest.mark.parametrize(
    ("body", "status"),
    [({}, 400), ({"reason": ""}, 400), ({"reason": "   "}, 422), ({"reason": "x" * 501}, 400)],
    ids=["missing", "empty", "blank", "too-long"],
)
async def test_revoking_needs_a_reason(
    http: AppClient, parties: Parties, body: dict[str, str], status: int
) -> None:
    made = await hand_off(http, parties.msp, parties.noc)
    token = bearer(await grant_token(http, parties.noc, made["grant"]["id"]))
    before = await _row_counts()

    refused = await http.post(
        f"/api/v1/grants/{made['grant']['id']}/revoke", json=body, headers=parties.msp.headers
    )

    assert refused.status_code == status, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert await _row_counts() == before
    assert (await _grant(made["grant"]["id"]))["status"] == "active"
    assert (await http.get("/api/v1/partner/me", headers=token)).status_code == 200


async def test_revoking_ends_the_grant_and_every_token_minted_for_it_at_once(
    http: AppClient, parties: Parties, clock: ManualClock
) -> None:
    msp, noc = parties.msp, parties.noc
    made = await hand_off(http, msp, noc)
    grant_id = made["grant"]["id"]
    bound = [bearer(await grant_token(http, noc, grant_id)) for _ in range(2)]
    unbound = await request_token(http, noc.client_id, noc.secret, scope="partner:read")
    assert unbound.status_code == 200, unbound.text
    clock.advance(timedelta(hours=3))

    revoked = await http.post(
        f"/api/v1/grants/{grant_id}/revoke",
        json={"reason": "wrong partner picked"},
        headers=msp.headers,
    )

    assert revoked.status_code == 200, revoked.text
    view = revoked.json()
    assert (view["status"], view["end_reason"]) == ("revoked", "wrong partner picked")
    assert view["ended_at"] == _iso(STORY_START + timedelta(hours=3))
    for token in bound:
        for url in (
            "/api/v1/partner/me",
            f"/api/v1/partner/grants/{grant_id}/bundle",
            _read_url(grant_id, msp.documents["network"]),
        ):
            dead = await http.get(url, headers=token)
            assert dead.status_code == 401, (url, dead.text)
            assert msp.marker not in dead.text
    tokens = await IssuedToken.select(IssuedToken.grant_id, IssuedToken.revoked_at).where(
        IssuedToken.tenant_id == noc.tenant.id
    )
    assert sorted((t["grant_id"] is None, t["revoked_at"] is None) for t in tokens) == [
        (False, False),
        (False, False),
        (True, True),
    ]
    alive = await http.get("/api/v1/partner/me", headers=bearer(unbound.json()["access_token"]))
    assert alive.status_code == 200, alive.text
    again = await request_token(
        http, noc.client_id, noc.secret, scope=f"partner:read grant:{grant_id}"
    )
    assert (again.status_code, again.json()["error"]) == (400, "invalid_scope")
    for chain in (msp.tenant.id, noc.tenant.id):
        [event] = await _events(chain, "grant:revoked")
        assert (event["reason"], event["context"]["tokens_revoked"]) == (
            "wrong partner picked",
            "2",
        )
        assert len(await _outbox(chain, "grant.revoked")) == 1
    twice = await http.post(
        f"/api/v1/grants/{grant_id}/revoke", json={"reason": "again"}, headers=msp.headers
    )
    assert (twice.status_code, twice.json()["code"]) == (409, "grant_ended")


async def test_completing_the_incident_ends_the_grant(http: AppClient, parties: Parties) -> None:
    msp, noc = parties.msp, parties.noc
    made = await hand_off(http, msp, noc)
    grant_id = made["grant"]["id"]
    token = bearer(await grant_token(http, noc, grant_id))

    done = await http.post(f"/api/v1/grants/{grant_id}/complete", headers=msp.headers)

    assert done.status_code == 200, done.text
    assert (done.json()["status"], done.json()["ended_at"]) == ("completed", _iso(STORY_START))
    assert (await _grant(grant_id))["status"] == "completed"
    read = await http.get(_read_url(grant_id, msp.documents["network"]), headers=token)
    assert read.status_code == 401, read.text
    seen = await http.get(f"/api/v1/handoffs/{made['id']}", headers=msp.headers)
    assert seen.json()["grant"]["status"] == "completed"
    assert len(await _events(msp.tenant.id, "grant:completed")) == 1
    late = await http.post(
        f"/api/v1/grants/{grant_id}/revoke", json={"reason": "too late"}, headers=msp.headers
    )
    assert (late.status_code, late.json()["code"]) == (409, "grant_ended")


async def test_a_token_never_outlives_its_grant(
    http: AppClient, parties: Parties, clock: ManualClock
) -> None:
    # Token times are real times: put the grant's end five minutes from now, inside the
    # token's usual ten-minute life.
    now = datetime.now(UTC).replace(microsecond=0)
    clock.set(now)
    made = await hand_off(http, parties.msp, parties.noc, ends_at=_iso(now + timedelta(minutes=5)))

    response = await request_token(
        http,
        parties.noc.client_id,
        parties.noc.secret,
        scope=f"partner:read grant:{made['grant']['id']}",
    )

    assert response.status_code == 200, response.text
    keys = KeySet.import_key_set((await http.get("/.well-known/jwks.json")).json())
    claims = jwt.decode(response.json()["access_token"], keys, algorithms=["ES256"]).claims
    assert claims["exp"] == int((now + timedelta(minutes=5)).timestamp())
    assert claims["grant_id"] == made["grant"]["id"]
    assert response.json()["expires_in"] <= 300


async def test_the_token_s_scopes_narrow_what_the_grant_allows(
    http: AppClient, parties: Parties
) -> None:
    msp, noc = parties.msp, parties.noc
    made = await hand_off(http, msp, noc)
    grant_id = made["grant"]["id"]
    read_only = bearer(await grant_token(http, noc, grant_id, scopes=["partner:read"]))
    bare = bearer(await grant_token(http, noc, grant_id, scopes=[]))

    network = await http.get(_read_url(grant_id, msp.documents["network"]), headers=read_only)
    secret = await http.get(
        _read_url(grant_id, msp.documents["credential"]),
        headers={**read_only, "X-Break-Glass-Reason": REASON},
    )
    note = await http.post(
        f"/api/v1/partner/grants/{grant_id}/notes", json={"body": "hi"}, headers=read_only
    )
    extension = await http.post(
        f"/api/v1/partner/grants/{grant_id}/extension-requests",
        json={"reason": "more time"},
        headers=read_only,
    )
    bundle = await http.get(f"/api/v1/partner/grants/{grant_id}/bundle", headers=bare)
    unscoped = await http.get(_read_url(grant_id, msp.documents["network"]), headers=bare)

    assert network.status_code == 200, network.text
    assert (secret.status_code, secret.json()["code"]) == (403, "scope_missing")
    assert "partner:break_glass" in secret.json()["detail"]
    assert f"{msp.marker}-password" not in secret.text
    for refused in (note, extension, bundle):
        assert (refused.status_code, refused.json()["code"]) == (403, "insufficient_scope")
    assert (unscoped.status_code, unscoped.json()["code"]) == (403, "scope_missing")
    assert msp.marker not in unscoped.text and msp.marker not in bundle.text
    assert await RotationItem.count() == 0
    for chain in (msp.tenant.id, parties.noc.tenant.id):
        denied = await _events(chain, "document:read_denied")
        assert [e["target_id"] for e in denied] == [
            str(msp.documents["credential"]),
            str(msp.documents["network"]),
        ]
        assert all("scope_missing" in e["reason"] for e in denied)


# --- Extensions ----------------------------------------------------------------------------


async def test_an_extension_is_asked_with_a_reason_and_approved_within_the_ceiling(
    http: AppClient, parties: Parties, clock: ManualClock
) -> None:
    msp, noc = parties.msp, parties.noc
    made = await hand_off(http, msp, noc)
    grant_id = made["grant"]["id"]
    token = bearer(await grant_token(http, noc, grant_id))
    url = f"/api/v1/partner/grants/{grant_id}/extension-requests"

    for body, status in (
        ({}, 400),
        ({"reason": ""}, 400),
        ({"reason": "  "}, 422),
        ({"reason": "x" * 501}, 400),
        ({"reason": "vendor RMA", "requested_ends_at": _iso(SHIFT_END)}, 422),
        ({"reason": "vendor RMA", "requested_ends_at": "2026-12-28T10:00:00"}, 400),
        ({"reason": "vendor RMA", "until": _iso(SHIFT_END)}, 400),
    ):
        refused = await http.post(url, json=body, headers=token)
        assert refused.status_code == status, (body, refused.text)
    assert (await http.get(f"/api/v1/handoffs/{made['id']}", headers=msp.headers)).json()[
        "extensions"
    ] == []

    wanted = SHIFT_END + timedelta(hours=3)
    asked = await http.post(
        url,
        json={"reason": "vendor RMA arrives 10:00", "requested_ends_at": _iso(wanted)},
        headers=token,
    )
    assert asked.status_code == 201, asked.text
    extension_id = asked.json()["id"]
    pending = await http.post(url, json={"reason": "and again"}, headers=token)
    assert (pending.status_code, pending.json()["code"]) == (409, "pending")

    zoneless = await http.post(
        f"/api/v1/extension-requests/{extension_id}/approve",
        json={"new_ends_at": "2026-12-28T10:00:00"},
        headers=msp.headers,
    )
    assert zoneless.status_code == 400, zoneless.text
    # 120 hours from 16:55 UTC on the 23rd is 16:55 UTC on the 28th: 17:00 is beyond it.
    beyond = await http.post(
        f"/api/v1/extension-requests/{extension_id}/approve",
        json={"new_ends_at": "2026-12-28T17:00:00Z"},
        headers=msp.headers,
    )
    assert (beyond.status_code, beyond.json()["code"]) == (422, "too_long")
    assert (await _grant(grant_id))["ends_at"] == SHIFT_END

    approved = await http.post(
        f"/api/v1/extension-requests/{extension_id}/approve", json={}, headers=msp.headers
    )
    assert approved.status_code == 200, approved.text
    assert (approved.json()["status"], approved.json()["new_ends_at"]) == (
        "approved",
        _iso(wanted),
    )
    assert (await _grant(grant_id))["ends_at"] == wanted
    seen = (await http.get(f"/api/v1/handoffs/{made['id']}", headers=msp.headers)).json()
    assert seen["grant"]["ends_at"] == _iso(wanted)
    clock.set(SHIFT_END + timedelta(hours=1))
    read = await http.get(_read_url(grant_id, msp.documents["network"]), headers=token)
    assert read.status_code == 200, read.text
    for chain in (msp.tenant.id, noc.tenant.id):
        assert [e["context"]["ends_at"] for e in await _events(chain, "grant:extended")] == [
            wanted.isoformat()
        ]

    decided = await http.post(
        f"/api/v1/extension-requests/{extension_id}/decline", headers=msp.headers
    )
    assert (decided.status_code, decided.json()["code"]) == (409, "decided")


async def test_a_declined_extension_changes_nothing(http: AppClient, parties: Parties) -> None:
    made = await hand_off(http, parties.msp, parties.noc)
    token = bearer(await grant_token(http, parties.noc, made["grant"]["id"]))
    asked = await http.post(
        f"/api/v1/partner/grants/{made['grant']['id']}/extension-requests",
        json={"reason": "need the morning too"},
        headers=token,
    )
    assert asked.status_code == 201, asked.text
    endless = await http.post(
        f"/api/v1/extension-requests/{asked.json()['id']}/approve",
        json={},
        headers=parties.msp.headers,
    )
    assert (endless.status_code, endless.json()["code"]) == (422, "new_ends_at")

    declined = await http.post(
        f"/api/v1/extension-requests/{asked.json()['id']}/decline", headers=parties.msp.headers
    )

    assert declined.status_code == 200, declined.text
    assert (declined.json()["status"], declined.json()["new_ends_at"]) == ("declined", None)
    assert (await _grant(made["grant"]["id"]))["ends_at"] == SHIFT_END
    assert len(await _events(parties.noc.tenant.id, "grant:extension_declined")) == 1


async def test_no_extension_once_the_grant_has_ended(
    http: AppClient, parties: Parties, clock: ManualClock
) -> None:
    made = await hand_off(http, parties.msp, parties.noc)
    grant_id = made["grant"]["id"]
    token = bearer(await grant_token(http, parties.noc, grant_id))
    url = f"/api/v1/partner/grants/{grant_id}/extension-requests"
    asked = await http.post(url, json={"reason": "still on it"}, headers=token)
    assert asked.status_code == 201, asked.text
    clock.set(SHIFT_END)

    late = await http.post(url, json={"reason": "still on it, really"}, headers=token)
    approve = await http.post(
        f"/api/v1/extension-requests/{asked.json()['id']}/approve",
        json={"new_ends_at": _iso(SHIFT_END + timedelta(hours=1))},
        headers=parties.msp.headers,
    )

    assert (late.status_code, late.json()["code"]) == (409, "grant_not_active")
    assert (approve.status_code, approve.json()["code"]) == (409, "grant_ended")
    assert (await _grant(grant_id))["ends_at"] == SHIFT_END


# --- Bad input: a clear 4xx, nothing written -------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "status", "code"),
    [
        pytest.param(
            {"starts_at": "2026-12-23T20:00:00Z", "ends_at": "2026-12-23T19:00:00Z"},
            422,
            "ends_before_starts",
            id="ends-before-it-starts",
        ),
        pytest.param({"ends_at": "2026-12-23T10:00:00Z"}, 422, "ends_in_past", id="ends-in-past"),
        pytest.param(
            {"ends_at": "2026-12-28T17:00:00Z"}, 422, "too_long", id="longer-than-ceiling"
        ),
        pytest.param({"partner": "no-such-noc"}, 422, "partner_unknown", id="unknown-partner"),
        pytest.param(
            {"client_id": "8b0d5bb6-5a2c-4f0e-9a57-000000000000"},
            422,
            "client_unknown",
            id="unknown-client",
        ),
        pytest.param(
            {"scope": {"document_kinds": ["network", "contact"]}},
            422,
            "ceiling_kind",
            id="kind-beyond-ceiling",
        ),
        pytest.param(
            {"scope": {"document_kinds": ["network"], "colour": "red"}},
            400,
            "scope",
            id="scope-unknown-field",
        ),
        pytest.param(
            {"scope": {"document_kinds": ["weather"]}}, 400, "scope", id="scope-unknown-kind"
        ),
        pytest.param({"scope": {"document_kinds": []}}, 400, "scope", id="scope-no-kind"),
        pytest.param({"psa_reference": "P" * 101}, 400, "psa_reference", id="psa-too-long"),
        pytest.param({"summary": ""}, 400, "summary", id="summary-empty"),
        pytest.param({"summary": "   "}, 422, "summary", id="summary-blank"),
        pytest.param({"severity": "P0"}, 400, "severity", id="unknown-severity"),
        pytest.param({"ends_at": "2026-12-24T06:00:00"}, 400, "ends_at", id="end-without-zone"),
        pytest.param({"priority": "high"}, 400, "data", id="unknown-field"),
    ],
)
async def test_a_bad_handoff_is_refused_clearly_and_writes_nothing(
    http: AppClient, parties: Parties, fields: dict[str, Any], status: int, code: str
) -> None:
    before = await _row_counts()

    response = await http.post(
        "/api/v1/handoffs",
        json=handoff_body(parties.msp, parties.noc, **fields),
        headers=parties.msp.headers,
    )

    assert response.status_code == status, response.text
    problem = response.json()
    assert response.headers["content-type"].startswith("application/problem+json")
    assert problem["status"] == status and problem["detail"]
    if status == 422:
        assert code in problem["code"].split(",")
    else:
        assert problem["type"] == "urn:shiftgate:problem:validation"
        assert problem["errors"][0]["key"].split(".")[0].split("[")[0] == code
    assert await _row_counts() == before


async def test_no_handoff_over_a_suspended_partnership(http: AppClient, parties: Parties) -> None:
    await partnerships.act(
        parties.noc.admin.actor, parties.partnership_id, PartnershipAction.SUSPEND
    )
    before = await _row_counts()

    response = await http.post(
        "/api/v1/handoffs",
        json=handoff_body(parties.msp, parties.noc),
        headers=parties.msp.headers,
    )

    assert (response.status_code, response.json()["code"]) == (409, "partnership_inactive")
    assert await _row_counts() == before


async def test_a_schedule_that_never_closes_needs_an_explicit_end(
    http: AppClient, parties: Parties
) -> None:
    always = {
        "time_zone": "Europe/Berlin",
        "weekly": {
            day: [["00:00", "24:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
        },
    }
    put = await http.put("/api/v1/schedule", json={"hours": always}, headers=parties.msp.headers)
    assert put.status_code == 200, put.text
    before = await _row_counts()

    open_ended = await http.post(
        "/api/v1/handoffs",
        json=handoff_body(parties.msp, parties.noc),
        headers=parties.msp.headers,
    )

    assert (open_ended.status_code, open_ended.json()["code"]) == (422, "no_shift_end")
    assert await _row_counts() == before
    bounded = await hand_off(http, parties.msp, parties.noc, ends_at="2026-12-24T07:00:00Z")
    assert bounded["grant"]["ends_at"] == "2026-12-24T07:00:00Z"


async def test_a_break_glass_reason_over_500_characters_is_refused_and_reveals_nothing(
    http: AppClient, parties: Parties
) -> None:
    msp = parties.msp
    made = await hand_off(http, msp, parties.noc)
    grant_id = made["grant"]["id"]
    token = bearer(await grant_token(http, parties.noc, grant_id))

    response = await http.get(
        _read_url(grant_id, msp.documents["credential"]),
        headers={**token, "X-Break-Glass-Reason": "r" * 501},
    )

    assert response.status_code == 403, response.text
    assert [r["code"] for r in response.json()["reasons"]] == ["reason_too_long"]
    assert f"{msp.marker}-password" not in response.text
    assert await RotationItem.count() == 0
    assert await _outbox(msp.tenant.id, "document.break_glass") == []
    [denied] = await _events(msp.tenant.id, "document:read_denied")
    assert "reason_too_long" in denied["reason"]


@pytest.mark.parametrize(
    ("body", "status"),
    [({"body": "n" * 20_001}, 400), ({"body": ""}, 400), ({"body": " \n "}, 422), ({}, 400)],
    ids=["too-long", "empty", "blank", "missing"],
)
async def test_a_bad_note_is_refused_and_writes_nothing(
    http: AppClient, parties: Parties, body: dict[str, str], status: int
) -> None:
    made = await hand_off(http, parties.msp, parties.noc)
    token = bearer(await grant_token(http, parties.noc, made["grant"]["id"]))
    before = await _row_counts()

    response = await http.post(
        f"/api/v1/partner/grants/{made['grant']['id']}/notes", json=body, headers=token
    )

    assert response.status_code == status, response.text
    assert await _row_counts() == before


# --- The read-rate ceiling and failing closed ------------------------------------------------


async def test_reads_beyond_the_rate_ceiling_are_refused_and_reported_once(
    http: AppClient, parties: Parties
) -> None:
    msp, noc = parties.msp, parties.noc
    rules = {"max_grant_hours": 168, "never_share_tags": ["board-only"], "reads_per_minute": 3}
    put = await http.put("/api/v1/rules", json=rules, headers=msp.headers)
    assert put.status_code == 200, put.text
    made = await hand_off(http, msp, noc)
    grant_id = made["grant"]["id"]
    token = bearer(await grant_token(http, noc, grant_id))

    responses = [
        await http.get(_read_url(grant_id, msp.documents["network"]), headers=token)
        for _ in range(5)
    ]

    assert [r.status_code for r in responses] == [200, 200, 200, 403, 403]
    for refused in responses[3:]:
        assert [r["code"] for r in refused.json()["reasons"]] == ["rate_exceeded"]
        assert msp.marker not in refused.text
    for chain in (msp.tenant.id, noc.tenant.id):
        [limited] = await _events(chain, "grant:rate_limited")
        assert (limited["target_id"], limited["severity"]) == (grant_id, "high")
        assert len(await _events(chain, "document:read_denied")) == 2
    [told] = await _outbox(msp.tenant.id, "grant.rate_limited")
    assert told["payload"]["grant_id"] == grant_id
    assert await _outbox(noc.tenant.id, "grant.rate_limited") == []


_TRIGGER = {
    "sqlite": [
        "CREATE TRIGGER sg_test_audit_full BEFORE INSERT ON audit_events "
        "BEGIN SELECT RAISE(ABORT, 'audit disk full'); END"
    ],
    "postgres": [
        "CREATE FUNCTION sg_test_audit_full() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'audit disk full'; END $$",
        "CREATE TRIGGER sg_test_audit_full BEFORE INSERT ON audit_events "
        "FOR EACH ROW EXECUTE FUNCTION sg_test_audit_full()",
    ],
}
_DROP = {
    "sqlite": ["DROP TRIGGER IF EXISTS sg_test_audit_full"],
    "postgres": [
        "DROP TRIGGER IF EXISTS sg_test_audit_full ON audit_events",
        "DROP FUNCTION IF EXISTS sg_test_audit_full()",
    ],
}


async def test_a_read_that_cannot_be_audited_is_not_served(
    http: AppClient, parties: Parties, db: Any
) -> None:
    msp = parties.msp
    made = await hand_off(http, msp, parties.noc)
    grant_id = made["grant"]["id"]
    token = bearer(await grant_token(http, parties.noc, grant_id))
    secret = {**token, "X-Break-Glass-Reason": REASON}
    audited = await AuditEvent.count()

    for statement in _TRIGGER[db.engine_type]:
        await db.run_ddl(statement)
    try:
        refused = [
            await http.get(_read_url(grant_id, msp.documents["credential"]), headers=secret),
            await http.get(_read_url(grant_id, msp.documents["network"]), headers=token),
            await http.get(f"/api/v1/partner/grants/{grant_id}/bundle", headers=token),
        ]
    finally:
        for statement in _DROP[db.engine_type]:
            await db.run_ddl(statement)

    for response in refused:
        assert response.status_code == 503, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["type"] == "urn:shiftgate:problem:unavailable"
        assert msp.marker not in response.text and "audit disk full" not in response.text
    assert await AuditEvent.count() == audited
    assert await RotationItem.count() == 0
    assert await _outbox(msp.tenant.id, "document.break_glass") == []
    served = await http.get(_read_url(grant_id, msp.documents["credential"]), headers=secret)
    assert served.status_code == 200, served.text
    assert await RotationItem.count() == 1


@pytest.mark.parametrize("clock", [DatabaseClock()], ids=["database-clock"])
async def test_with_the_database_clock_the_window_is_the_database_s(
    http: AppClient, parties: Parties, clock: DatabaseClock
) -> None:
    # the deployed default: the time comes from the database (statement_timestamp() on
    # PostgreSQL), not from a clock the test moves
    in_an_hour = _iso(datetime.now(UTC) + timedelta(hours=1))
    made = await hand_off(http, parties.msp, parties.noc, ends_at=in_an_hour)
    grant_id = made["grant"]["id"]
    token = bearer(await grant_token(http, parties.noc, grant_id))
    url = _read_url(grant_id, parties.msp.documents["network"])
    assert (await http.get(url, headers=token)).status_code == 200

    await Grant.update({Grant.ends_at: datetime.now(UTC) - timedelta(seconds=1)}).where(
        Grant.id == uuid.UUID(grant_id)
    )
    ended = await http.get(url, headers=token)
    assert ended.status_code == 403, ended.text
    assert [r["code"] for r in ended.json()["reasons"]] == ["grant_ended"]
    assert parties.msp.marker not in ended.text
