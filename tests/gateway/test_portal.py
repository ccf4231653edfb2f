"""The web portal: sign-in, sessions, throttling, sign-out, partnership pages, security headers."""

from __future__ import annotations

import asyncio
import html
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest

from gateway.portal.common import render_markdown
from policies.ceiling import Ceiling
from sharing import partnerships
from sharing.audit import verify_chain
from sharing.partnerships import PartnershipAction
from sharing.tables import Partnership
from tenants.roles import PLATFORM_TENANT_ID, Role
from tests.helpers import (
    AppClient,
    Person,
    audit_events,
    csrf_token,
    hand_off,
    make_msp_side,
    make_noc_side,
    make_person,
    make_tenant,
    partner_up,
    served,
    session_for,
    sign_in,
    table_snapshot,
)

WRONG = "The email or the password is wrong."


@pytest.fixture
async def client(settings, db) -> AsyncIterator[AppClient]:
    # conftest's `client` runs the app on another event loop: see `tests.helpers.served`.
    async with served(settings) as http:
        yield http


async def post_login(client: AppClient, email: str, password: str) -> httpx.Response:
    if not client.cookies.get("shiftgate_csrf"):
        assert (await client.get("/login")).status_code == 200
    return await client.post(
        "/login",
        data={"email": email, "password": password, "_csrf_token": csrf_token(client)},
    )


def set_cookie(response: httpx.Response, name: str) -> str | None:
    """The raw `Set-Cookie` header for `name` in `response`, if any."""
    return next(
        (
            value
            for value in response.headers.get_list("set-cookie")
            if value.startswith(f"{name}=")
        ),
        None,
    )


def cookie_value(header: str) -> str:
    return header.split(";", 1)[0].split("=", 1)[1]


def field_error(page: str, error_id: str) -> str | None:
    match = re.search(rf'id="{error_id}">([^<]*)<', page)
    return html.unescape(match.group(1)) if match else None


async def partnered(msp_admin: Person, noc_admin: Person) -> uuid.UUID:
    view = await partnerships.invite(
        msp_admin.actor, noc_slug=noc_admin.tenant.slug, ceiling=Ceiling()
    )
    return view.id


# --- Sign-in -----------------------------------------------------------------------------------


async def test_the_sign_in_page_is_a_form_with_a_csrf_field_and_no_session(client) -> None:
    page = await client.get("/login")

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'name="email"' in page.text and 'name="password"' in page.text
    assert f'name="_csrf_token" value="{csrf_token(client)}"' in page.text
    assert set_cookie(page, "shiftgate_session") is None  # no anonymous session to fixate


async def test_signing_in_leads_to_a_dashboard_with_the_tenant_and_its_partnerships(
    client,
) -> None:
    msp_admin = await make_person(await make_tenant("msp"))
    noc_admin = await make_person(await make_tenant("noc"))
    pid = await partnered(msp_admin, noc_admin)
    await partnerships.act(noc_admin.actor, pid, PartnershipAction.ACCEPT)

    signed_in = await post_login(client, msp_admin.email, msp_admin.password)

    assert signed_in.status_code == 302
    assert signed_in.headers["location"] == "/"
    dashboard = await client.get("/")
    assert dashboard.status_code == 200
    assert f"<h1>{msp_admin.tenant.name}</h1>" in dashboard.text
    assert noc_admin.tenant.name in dashboard.text
    assert '<span class="status active">active</span>' in dashboard.text
    [event] = await audit_events(msp_admin.tenant.id, "login:succeeded")
    assert event["actor_id"] == str(msp_admin.user_id)


@pytest.mark.parametrize("planted", ["attacker", "earlier session"])
async def test_the_session_cookie_is_httponly_lax_and_new_at_every_sign_in(client, planted) -> None:
    person = await make_person(await make_tenant("msp"))
    assert (await client.get("/login")).status_code == 200
    if planted == "attacker":
        before = "attackerchosen"
        client.cookies.set("shiftgate_session", before, domain="testserver.local")
    else:  # someone signed in on this browser before, and the cookie stayed
        await sign_in(client, await make_person(await make_tenant("noc")))
        before = client.cookies["shiftgate_session"]

    response = await post_login(client, person.email, person.password)

    assert response.status_code == 302
    header = set_cookie(response, "shiftgate_session")
    assert header is not None
    attributes = {part.strip().lower() for part in header.split(";")[1:]}
    assert {"httponly", "samesite=lax", "path=/"} <= attributes
    after = cookie_value(header)
    assert after not in {before, "null", ""}
    assert client.cookies["shiftgate_session"] == after
    me = await client.get("/api/v1/me")
    assert me.status_code == 200 and me.json()["id"] == str(person.user_id)
    # The id from before sign-in authenticates nobody.
    client.cookies = httpx.Cookies()
    client.cookies.set("shiftgate_session", before, domain="testserver.local")
    assert (await client.get("/api/v1/me")).status_code == 401
    home = await client.get("/")
    assert (home.status_code, home.headers["location"]) == (302, "/login")


async def test_a_wrong_password_is_refused_and_audited_in_the_users_tenant(client) -> None:
    person = await make_person(await make_tenant("msp"))

    response = await post_login(client, person.email, "not the password at all")

    assert response.status_code == 401
    assert WRONG in response.text
    assert set_cookie(response, "shiftgate_session") is None
    [event] = await audit_events(person.tenant.id, "login:failed")
    assert (event["actor_id"], event["reason"], event["outcome"]) == (
        str(person.user_id),
        "wrong password",
        "failure",
    )
    assert (await verify_chain(person.tenant.id)).ok
    assert (await client.get("/api/v1/me")).status_code == 401


async def test_an_unknown_email_gets_the_same_page_and_is_audited_on_the_platform(
    client,
) -> None:
    person = await make_person(await make_tenant("msp"))
    stranger = f"nobody-{uuid.uuid4().hex[:8]}@example.test"

    wrong_password = await post_login(client, person.email, "not the password at all")
    unknown = await post_login(client, stranger, "not the password at all")

    assert unknown.status_code == wrong_password.status_code == 401
    assert unknown.text.replace(stranger, "EMAIL") == wrong_password.text.replace(
        person.email, "EMAIL"
    )
    [event] = await audit_events(PLATFORM_TENANT_ID, "login:failed")
    assert (event["actor_label"], event["reason"]) == (stranger, "unknown email")
    assert event["actor_id"] is None
    assert (await verify_chain(PLATFORM_TENANT_ID)).ok


async def test_signing_in_without_the_csrf_token_is_refused(client) -> None:
    person = await make_person(await make_tenant("msp"))
    assert (await client.get("/login")).status_code == 200

    response = await client.post(
        "/login", data={"email": person.email, "password": person.password}
    )

    assert response.status_code == 403
    assert set_cookie(response, "shiftgate_session") is None
    assert "shiftgate_session" not in client.cookies
    assert await audit_events(person.tenant.id, "login:succeeded") == []
    assert (await client.get("/api/v1/me")).status_code == 401


async def test_too_many_failures_throttle_the_email_even_with_the_right_password(
    client,
) -> None:
    settings = client.app.state.settings
    person = await make_person(await make_tenant("msp"))
    other = await make_person(await make_tenant("msp"))
    for _ in range(settings.login_max_failures):
        refused = await post_login(client, person.email, "not the password at all")
        assert refused.status_code == 401

    throttled = await post_login(client, person.email, person.password)

    assert throttled.status_code == 429
    assert throttled.headers["retry-after"] == str(settings.login_window_seconds)
    assert "Too many failed sign-ins" in throttled.text
    assert set_cookie(throttled, "shiftgate_session") is None
    [event] = await audit_events(PLATFORM_TENANT_ID, "login:throttled")
    assert (event["actor_label"], event["outcome"]) == (person.email, "denied")
    assert await audit_events(person.tenant.id, "login:succeeded") == []
    failed = await audit_events(person.tenant.id, "login:failed")
    assert len(failed) == settings.login_max_failures
    # The count is per email: someone else at the same address still signs in.
    assert (await post_login(client, other.email, other.password)).status_code == 302


async def test_signing_out_ends_the_session_on_the_server(client) -> None:
    person = await make_person(await make_tenant("noc"))
    await sign_in(client, person)
    old = client.cookies["shiftgate_session"]

    response = await client.post("/logout", data={"_csrf_token": csrf_token(client)})

    assert response.status_code == 302
    assert response.headers["location"] == "/login"
    home = await client.get("/")
    assert (home.status_code, home.headers["location"]) == (302, "/login")
    [event] = await audit_events(person.tenant.id, "login:logout")
    assert event["actor_id"] == str(person.user_id)
    # Replaying the old cookie does not bring the session back.
    client.cookies = httpx.Cookies()
    client.cookies.set("shiftgate_session", old, domain="testserver.local")
    assert (await client.get("/api/v1/me")).status_code == 401


@pytest.mark.parametrize("path", ["/", "/partnerships"])
async def test_pages_redirect_to_sign_in_without_a_session(client, path) -> None:
    response = await client.get(path)

    assert response.status_code == 302
    assert response.headers["location"] == "/login"


# --- Partnership pages -------------------------------------------------------------------------


def _invite_form(client: AppClient, noc_slug: str, **changes: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "noc": noc_slug,
        "document_kinds": ["sop", "network"],
        "max_grant_hours": "12",
        "_csrf_token": csrf_token(client),
    }
    form.update(changes)
    return {key: value for key, value in form.items() if value is not None}


async def test_the_invite_form_sends_an_invitation(client) -> None:
    msp_admin = await make_person(await make_tenant("msp"))
    noc = await make_tenant("noc")
    await sign_in(client, msp_admin)

    response = await client.post("/partnerships", data=_invite_form(client, noc.slug))

    assert response.status_code == 302
    assert response.headers["location"] == "/partnerships"
    row = await Partnership.select().first().output(load_json=True)
    assert (row["tenant_id"], row["noc_tenant_id"], row["status"]) == (
        msp_admin.tenant.id,
        noc.id,
        "invited",
    )
    assert row["ceiling"]["document_kinds"] == ["sop", "network"]
    assert row["ceiling"]["max_grant_hours"] == 12
    assert row["ceiling"]["secrets_allowed"] is False
    page = await client.get("/partnerships")
    assert f"Invitation sent to {noc.slug}." in page.text


@pytest.mark.parametrize(
    ("changes", "error_id", "message"),
    [
        ({"noc": ""}, "noc-error", "Enter the NOC's slug."),
        ({"noc": "   "}, "noc-error", "Enter the NOC's slug."),
        ({"noc": "no-such-noc"}, "noc-error", "no NOC tenant with the slug 'no-such-noc'"),
        ({"max_grant_hours": "0"}, "hours-error", "Choose between 1 and 168 hours."),
        ({"max_grant_hours": "169"}, "hours-error", "Choose between 1 and 168 hours."),
        ({"max_grant_hours": "twelve"}, "hours-error", "Enter a whole number of hours."),
        ({"document_kinds": None}, "kinds-error", "Choose at least one document kind."),
    ],
)
async def test_a_bad_invitation_re_renders_the_form_with_the_error_at_its_field(
    client, changes, error_id, message
) -> None:
    msp_admin = await make_person(await make_tenant("msp"))
    noc = await make_tenant("noc")
    await sign_in(client, msp_admin)

    response = await client.post("/partnerships", data=_invite_form(client, noc.slug, **changes))

    assert response.status_code == 422
    assert field_error(response.text, error_id) == message
    assert f'aria-describedby="{error_id}"' in response.text
    errors = re.findall(r'class="error" id="([a-z-]+)"', response.text)
    assert errors == [error_id]
    if "noc" not in changes:
        assert f'value="{noc.slug}"' in response.text  # what was typed is kept
    assert await Partnership.count() == 0


async def test_accept_and_suspend_buttons_change_the_partnership(client) -> None:
    msp_admin = await make_person(await make_tenant("msp"))
    noc_admin = await make_person(await make_tenant("noc"))
    pid = await partnered(msp_admin, noc_admin)
    await sign_in(client, noc_admin)
    page = await client.get("/partnerships")
    assert f'action="/partnerships/{pid}/accept"' in page.text
    assert f'action="/partnerships/{pid}/resume"' not in page.text

    for action, status, past in (
        ("accept", "active", "accepted"),
        ("suspend", "suspended", "suspended"),
    ):
        response = await client.post(
            f"/partnerships/{pid}/{action}", data={"_csrf_token": csrf_token(client)}
        )
        assert response.status_code == 302, action
        assert response.headers["location"] == "/partnerships"
        row = await Partnership.select().where(Partnership.id == pid).first()
        assert row["status"] == status
        page = await client.get("/partnerships")
        assert f"Partnership is now {status}." in page.text
        for tenant in (msp_admin.tenant, noc_admin.tenant):
            [event] = await audit_events(tenant.id, f"partnership:{past}")
            assert event["actor_id"] == str(noc_admin.user_id)
    assert f'action="/partnerships/{pid}/resume"' in page.text


async def test_a_button_without_the_csrf_token_changes_nothing(client) -> None:
    msp_admin = await make_person(await make_tenant("msp"))
    noc_admin = await make_person(await make_tenant("noc"))
    pid = await partnered(msp_admin, noc_admin)
    await sign_in(client, noc_admin)
    before = await table_snapshot()

    response = await client.post(f"/partnerships/{pid}/accept", data={})

    assert response.status_code == 403
    assert await table_snapshot() == before


@pytest.mark.parametrize("action", ["accept", "decline", "suspend", "resume", "end"])
async def test_another_tenants_partnership_cannot_be_changed_from_the_portal(
    client, action
) -> None:
    msp_admin = await make_person(await make_tenant("msp"))
    noc_admin = await make_person(await make_tenant("noc"))
    pid = await partnered(msp_admin, noc_admin)
    outsider = await make_person(await make_tenant("both"))
    await session_for(client, outsider)
    before = await table_snapshot()

    response = await client.post(
        f"/partnerships/{pid}/{action}", data={"_csrf_token": csrf_token(client)}
    )

    assert response.status_code == 404
    assert str(pid) not in response.text
    assert await table_snapshot() == before


async def test_a_partnership_button_without_a_session_goes_to_sign_in(client) -> None:
    msp_admin = await make_person(await make_tenant("msp"))
    noc_admin = await make_person(await make_tenant("noc"))
    pid = await partnered(msp_admin, noc_admin)
    assert (await client.get("/login")).status_code == 200
    before = await table_snapshot()

    response = await client.post(
        f"/partnerships/{pid}/accept", data={"_csrf_token": csrf_token(client)}
    )

    assert (response.status_code, response.headers["location"]) == (302, "/login")
    assert await table_snapshot() == before


# --- Headers on every kind of response ---------------------------------------------------------


async def _signed_in(client: AppClient) -> None:
    await sign_in(client, await make_person(await make_tenant("msp")))


async def _csrf_refused(client: AppClient) -> httpx.Response:
    await client.get("/login")
    return await client.post("/login", data={"email": "a@b.example", "password": "x"})


RESPONSES = {
    "sign-in page": lambda client: client.get("/login"),
    "wrong password": lambda client: post_login(client, "a@b.example", "wrong"),
    "csrf refused": _csrf_refused,
    "redirect": lambda client: client.get("/"),
    "unknown page": lambda client: client.get("/no/such/page"),
    "unknown api path": lambda client: client.get("/api/v1/no-such-thing"),
    "wrong method": lambda client: client.delete("/api/v1/me"),
    "api 401": lambda client: client.get("/api/v1/me"),
    "static file": lambda client: client.get("/static/shiftgate.css"),
}


@pytest.mark.parametrize("name", [*RESPONSES, "dashboard", "partners page"])
async def test_every_response_carries_the_security_headers(client, name) -> None:
    if name in RESPONSES:
        response = await RESPONSES[name](client)
    else:
        await _signed_in(client)
        response = await client.get("/" if name == "dashboard" else "/partnerships")
        assert response.status_code == 200

    assert response.status_code < 500, response.text
    csp = response.headers.get("content-security-policy", "")
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert response.headers.get("x-frame-options") == "DENY"
    assert response.headers.get("x-content-type-options") == "nosniff"
    assert re.fullmatch(r"[A-Za-z0-9._-]{8,64}", response.headers.get("x-request-id", ""))


async def test_an_unknown_portal_page_is_a_404_page(client) -> None:
    response = await client.get("/no/such/page")

    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "The page does not exist" in response.text


async def test_the_portal_roles_see_no_manage_buttons(client) -> None:
    msp_admin = await make_person(await make_tenant("msp"))
    noc_admin = await make_person(await make_tenant("noc"))
    pid = await partnered(msp_admin, noc_admin)
    await sign_in(client, await make_person(noc_admin.tenant, Role.AUDITOR))

    page = await client.get("/partnerships")

    assert page.status_code == 200
    assert msp_admin.tenant.name in page.text
    assert f"/partnerships/{pid}/" not in page.text
    assert "Invite a partner NOC" not in page.text


@pytest.mark.slow
async def test_a_session_ends_after_the_configured_inactivity(settings, db) -> None:
    """Each request renews the session; a pause longer than `session_hours` signs out."""
    short = msgspec.structs.replace(settings, session_hours=3 / 3600)  # three seconds
    async with served(short) as client:
        person = await make_person(await make_tenant())
        await sign_in(client, person)
        for _ in range(4):  # busy for longer than the limit, never idle for as long
            await asyncio.sleep(1)
            assert (await client.get("/")).status_code == 200
        await asyncio.sleep(4.5)
        response = await client.get("/")
        assert (response.status_code, response.headers["location"]) == (302, "/login")


async def test_a_polled_fragment_whose_session_ended_sends_the_page_to_sign_in(client) -> None:
    """htmx follows `HX-Redirect` with the whole page; a plain redirect would put the sign-in
    form inside the polled part of the page."""
    response = await client.get("/grants/live", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response.headers["hx-redirect"] == "/login"
    plain = await client.get("/grants/live")
    assert (plain.status_code, plain.headers["location"]) == (302, "/login")


async def test_the_dashboard_lists_running_grants_to_those_who_work_them(client) -> None:
    msp = await make_msp_side(client)
    noc = await make_noc_side()
    await partner_up(msp, noc)
    created = await hand_off(client, msp, noc)
    grant_id = created["grant"]["id"]
    technicians = [
        (await make_person(msp.tenant, Role.TECHNICIAN), f"/grants/{grant_id}"),
        (await make_person(noc.tenant, Role.TECHNICIAN), f"/noc/grants/{grant_id}"),
    ]
    for person, link in technicians:
        client.cookies.clear()
        await sign_in(client, person)
        page = (await client.get("/")).text
        assert "Grants running now" in page
        assert f'href="{link}">{created["psa_reference"]}</a>' in page
    for tenant in (msp.tenant, noc.tenant):  # auditors review the log, they do not work grants
        client.cookies.clear()
        await sign_in(client, await make_person(tenant, Role.AUDITOR))
        page = (await client.get("/")).text
        assert "Grants running now" not in page and grant_id not in page
        assert 'href="/audit"' in page


def test_markdown_is_rendered_safely_below_the_pages_own_heading() -> None:
    html = str(
        render_markdown(
            "# Runbook\n\n## Steps\n\n<script>alert(1)</script>\n\n[x](javascript:alert(1))"
        )
    )
    assert "<h2>Runbook</h2>" in html and "<h3>Steps</h3>" in html and "<h1>" not in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'href="javascript:' not in html
