"""The audit tests' world, made through the API as the story makes it: Northwind (`msp`) hands
PSA-4411 to NightOwl (`noc`), which reads, is refused, breaks glass twice, posts a note and asks
for more time. Around them, strangers whose events must never show up where they do not belong:
`other_noc` gets PSA-4413 from the same MSP and reads under it; `other_msp` hands its own
PSA-4411 to the same NOC, which reads it too. A user of the MSP whose email is a spreadsheet
formula signs in."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from sharing import accounts
from sharing.tables import AuditEvent
from tenants.roles import Actor, Role
from tests.helpers import (
    PASSWORD,
    AppClient,
    MspSide,
    NocSide,
    Person,
    bearer,
    grant_token,
    hand_off,
    make_msp_side,
    make_noc_side,
    make_person,
    partner_up,
    sign_in,
)

REASON = "PSA-4411: console password needed to restore the uplinks"
HOSTILE_REASON = '=HYPERLINK("https://evil.test/x","open") <script>alert(1)</script> & more'
"""A break-glass reason that is a spreadsheet formula and HTML at once."""
FORMULA_EMAIL = "=1+2@formula.test"
NOTE = "Replaced the uplink SFP on HH-CORE-1; please rotate the admin password."
EXTENSION_REASON = "vendor RMA arrives at 10:00"


@dataclass
class AuditScene:
    http: AppClient
    msp: MspSide
    noc: NocSide
    other_msp: MspSide
    other_noc: NocSide
    handoff: dict[str, Any]
    grant: str
    other_noc_grant: str
    other_msp_grant: str
    msp_auditor: Person
    noc_auditor: Person
    formula_user: Person

    def msp_auditor_actor(self) -> Actor:
        return self.msp_auditor.actor

    def grants_of_strangers(self) -> set[str]:
        return {self.other_noc_grant, self.other_msp_grant}


async def _ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


async def build_scene(http: AppClient) -> AuditScene:
    msp, other_msp = await make_msp_side(http), await make_msp_side(http)
    noc, other_noc = await make_noc_side(), await make_noc_side()
    await partner_up(msp, noc)
    await partner_up(msp, other_noc)
    await partner_up(other_msp, noc)

    handoff = await hand_off(http, msp, noc)
    grant = handoff["grant"]["id"]
    theirs = await hand_off(http, msp, other_noc, psa_reference="PSA-4413")
    foreign = await hand_off(http, other_msp, noc)  # the other MSP's own PSA-4411

    partner = bearer(await grant_token(http, noc, grant))
    base = f"/api/v1/partner/grants/{grant}"
    docs = msp.documents
    await _ok(await http.get(f"{base}/bundle", headers=partner))
    await _ok(await http.get(f"{base}/documents/{docs['network']}", headers=partner))
    credential = f"{base}/documents/{docs['credential']}"
    await _ok(await http.get(credential, headers=partner), 403)  # no reason: refused
    for reason in (REASON, HOSTILE_REASON):
        await _ok(await http.get(credential, headers={**partner, "X-Break-Glass-Reason": reason}))
    await _ok(await http.get(f"{base}/documents/{docs['other_client']}", headers=partner), 403)
    await _ok(await http.post(f"{base}/notes", json={"body": NOTE}, headers=partner), 201)
    await _ok(
        await http.post(
            f"{base}/extension-requests", json={"reason": EXTENSION_REASON}, headers=partner
        ),
        201,
    )

    stranger = bearer(await grant_token(http, other_noc, theirs["grant"]["id"]))
    await _ok(
        await http.get(
            f"/api/v1/partner/grants/{theirs['grant']['id']}/documents/{docs['sop']}",
            headers=stranger,
        )
    )
    own = bearer(await grant_token(http, noc, foreign["grant"]["id"]))
    await _ok(
        await http.get(
            f"/api/v1/partner/grants/{foreign['grant']['id']}/documents/"
            f"{other_msp.documents['network']}",
            headers=own,
        )
    )

    user = await accounts.create_user(
        email=FORMULA_EMAIL,
        display_name="Formula",
        password=PASSWORD,
        tenant_id=msp.tenant.id,
        role=Role.TECHNICIAN.value,
        actor=Actor.system("test"),
    )
    formula_user = Person(FORMULA_EMAIL, PASSWORD, user.id, msp.tenant, Role.TECHNICIAN)
    await sign_in(http, formula_user)
    http.cookies = httpx.Cookies()

    return AuditScene(
        http=http,
        msp=msp,
        noc=noc,
        other_msp=other_msp,
        other_noc=other_noc,
        handoff=handoff,
        grant=grant,
        other_noc_grant=theirs["grant"]["id"],
        other_msp_grant=foreign["grant"]["id"],
        msp_auditor=await make_person(msp.tenant, Role.AUDITOR),
        noc_auditor=await make_person(noc.tenant, Role.AUDITOR),
        formula_user=formula_user,
    )


async def chain(tenant_id: uuid.UUID) -> list[dict[str, Any]]:
    """The tenant's whole chain straight from the table, oldest first."""
    rows: list[dict[str, Any]] = (
        await AuditEvent.select()
        .where(AuditEvent.tenant_id == tenant_id)
        .order_by(AuditEvent.seq)
        .output(load_json=True)
    )
    return rows
