"""The story Shiftgate exists for (DESIGN.md), end to end through HTTP: hand-off at 17:55 before
the holidays, the NOC's token and bundle, break-glass at 02:10, notes at 07:40, the end at 08:00
on the next business day without any worker, and both audit chains intact."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from sharing.audit import verify_chain
from sharing.clock import ManualClock
from sharing.tables import AuditEvent, Grant, OutboxEvent
from tests.helpers import (
    BERLIN,
    NOC_SCOPES,
    STORY_START,
    AppClient,
    MspSide,
    NocSide,
    bearer,
    grant_token,
    hand_off,
    make_msp_side,
    make_noc_side,
    partner_up,
    served_at,
)

READ_ACTIONS = (
    "grant:bundle_read",
    "document:partner_read",
    "document:read_denied",
    "document:break_glass",
)
BREAK_GLASS_REASON = "PSA-4411: core switch console login needed to restore uplinks"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(STORY_START)


@pytest.fixture
async def http(settings, db, clock) -> AsyncIterator[AppClient]:
    async with served_at(settings, clock) as client:
        yield client


async def _read_events(tenant_id: uuid.UUID) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = (
        await AuditEvent.select()
        .where((AuditEvent.tenant_id == tenant_id) & AuditEvent.action.is_in(list(READ_ACTIONS)))
        .order_by(AuditEvent.seq)
        .output(load_json=True)
    )
    return rows


async def _token_claims(http: AppClient, token: str) -> dict[str, Any]:
    """The token's claims as a partner verifies them: against the published JWKS."""
    keys = KeySet.import_key_set((await http.get("/.well-known/jwks.json")).json())
    claims: dict[str, Any] = jwt.decode(token, keys, algorithms=["ES256"]).claims
    return claims


async def test_the_incident_is_handed_off_read_under_break_glass_and_ends_at_shift_end(
    http: AppClient, clock: ManualClock
) -> None:
    msp: MspSide = await make_msp_side(http)
    noc: NocSide = await make_noc_side()
    await partner_up(msp, noc)
    docs = msp.documents

    # 17:55 Wednesday 23 December: Northwind hands PSA-4411 to the NOC, no end given.
    handoff = await hand_off(http, msp, noc)
    grant = handoff["grant"]
    grant_id = grant["id"]
    # 24th and 25th are holidays, 26th/27th a weekend: Monday 08:00 Berlin (07:00 UTC).
    assert grant["ends_at"] == "2026-12-28T07:00:00Z"
    ends_at = datetime(2026, 12, 28, 8, 0, tzinfo=BERLIN)
    assert ends_at.astimezone(UTC) == datetime(2026, 12, 28, 7, 0, tzinfo=UTC)
    assert grant["starts_at"] == "2026-12-23T16:55:00Z"
    assert (grant["status"], grant["psa_reference"], grant["severity"]) == (
        "active",
        "PSA-4411",
        "P1",
    )
    assert (grant["client_name"], grant["noc"]["slug"]) == ("Contoso Ltd", noc.tenant.slug)

    # The NOC's tooling gets a token for the grant; it never outlives the grant.
    token = await grant_token(http, noc, grant_id)
    claims = await _token_claims(http, token)
    assert claims["grant_id"] == grant_id
    assert claims["tenant_id"] == str(noc.tenant.id)
    assert set(claims["scope"].split()) == {*NOC_SCOPES, f"grant:{grant_id}"}
    assert claims["exp"] <= int(ends_at.timestamp())
    partner = bearer(token)

    listed = await http.get("/api/v1/partner/grants", headers=partner)
    assert listed.status_code == 200, listed.text
    assert [(g["id"], g["status"]) for g in listed.json()] == [(grant_id, "active")]

    bundle = await http.get(f"/api/v1/partner/grants/{grant_id}/bundle", headers=partner)
    assert bundle.status_code == 200, bundle.text
    body = bundle.json()
    assert body["summary"] == f"Core switch down at Contoso Hamburg {msp.marker}-summary"
    assert body["client"] == {"name": "Contoso Ltd", "short_code": "CONTOSO"}
    listed_docs = {d["id"]: d for d in body["documents"]}
    assert {uuid.UUID(i) for i in listed_docs} == {
        docs["network"],
        docs["configuration"],
        docs["sop"],
        docs["credential"],
    }
    titles = {uuid.UUID(i): (d["title"], d["break_glass_required"]) for i, d in listed_docs.items()}
    assert titles == {
        docs["network"]: ("Contoso Hamburg network", False),
        docs["configuration"]: ("HH-CORE-1 switch configuration", False),
        docs["sop"]: ("Core switch outage", False),
        docs["credential"]: ("HH-CORE-1 admin", True),
    }
    # No body is in a bundle; Fabrikam's network and the board-only configuration are not
    # even named.
    for leaked in ("-network", "-configuration", "-sop", "-password", "-other-client"):
        assert f"{msp.marker}{leaked}" not in bundle.text
    assert "Fabrikam" not in bundle.text and "Board room" not in bundle.text

    network_url = f"/api/v1/partner/grants/{grant_id}/documents/{docs['network']}"
    network = await http.get(network_url, headers=partner)
    assert network.status_code == 200, network.text
    assert network.json()["body"] == f"VLAN 10 core {msp.marker}-network"
    assert network.json()["break_glass"] is False

    # 02:10: the admin password. Without a reason: refused, nothing revealed.
    clock.set(datetime(2026, 12, 24, 2, 10, tzinfo=BERLIN))
    credential_url = f"/api/v1/partner/grants/{grant_id}/documents/{docs['credential']}"
    refused = await http.get(credential_url, headers=partner)
    assert refused.status_code == 403, refused.text
    assert "break_glass_required" in [r["code"] for r in refused.json()["reasons"]]
    assert f"{msp.marker}-password" not in refused.text and "admin" not in refused.text

    revealed = await http.get(
        credential_url, headers={**partner, "X-Break-Glass-Reason": BREAK_GLASS_REASON}
    )
    assert revealed.status_code == 200, revealed.text
    assert revealed.json()["fields"]["password"] == f"{msp.marker}-password"
    assert revealed.json()["fields"]["username"] == "admin"
    assert revealed.json()["break_glass"] is True

    rotation = await http.get("/api/v1/rotation-list", headers=msp.headers)
    assert rotation.status_code == 200, rotation.text
    [entry] = rotation.json()
    assert entry["document_id"] == str(docs["credential"])
    assert (entry["grant_id"], entry["revealed_by"]) == (grant_id, noc.client_id)
    assert entry["reason"] == BREAK_GLASS_REASON
    assert entry["revealed_at"] == "2026-12-24T01:10:00Z"
    assert entry["rotated_at"] is None

    # Northwind's on-call is told at once (the outbox feeds its webhook).
    told = (
        await OutboxEvent.select()
        .where(
            (OutboxEvent.tenant_id == msp.tenant.id)
            & (OutboxEvent.event_type == "document.break_glass")
        )
        .output(load_json=True)
    )
    assert len(told) == 1
    assert told[0]["payload"]["grant_id"] == grant_id
    assert told[0]["payload"]["document_id"] == str(docs["credential"])
    assert msp.marker not in str(told[0]["payload"])
    assert not await OutboxEvent.exists().where(
        (OutboxEvent.tenant_id == noc.tenant.id)
        & (OutboxEvent.event_type == "document.break_glass")
    )

    # 07:40 on the next business day: hand-back notes, which the MSP reads with the incident.
    clock.set(datetime(2026, 12, 28, 7, 40, tzinfo=BERLIN))
    note = "Replaced the uplink SFP on HH-CORE-1; line back up at 03:05. Please rotate admin."
    posted = await http.post(
        f"/api/v1/partner/grants/{grant_id}/notes", json={"body": note}, headers=partner
    )
    assert posted.status_code == 201, posted.text
    seen = await http.get(f"/api/v1/handoffs/{handoff['id']}", headers=msp.headers)
    assert seen.status_code == 200, seen.text
    assert [(n["body"], n["author"]) for n in seen.json()["notes"]] == [(note, noc.client_id)]

    # One millisecond before 08:00 the grant still serves; at 08:00 it does not, though no
    # worker ran and the row still says active.
    clock.set(ends_at - timedelta(milliseconds=1))
    last = await http.get(network_url, headers=partner)
    assert last.status_code == 200, last.text
    assert last.json()["body"] == f"VLAN 10 core {msp.marker}-network"

    clock.set(ends_at)
    for url in (network_url, f"/api/v1/partner/grants/{grant_id}/bundle"):
        ended = await http.get(url, headers=partner)
        assert ended.status_code == 403, (url, ended.text)
        assert ended.json()["code"] == "grant_ended"
        assert [r["code"] for r in ended.json()["reasons"]] == ["grant_ended"]
        assert msp.marker not in ended.text
    row = await Grant.select(Grant.status).where(Grant.id == uuid.UUID(grant_id)).first()
    assert row == {"status": "active"}
    after = await http.get(f"/api/v1/handoffs/{handoff['id']}", headers=msp.headers)
    assert after.json()["grant"]["status"] == "expired"
    assert after.json()["grant"]["seconds_left"] == 0
    assert (await http.get("/api/v1/partner/grants", headers=partner)).json() == []

    # Every read, allowed or denied, is on record for both sides, in the same order.
    expected = [
        ("grant:bundle_read", "success", grant_id),
        ("document:partner_read", "success", str(docs["network"])),
        ("document:read_denied", "denied", str(docs["credential"])),
        ("document:break_glass", "success", str(docs["credential"])),
        ("document:partner_read", "success", str(docs["network"])),
        ("document:read_denied", "denied", str(docs["network"])),
        ("grant:bundle_read", "denied", grant_id),
    ]
    for chain in (msp.tenant.id, noc.tenant.id):
        events = await _read_events(chain)
        assert [(e["action"], e["outcome"], e["target_id"]) for e in events] == expected
        assert {e["context"]["grant_id"] for e in events} == {grant_id}
        assert {e["actor_label"] for e in events} == {noc.client_id}
        assert "break_glass_required" in events[2]["reason"]
        assert (events[3]["severity"], events[3]["reason"]) == ("high", BREAK_GLASS_REASON)
        assert "grant_ended" in events[5]["reason"]
        report = await verify_chain(chain)
        assert report.ok, report
        assert report.verified > len(expected)
