"""No portal page of one tenant is reachable by another tenant's users, whatever their role.

The routes come from the app itself (every GET and POST handler of `gateway.portal`), so a page
added later is walked too, or this test fails until it says how to walk it. Path parameters are
filled with the ids of a story of another MSP and its partner NOC (a running grant with an
extension request, a note, a break-glass read on the rotation list, a webhook with a delivery, an
OAuth client). Users of every role of an unrelated MSP, NOC, and MSP-and-NOC tenant then open
each page and send each form: every answer is a 404 or a 403 that carries no byte of the other
tenants' content, and no row of the database changes.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from gateway.database import ALL_TABLES
from sharing import partner_clients, webhooks
from sharing.clock import ManualClock
from sharing.partnerships import PartnershipAction
from sharing.tables import WebhookDelivery
from tenants.oauth_clients import AuthMethod
from tenants.roles import Role
from tests.helpers import (
    PASSWORD,
    STORY_START,
    AppClient,
    MspSide,
    NocSide,
    bearer,
    csrf_token,
    grant_token,
    hand_off,
    make_msp_side,
    make_noc_side,
    make_person,
    make_tenant,
    partner_up,
    served_at,
    session_for,
)

REFUSED = {403, 404}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(STORY_START)


@pytest.fixture
async def http(settings, db, clock) -> AsyncIterator[AppClient]:
    async with served_at(settings, clock) as client:
        yield client


# --- The other tenants' story ---------------------------------------------------------------------


@dataclass(frozen=True)
class Story:
    """Another MSP and its partner NOC, with one object of every kind a portal URL names."""

    msp: MspSide
    noc: NocSide
    psa_reference: str
    ids: dict[str, str]
    """A path parameter's name -> the id of the story's object of that kind."""

    @property
    def leaks(self) -> list[str]:
        """What no page may show anyone outside the story: names, titles, the incident's
        reference, people, and the marker every body, secret and title carries."""
        return [
            self.msp.tenant.name,
            self.noc.tenant.name,
            "Contoso",
            "Fabrikam",
            self.psa_reference,
            "HH-CORE-1",
            "Core switch outage",
            self.msp.marker,
            self.msp.admin.email,
            self.noc.admin.email,
        ]


async def story(http: AppClient) -> Story:
    msp = await make_msp_side(http)
    noc = await make_noc_side()
    partnership_id = await partner_up(msp, noc)
    endpoint = await webhooks.create_endpoint(
        msp.admin.actor,
        http.app.state.keyring,
        url=f"http://127.0.0.1:9/{msp.marker}",
        events=["grant.created"],
        description=f"Pager of {msp.tenant.name}",
        allow_private=True,
    )
    psa_reference = f"PSA-{msp.marker[-6:].upper()}"
    created = await hand_off(http, msp, noc, psa_reference=psa_reference)
    grant_id = created["grant"]["id"]
    await webhooks.dispatch_outbox(datetime.now(UTC))
    [delivery] = await WebhookDelivery.select(WebhookDelivery.id).where(
        WebhookDelivery.endpoint_id == endpoint.endpoint.id
    )
    token = bearer(await grant_token(http, noc, grant_id))
    partner = f"/api/v1/partner/grants/{grant_id}"
    extension = await http.post(
        f"{partner}/extension-requests", json={"reason": f"{msp.marker} more time"}, headers=token
    )
    note = await http.post(f"{partner}/notes", json={"body": f"{msp.marker} note"}, headers=token)
    read = await http.get(
        f"{partner}/documents/{msp.documents['credential']}",
        headers={**token, "X-Break-Glass-Reason": f"{msp.marker} console login"},
    )
    assert (extension.status_code, note.status_code, read.status_code) == (201, 201, 200)
    [rotation] = (await http.get("/api/v1/rotation-list", headers=msp.headers)).json()
    oauth_client, _ = await partner_clients.register_client(
        noc.admin.actor,
        name=f"Tooling {msp.marker}",
        auth_method=AuthMethod.CLIENT_SECRET_BASIC,
        scopes=["partner:read"],
    )
    ids = {
        "grant_id": grant_id,
        "document_id": str(msp.documents["credential"]),
        "client_id": str(msp.contoso),
        "extension_id": extension.json()["id"],
        "partnership_id": str(partnership_id),
        "endpoint_id": str(endpoint.endpoint.id),
        "delivery_id": str(delivery["id"]),
        "item_id": str(rotation["id"]),
        "client_pk": str(oauth_client.id),
    }
    return Story(msp, noc, psa_reference, ids)


# --- The portal's routes, as the app registers them ----------------------------------------------


def portal_routes(app: Any, method: str) -> list[str]:
    """Every path of a `gateway.portal` handler for `method`, e.g. `/grants/{grant_id:uuid}`."""
    found = set()
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            module = getattr(getattr(handler, "fn", None), "__module__", "")
            if module.startswith("gateway.portal.") and method in handler.http_methods:
                found.add(route.path)
    return sorted(found)


_PARAMETER = re.compile(r"\{(\w+):\w+\}")


def urls(path: str, ids: dict[str, str]) -> list[str]:
    """The path with the story's ids in it (each partnership action for `{action}`)."""
    names = _PARAMETER.findall(path)
    missing = set(names) - set(ids) - {"action"}
    assert not missing, f"{path}: say which object of the story {missing} names"
    filled = _PARAMETER.sub(lambda match: ids.get(match.group(1), "{action}"), path)
    if "action" in names:
        return [filled.replace("{action}", action.value) for action in PartnershipAction]
    return [filled]


# What the forms of pages about one object get: input that would pass, so that only the owner
# of the object can stop it.
FORM_OF = {
    "/revoke": {"reason": "Incident closed", "next": "detail"},
    "/approve": {"new_ends_at": "2026-12-28T10:00"},
    "/notes": {"body": "All green at 07:40."},
    "/extension": {"reason": "Vendor call-back at 07:30."},
    "/break-glass": {"reason": "Console login", "password": PASSWORD},
    "/ceiling": {"max_grant_hours": "168", "document_kinds": "credential", "secrets_allowed": "on"},
    "/reveal": {"revision": "1"},
    "/rotate": {"overlap_hours": "0"},
    "/status": {"status": "disabled"},
}
DOCUMENT_EDIT = {"title": "Taken over", "body": "gone", "tags": "", "sensitivity": "standard"}


def form_for(url: str) -> dict[str, str]:
    if re.fullmatch(r"/documents/[0-9a-f-]{36}", url):
        return DOCUMENT_EDIT
    return next((form for end, form in FORM_OF.items() if url.endswith(end)), {})


def handoff_form(s: Story) -> dict[str, Any]:
    return {
        "partner": s.noc.tenant.slug,
        "client_id": s.ids["client_id"],
        "psa_reference": "PSA-9001",
        "summary": "Take over",
        "severity": "P1",
        "document_kinds": ["network", "credential"],
        "max_sensitivity": "secret",
    }


# Routes without a path parameter whose form names another tenant's object: the form, and the
# answers it may get (a refusal, or the dashboard again with a message).
def naming_forms(s: Story) -> dict[str, tuple[dict[str, Any], set[int]]]:
    return {
        "/handoffs/confirm": (handoff_form(s), {403, 422}),
        "/handoffs": (handoff_form(s), {403, 422}),
        "/handoffs/new": (handoff_form(s), {200, 403}),
        "/documents": (
            {"title": "Mine now", "kind": "sop", "client": s.ids["client_id"], "body": "x"},
            {403, 422},
        ),
        "/schedule/rules": (
            {
                "max_grant_hours": "168",
                "expiry_warning_minutes": "15",
                "reads_per_minute": "120",
                "never_share_clients": s.ids["client_id"],
            },
            {403, 422},
        ),
        "/tenant": ({"tenant_id": str(s.msp.tenant.id)}, {302, 303}),
    }


NAMES_NO_OBJECT = {
    "/login": "signs in whoever knows the password",
    "/logout": "ends one's own session",
    "/account/password": "one's own password",
    "/audit/verify": "one's own tenant's chain",
    "/clients": "adds a client to one's own tenant",
    "/documents/preview": "renders the Markdown it is sent",
    "/noc/clients": "registers a client of one's own NOC",
    "/partnerships": "an invitation by slug: inviting any NOC is what an MSP may do",
    "/schedule": "one's own business hours",
    "/schedule/preview": "previews the hours it is sent",
    "/webhooks": "registers an endpoint of one's own tenant",
}

# Pages without a path parameter that read ids from the query string.
QUERY_OF = {
    "/documents": lambda ids: {"client": ids["client_id"]},
    "/documents/new": lambda ids: {"client": ids["client_id"], "kind": "credential"},
    "/audit": lambda ids: {k: ids[k] for k in ("grant_id", "client_id", "document_id")},
}


# --- Checks ---------------------------------------------------------------------------------------


async def database() -> dict[str, list[dict[str, Any]]]:
    """Every row of every table, to see that nothing at all was written."""
    return {
        table._meta.tablename: await table.select().order_by(table._meta.primary_key)
        for table in ALL_TABLES
    }


_CHAIN = ("audit_events", "audit_heads", "audit_checkpoints")


def written(
    before: dict[str, list[Any]], after: dict[str, list[Any]], own: uuid.UUID
) -> dict[str, Any]:
    """What changed between two `database()` reads, per table: the rows that are new or
    changed (audit events as action and tenant, so that a failure says what happened).

    One write is expected: a refused partner read is on the record of the caller's own chain
    (`partner_access._own_grant`), and no other chain learns of it. Those denials are left out
    here, once checked to name nothing of the other tenants (`own_refusals`)."""
    changes: dict[str, Any] = {}
    for name, rows in after.items():
        fresh = [row for row in rows if row not in before[name]]
        if name in _CHAIN:
            fresh = [row for row in fresh if not _own_refusal(name, row, own)]
        if name == "audit_events":
            fresh = [(row["action"], str(row["tenant_id"])) for row in fresh]
        if fresh or len(rows) < len(before[name]):
            changes[name] = fresh or f"{len(before[name]) - len(rows)} rows gone"
    return changes


def _own_refusal(table: str, row: dict[str, Any], own: uuid.UUID) -> bool:
    if str(row["tenant_id"]) != str(own):
        return False
    return table != "audit_events" or row["outcome"] == "denied"


def own_refusals(before: dict[str, list[Any]], after: dict[str, list[Any]], s: Story) -> list[str]:
    """The leaks in the events a refusal added to the caller's chain (none, please)."""
    fresh = [row for row in after["audit_events"] if row not in before["audit_events"]]
    return [secret for row in fresh for secret in s.leaks if secret in repr(row)]


def leaked(response: httpx.Response, s: Story) -> list[str]:
    body = response.text
    return [secret for secret in s.leaks if secret in body]


async def intruders(kind: str) -> list[Any]:
    """One person of every role in a tenant of `kind` that has nothing to do with the story."""
    tenant = await make_tenant(kind)
    return [await make_person(tenant, role) for role in Role]


KINDS = ["msp", "noc", "both"]


@pytest.mark.parametrize("kind", KINDS)
async def test_no_page_of_another_tenant_opens_for_any_role(http: AppClient, kind: str) -> None:
    s = await story(http)
    routes = portal_routes(http.app, "GET")
    assert "/grants/{grant_id:uuid}" in routes and "/noc/clients/{client_pk:uuid}" in routes
    for person in await intruders(kind):
        await session_for(http, person)
        before = await database()
        for path in routes:
            if _PARAMETER.search(path):
                for url in urls(path, s.ids):
                    response = await http.get(url)
                    who = (person.role.value, url)
                    assert response.status_code in REFUSED, who
                    assert leaked(response, s) == [], who
            else:
                query = QUERY_OF.get(path, lambda ids: {})(s.ids)
                response = await http.get(path, params=query)
                who = (person.role.value, path)
                assert response.status_code in {200, 403, 404}, who
                assert leaked(response, s) == [], who
        after = await database()
        assert written(before, after, person.tenant.id) == {}, person.role.value
        assert own_refusals(before, after, s) == [], person.role.value


@pytest.mark.parametrize("kind", KINDS)
async def test_no_form_of_another_tenant_acts_for_any_role(http: AppClient, kind: str) -> None:
    s = await story(http)
    routes = portal_routes(http.app, "POST")
    naming = naming_forms(s)
    plain = [path for path in routes if not _PARAMETER.search(path)]
    assert set(plain) == set(naming) | set(NAMES_NO_OBJECT), "classify the new form route"
    for person in await intruders(kind):
        await session_for(http, person)
        token = csrf_token(http)
        for path in routes:
            if path in NAMES_NO_OBJECT:
                continue
            if path in naming:
                form, allowed = naming[path]
                targets = [(path, form, allowed)]
            else:
                allowed = REFUSED
                targets = [(url, form_for(url), allowed) for url in urls(path, s.ids)]
            for url, form, allowed in targets:
                before = await database()
                response = await http.post(url, data={**form, "_csrf_token": token})
                who = (person.role.value, url)
                assert response.status_code in allowed, (*who, response.status_code)
                assert leaked(response, s) == [], who
                after = await database()
                assert written(before, after, person.tenant.id) == {}, who
                assert own_refusals(before, after, s) == [], who
        home = await http.get("/")
        assert home.status_code == 200
        assert leaked(home, s) == [], person.role.value
        assert f"<h1>{person.tenant.name}</h1>" in home.text


async def test_the_story_is_reachable_by_its_own_people(http: AppClient) -> None:
    """The other side of the walk: the same URLs open for the story's own admins, so the
    refusals above are about the tenant, not about URLs that never worked."""
    s = await story(http)
    await session_for(http, s.msp.admin)
    for url in (
        f"/grants/{s.ids['grant_id']}",
        f"/documents/{s.ids['document_id']}",
        f"/webhooks/{s.ids['endpoint_id']}",
        f"/audit/grants/{s.ids['grant_id']}",
        f"/documents?client={s.ids['client_id']}",
    ):
        response = await http.get(url)
        assert response.status_code == 200, url
        assert s.msp.tenant.name in response.text or "Contoso" in response.text, url
    await session_for(http, s.noc.admin)
    for url in (f"/noc/clients/{s.ids['client_pk']}", f"/audit/grants/{s.ids['grant_id']}"):
        response = await http.get(url)
        assert response.status_code == 200, url
