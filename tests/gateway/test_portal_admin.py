"""Portal pages for MSP settings and the account: business hours with the preview of the grant end,
sharing rules, the partnership ceiling editor, webhooks (secret shown once, deliveries, re-send),
and changing one's password."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import msgspec
import pytest

from gateway.webhook_sender import HttpxWebhookSender
from policies.ceiling import Ceiling
from policies.decision import MspRules
from policies.schedule import BusinessHours
from sharing import clients, partnerships, schedules, webhooks
from sharing.clock import DatabaseClock, ManualClock
from sharing.events import EventType, emit
from sharing.partnerships import PartnershipAction
from sharing.tables import AuditEvent, Schedule, WebhookDelivery, WebhookEndpoint
from tenants.roles import Role
from tenants.tables import User
from tests.helpers import (
    BERLIN,
    BUSINESS_HOURS,
    STORY_START,
    AppClient,
    Person,
    audit_events,
    csrf_token,
    make_person,
    make_tenant,
    served,
    served_at,
    session_for,
    sign_in,
    table_snapshot,
)
from tests.webhook_receiver import receiving

# --- Fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture
async def clock() -> ManualClock:
    """17:55 on Wednesday 23 December 2026 in Berlin: the story's hand-off moment."""
    return ManualClock(STORY_START)


@pytest.fixture
async def client(settings, db, clock) -> AsyncIterator[AppClient]:
    async with served_at(settings, clock) as http:
        yield http


@pytest.fixture
async def lab(settings, db) -> AsyncIterator[AppClient]:
    """Webhook URLs on 127.0.0.1 allowed, so that a real receiver on this machine gets them."""
    async with served(msgspec.structs.replace(settings, webhook_allow_private=True)) as http:
        yield http


def field_error(page: str, error_id: str) -> str | None:
    match = re.search(rf'id="{re.escape(error_id)}">([^<]*)<', page)
    return html.unescape(match.group(1)) if match else None


def error_ids(page: str) -> list[str]:
    return re.findall(r'class="error"[^>]* id="([^"]+)"', page)


def flashes(page: str) -> list[str]:
    return [html.unescape(text) for text in re.findall(r'class="flash [a-z]+"[^>]*>([^<]*)<', page)]


async def msp_admin() -> Person:
    return await make_person(await make_tenant("msp"))


async def post_form(http: AppClient, path: str, data: dict[str, Any]) -> httpx.Response:
    return await http.post(path, data={**data, "_csrf_token": csrf_token(http)})


# --- Business hours ----------------------------------------------------------------------------


NEW_YORK = ZoneInfo("America/New_York")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def schedule_form(**changes: str) -> dict[str, str]:
    """Mon-Fri 08:00-17:00 in Berlin, no holidays, no hand-back buffer."""
    form = {"time_zone": "Europe/Berlin", "holidays": "", "handback_buffer_minutes": "0"}
    for day in WEEKDAYS:
        form[f"hours_{day}"] = "08:00-17:00" if day not in {"sat", "sun"} else ""
    form.update(changes)
    return form


def long_date(moment: datetime) -> str:
    """How a person writes the local time: `Thursday 24 December 2026, 08:00`."""
    return moment.strftime("%A %d %B %Y, %H:%M")


async def test_the_saved_schedule_shows_when_a_hand_off_now_would_end(client) -> None:
    admin = await msp_admin()
    hours = msgspec.convert(BUSINESS_HOURS, BusinessHours)
    await schedules.set_schedule(admin.actor, hours)
    await sign_in(client, admin)

    page = await client.get("/schedule")

    assert page.status_code == 200
    # Wednesday 17:55; Thursday 24 and Friday 25 are holidays, then the weekend.
    expected = datetime(2026, 12, 28, 8, 0, tzinfo=BERLIN)
    text = html.unescape(page.text)
    assert "If you hand off now, the grant ends at" in text
    assert f"{long_date(expected)} CET (Europe/Berlin)" in text
    assert f'datetime="{expected.astimezone(UTC).isoformat()}"' in page.text
    assert 'value="Europe/Berlin"' in page.text
    assert 'id="hours_mon" name="hours_mon" autocomplete="off" value="08:00-18:00"' in page.text
    assert "2026-12-24\n2026-12-25</textarea>" in page.text
    assert 'hx-post="/schedule/preview"' in page.text
    assert 'hx-trigger="change, input delay:400ms"' in page.text


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, datetime(2026, 12, 24, 8, 0, tzinfo=BERLIN)),
        ({"holidays": "2026-12-24\n\n2026-12-25"}, datetime(2026, 12, 28, 8, 0, tzinfo=BERLIN)),
        ({"handback_buffer_minutes": "30"}, datetime(2026, 12, 24, 8, 30, tzinfo=BERLIN)),
        ({"hours_thu": "", "hours_fri": "13:00-17:00"}, datetime(2026, 12, 25, 13, tzinfo=BERLIN)),
        # 17:55 in Berlin is 11:55 in New York: open now; next opening 08:00 there tomorrow
        ({"time_zone": "America/New_York"}, datetime(2026, 12, 24, 8, 0, tzinfo=NEW_YORK)),
    ],
)
async def test_the_preview_follows_the_unsaved_form(client, changes, expected) -> None:
    admin = await msp_admin()
    await sign_in(client, admin)
    before = await table_snapshot()

    response = await post_form(client, "/schedule/preview", schedule_form(**changes))

    assert response.status_code == 200
    assert "<html" not in response.text  # a fragment for htmx, no frame
    assert long_date(expected) in html.unescape(response.text)
    assert await table_snapshot() == before


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"always_open": "on"}, "open around the clock"),
        ({day: "" for day in (f"hours_{d}" for d in WEEKDAYS)}, "needs an explicit end"),
        ({"hours_mon": "8-12"}, "Fix the marked fields"),
    ],
)
async def test_a_preview_without_a_shift_end_says_so(client, changes, message) -> None:
    await sign_in(client, await msp_admin())

    response = await post_form(client, "/schedule/preview", schedule_form(**changes))

    assert response.status_code == 200
    assert message in response.text
    assert "If you hand off now" not in response.text


async def test_the_preview_warns_when_the_grant_would_be_longer_than_the_rules_allow(
    client,
) -> None:
    admin = await msp_admin()
    await schedules.set_rules(admin.actor, MspRules(max_grant_hours=24))
    await sign_in(client, admin)

    # Wednesday 17:55 to Monday 08:00 is far longer than 24 hours.
    response = await post_form(
        client, "/schedule/preview", schedule_form(holidays="2026-12-24\n2026-12-25")
    )

    assert "longer than the longest grant of your sharing rules (24 hours)" in response.text


async def test_saving_business_hours_stores_them_and_is_audited(client) -> None:
    admin = await msp_admin()
    await sign_in(client, admin)
    form = schedule_form(
        hours_mon="08:00-12:00, 13:00-17:00",
        hours_sat="09:00\u201312:00",
        holidays="2026-12-25\n2026-12-24\n",
        handback_buffer_minutes="15",
    )

    response = await post_form(client, "/schedule", form)

    assert response.status_code == 303
    assert response.headers["location"] == "/schedule"
    saved = await schedules.get_schedule(admin.actor)
    assert saved.hours.weekly["mon"] == [["08:00", "12:00"], ["13:00", "17:00"]]
    assert saved.hours.weekly["sat"] == [["09:00", "12:00"]]
    assert "sun" not in saved.hours.weekly
    assert [day.isoformat() for day in saved.hours.holidays] == ["2026-12-24", "2026-12-25"]
    assert saved.handback_buffer_minutes == 15
    [event] = await audit_events(admin.tenant.id, "schedule:changed")
    assert event["actor_id"] == str(admin.user_id)
    page = await client.get("/schedule")
    assert "Business hours saved." in flashes(page.text)
    assert 'value="08:00-12:00, 13:00-17:00"' in page.text


async def test_the_24_7_box_opens_every_day_and_comes_back_checked(client) -> None:
    admin = await msp_admin()
    await sign_in(client, admin)

    response = await post_form(client, "/schedule", schedule_form(always_open="on"))

    assert response.status_code == 303
    saved = await schedules.get_schedule(admin.actor)
    assert all(saved.hours.weekly[day] == [["00:00", "24:00"]] for day in WEEKDAYS)
    page = await client.get("/schedule")
    assert re.search(r'id="always_open" name="always_open"\s+checked', page.text)
    assert "open around the clock" in page.text


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"time_zone": ""}, "time_zone", "Choose a time zone, such as Europe/Berlin."),
        ({"time_zone": "Mars/Olympus"}, "time_zone", "Unknown time zone 'Mars/Olympus'"),
        ({"hours_mon": "8-12"}, "hours_mon", "'8' is not a time HH:MM (00:00 to 24:00)."),
        ({"hours_tue": "08:00"}, "hours_tue", "Write each range as 08:00-17:00"),
        ({"hours_wed": "08:00-12:00, 11:00-13:00"}, "hours_wed", "Ranges overlap."),
        ({"hours_thu": "17:00-08:00"}, "hours_thu", "(17:00-08:00)"),
        ({"hours_sun": "10:00-25:00"}, "hours_sun", "'25:00' is not a time"),
        (
            {"holidays": "2026-12-24\n24.12.2026"},
            "holidays",
            "Line 2: '24.12.2026' is not a date written YYYY-MM-DD.",
        ),
        ({"holidays": "2026-02-30"}, "holidays", "Line 1: '2026-02-30' is not a date"),
        (
            {"handback_buffer_minutes": "300"},
            "handback_buffer_minutes",
            "Choose between 0 and 240 minutes.",
        ),
        (
            {"handback_buffer_minutes": "soon"},
            "handback_buffer_minutes",
            "Enter a whole number of minutes.",
        ),
    ],
)
async def test_bad_business_hours_show_the_error_at_the_field_and_save_nothing(
    client, changes, field, message
) -> None:
    admin = await msp_admin()
    await sign_in(client, admin)
    before = await table_snapshot()

    response = await post_form(client, "/schedule", schedule_form(**changes))

    assert response.status_code == 422
    assert message in (field_error(response.text, f"{field}-error") or "")
    assert error_ids(response.text) == [f"{field}-error"]
    assert f'aria-describedby="{field}-error"' in response.text
    assert 'value="08:00-17:00"' in response.text  # what was typed elsewhere is kept
    assert "Fix the marked fields" in response.text
    assert await table_snapshot() == before
    assert await Schedule.count() == 0


# --- Sharing rules -----------------------------------------------------------------------------


def rules_form(**changes: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "max_grant_hours": "72",
        "expiry_warning_minutes": "20",
        "reads_per_minute": "60",
        "never_share_tags": "",
        "partner_networks": "",
        "secrets_need_break_glass": "on",
    }
    form.update(changes)
    return {key: value for key, value in form.items() if value is not None}


async def test_saving_sharing_rules(client) -> None:
    admin = await msp_admin()
    contoso = await clients.create_client(admin.actor, name="Contoso Ltd", short_code="CONTOSO")
    await sign_in(client, admin)
    form = rules_form(
        never_share_clients=[str(contoso.id)],
        never_share_tags="Board-Only, hr",
        partner_networks="203.0.113.0/24\n\n2001:db8::/32",
    )

    response = await post_form(client, "/schedule/rules", form)

    assert response.status_code == 303
    assert response.headers["location"] == "/schedule"
    rules = await schedules.get_rules(admin.actor)
    assert rules == MspRules(
        never_share_clients=[contoso.id],
        never_share_tags=["board-only", "hr"],
        max_grant_hours=72,
        partner_networks=["203.0.113.0/24", "2001:db8::/32"],
        secrets_need_break_glass=True,
        reads_per_minute=60,
        expiry_warning_minutes=20,
    )
    assert len(await audit_events(admin.tenant.id, "rules:changed")) == 1
    page = await client.get("/schedule")
    assert "Sharing rules saved." in flashes(page.text)
    assert re.search(rf'value="{contoso.id}"\s+checked', page.text)
    assert 'value="board-only, hr"' in page.text


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"max_grant_hours": "0"}, "max_grant_hours", "Enter a whole number of at least 1."),
        ({"max_grant_hours": "169"}, "max_grant_hours", "Enter a whole number of at most 168."),
        ({"reads_per_minute": "lots"}, "reads_per_minute", "Enter a whole number."),
        (
            {"expiry_warning_minutes": "-5"},
            "expiry_warning_minutes",
            "Enter a whole number of at least 0.",
        ),
        ({"never_share_tags": "ok, Not OK!"}, "never_share_tags", "Tag 'ok!': use 1-40"),
        (
            {"partner_networks": "10.0.0.0/8\n10.0.0.0/33"},
            "partner_networks",
            "Line 2: '10.0.0.0/33' does not appear to be an IPv4 or IPv6 network.",
        ),
        (
            {"never_share_clients": [str(uuid.uuid4())]},
            "never_share_clients",
            "Choose clients from the list.",
        ),
    ],
)
async def test_bad_sharing_rules_show_the_error_at_the_field_and_save_nothing(
    client, changes, field, message
) -> None:
    admin = await msp_admin()
    await sign_in(client, admin)
    before = await table_snapshot()

    response = await post_form(client, "/schedule/rules", rules_form(**changes))

    assert response.status_code == 422
    assert message in (field_error(response.text, f"{field}-error") or "")
    assert error_ids(response.text) == [f"{field}-error"]
    typed = changes[field]
    if isinstance(typed, str):  # what was typed is kept
        assert html.escape(typed) in response.text
    assert await table_snapshot() == before


@pytest.mark.parametrize(
    ("kind", "role"), [("noc", Role.ADMIN), ("msp", Role.AUDITOR), ("msp", Role.TECHNICIAN)]
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/schedule"),
        ("POST", "/schedule"),
        ("POST", "/schedule/preview"),
        ("POST", "/schedule/rules"),
    ],
)
async def test_only_msp_admins_open_the_msp_settings(client, kind, role, method, path) -> None:
    person = await make_person(await make_tenant(kind), role)
    await sign_in(client, person)
    before = await table_snapshot()

    if method == "GET":
        response = await client.get(path)
    else:
        response = await post_form(client, path, {**schedule_form(), **rules_form()})

    assert response.status_code == 403
    assert "Your role in this tenant does not allow this" in response.text or kind == "noc"
    assert await table_snapshot() == before


# --- Partnership ceilings ----------------------------------------------------------------------


async def invited(admin: Person) -> tuple[Person, uuid.UUID]:
    noc_admin = await make_person(await make_tenant("noc"))
    view = await partnerships.invite(
        admin.actor, noc_slug=noc_admin.tenant.slug, ceiling=Ceiling(max_grant_hours=16)
    )
    return noc_admin, view.id


def ceiling_form(**changes: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "document_kinds": ["sop", "runbook"],
        "clients_scope": "all",
        "max_grant_hours": "10",
    }
    form.update(changes)
    return {key: value for key, value in form.items() if value is not None}


async def test_the_ceiling_editor_replaces_the_ceiling(client) -> None:
    admin = await msp_admin()
    contoso = await clients.create_client(admin.actor, name="Contoso Ltd", short_code="CONTOSO")
    noc_admin, pid = await invited(admin)
    await sign_in(client, admin)
    page = await client.get("/partnerships")
    assert f'action="/partnerships/{pid}/ceiling"' in page.text

    response = await post_form(
        client,
        f"/partnerships/{pid}/ceiling",
        ceiling_form(clients_scope="listed", clients=[str(contoso.id)], secrets_allowed="on"),
    )

    assert response.status_code == 303
    assert response.headers["location"] == "/partnerships"
    view = await partnerships.get_partnership(admin.actor, pid)
    assert view.ceiling == Ceiling(
        clients=[contoso.id],
        document_kinds=["sop", "runbook"],
        max_grant_hours=10,
        secrets_allowed=True,
    )
    for tenant in (admin.tenant, noc_admin.tenant):
        [event] = await audit_events(tenant.id, "partnership:ceiling_changed")
        assert event["actor_id"] == str(admin.user_id)
    page = await client.get("/partnerships")
    assert f"Ceiling for {noc_admin.tenant.name} saved." in flashes(page.text)
    assert "clients: Contoso Ltd; up to 10 h; secrets allowed" in page.text


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"max_grant_hours": "0"}, "hours", "Choose between 1 and 168 hours."),
        ({"max_grant_hours": "ten"}, "hours", "Enter a whole number of hours."),
        ({"document_kinds": None}, "kinds", "Choose at least one document kind."),
        ({"clients_scope": "listed"}, "clients", "Choose at least one client, or all clients."),
        (
            {"clients_scope": "listed", "clients": ["not-a-uuid"]},
            "clients",
            "Choose clients from the list.",
        ),
    ],
)
async def test_a_bad_ceiling_shows_the_error_in_its_editor_and_changes_nothing(
    client, changes, field, message
) -> None:
    admin = await msp_admin()
    _, pid = await invited(admin)
    await sign_in(client, admin)
    before = await table_snapshot()

    response = await post_form(client, f"/partnerships/{pid}/ceiling", ceiling_form(**changes))

    assert response.status_code == 422
    error_id = f"ceiling-{pid}-{field}-error"
    assert field_error(response.text, error_id) == message
    assert error_ids(response.text) == [error_id]
    assert re.search(r"<details class=\"card\" open>", response.text)
    assert await table_snapshot() == before


async def test_the_noc_and_other_tenants_cannot_change_a_ceiling(client) -> None:
    admin = await msp_admin()
    noc_admin, pid = await invited(admin)
    outsider = await msp_admin()
    auditor = await make_person(admin.tenant, Role.AUDITOR)
    before = await table_snapshot()

    await session_for(client, noc_admin)
    page = await client.get("/partnerships")
    assert f'action="/partnerships/{pid}/ceiling"' not in page.text
    as_noc = await post_form(client, f"/partnerships/{pid}/ceiling", ceiling_form())
    await session_for(client, outsider)
    as_outsider = await post_form(client, f"/partnerships/{pid}/ceiling", ceiling_form())
    bad_input = await post_form(
        client, f"/partnerships/{pid}/ceiling", ceiling_form(max_grant_hours="0")
    )
    await session_for(client, auditor)
    as_auditor = await post_form(client, f"/partnerships/{pid}/ceiling", ceiling_form())

    assert as_noc.status_code == 409
    assert "only the MSP sets the ceiling" in as_noc.text
    assert as_outsider.status_code == bad_input.status_code == 404
    assert as_auditor.status_code == 403
    after = await table_snapshot()  # sign-ins were audited meanwhile; nothing else changed
    assert after["partnerships"] == before["partnerships"]
    assert await audit_events(admin.tenant.id, "partnership:ceiling_changed") == []


async def test_ending_and_declining_ask_first(client) -> None:
    admin = await msp_admin()
    noc_admin, pid = await invited(admin)
    await sign_in(client, noc_admin)

    page = await client.get("/partnerships")

    for action in ("decline", "end"):
        button = re.search(
            rf'action="/partnerships/{pid}/{action}".*?<button([^>]*)>', page.text, re.S
        )
        assert button is not None and "data-confirm=" in button.group(1)
    accept = re.search(rf'action="/partnerships/{pid}/accept".*?<button([^>]*)>', page.text, re.S)
    assert accept is not None and "data-confirm" not in accept.group(1)


async def test_an_ended_partnership_has_no_ceiling_editor(client) -> None:
    admin = await msp_admin()
    _, pid = await invited(admin)
    await partnerships.act(admin.actor, pid, PartnershipAction.END)
    await sign_in(client, admin)

    page = await client.get("/partnerships")
    response = await post_form(client, f"/partnerships/{pid}/ceiling", ceiling_form())

    assert f'action="/partnerships/{pid}/ceiling"' not in page.text
    assert response.status_code == 409
    assert "cannot change the ceiling of a partnership that is ended" in response.text


# --- Webhooks ----------------------------------------------------------------------------------

PUBLIC_URL = "https://8.8.8.8/shiftgate"
SECRET = re.compile(r"whsec_[A-Za-z0-9_-]+")


async def register(http: AppClient, url: str = PUBLIC_URL, **changes: Any) -> httpx.Response:
    form: dict[str, Any] = {"url": url, "events": ["grant.created", "grant.revoked"]}
    form.update(changes)
    return await post_form(http, "/webhooks", {k: v for k, v in form.items() if v is not None})


async def only_endpoint() -> dict[str, Any]:
    [row] = await WebhookEndpoint.select(WebhookEndpoint.id, WebhookEndpoint.status)
    return dict(row)


async def test_registering_shows_the_signing_secret_exactly_once(client) -> None:
    admin = await msp_admin()
    await sign_in(client, admin)

    response = await register(client, description="NOC pager")

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    [secret] = SECRET.findall(response.text)
    assert response.text.count(secret) == 1
    assert "shown only this once" in response.text
    endpoint = await only_endpoint()
    assert PUBLIC_URL in response.text and "NOC pager" in response.text
    for path in ("/webhooks", f"/webhooks/{endpoint['id']}"):
        again = await client.get(path)
        assert again.status_code == 200
        assert PUBLIC_URL in again.text
        assert SECRET.search(again.text) is None
    [event] = await audit_events(admin.tenant.id, "webhook:created")
    assert secret not in str(event)
    views = await webhooks.list_endpoints(admin.actor)
    assert [view.events for view in views] == [["grant.created", "grant.revoked"]]


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"url": ""}, "url", "Enter the URL that receives the events."),
        ({"url": "ftp://8.8.8.8/h"}, "url", "The URL must start with https://"),
        ({"url": "https://me:pw@8.8.8.8/h"}, "url", "must not carry credentials"),
        ({"url": "http://127.0.0.1:9/h"}, "url", "127.0.0.1"),
        ({"events": None}, "events", "Choose at least one event."),
        ({"events": ["grant.exploded"]}, "events", "Unknown event types: 'grant.exploded'."),
        ({"description": "x" * 201}, "description", "more than 200 characters"),
    ],
)
async def test_a_bad_registration_shows_the_error_at_the_field_and_writes_nothing(
    client, changes, field, message
) -> None:
    await sign_in(client, await msp_admin())
    before = await table_snapshot()

    response = await register(client, **changes)

    assert response.status_code == 422
    assert message in (field_error(response.text, f"{field}-error") or "")
    assert error_ids(response.text) == [f"{field}-error"]
    assert f'aria-describedby="{field}-error"' in response.text
    if "url" not in changes:
        assert f'value="{PUBLIC_URL}"' in response.text
    assert SECRET.search(response.text) is None
    assert await table_snapshot() == before


async def test_rotating_shows_a_new_secret_once(client) -> None:
    admin = await msp_admin()
    await sign_in(client, admin)
    [first] = SECRET.findall((await register(client)).text)
    endpoint = await only_endpoint()
    page = await client.get(f"/webhooks/{endpoint['id']}")
    assert re.search(r'action="[^"]+/rotate".*?data-confirm=', page.text, re.S)

    response = await post_form(client, f"/webhooks/{endpoint['id']}/rotate", {})

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    [second] = SECRET.findall(response.text)
    assert second != first and response.text.count(second) == 1
    assert len(await audit_events(admin.tenant.id, "webhook:secret_rotated")) == 1
    assert SECRET.search((await client.get(f"/webhooks/{endpoint['id']}")).text) is None


async def test_deliveries_show_their_attempts_and_can_be_re_sent(lab) -> None:
    admin = await msp_admin()
    await sign_in(lab, admin)
    async with receiving(lambda _: 503) as receiver:
        await register(lab, receiver.url())
        endpoint = await only_endpoint()
        await emit((admin.tenant.id,), EventType.GRANT_CREATED, {"grant_id": str(uuid.uuid4())})
        await webhooks.dispatch_outbox(datetime.now(UTC))
        sender = HttpxWebhookSender(timeout=5.0, allow_private=True)
        try:
            report = await webhooks.deliver_due(lab.app.state.keyring, sender, DatabaseClock())
        finally:
            await sender.aclose()
    assert report.failed == 1
    [delivery] = await WebhookDelivery.select(WebhookDelivery.id, WebhookDelivery.event_id)

    page = await lab.get(f"/webhooks/{endpoint['id']}")

    assert page.status_code == 200
    assert str(delivery["event_id"]) in page.text
    assert "grant.created" in page.text
    assert "HTTP 503" in page.text
    assert '<span class="status pending">pending</span>' in page.text
    resend_path = f"/webhooks/{endpoint['id']}/deliveries/{delivery['id']}/resend"
    assert f'action="{resend_path}"' in page.text

    response = await post_form(lab, resend_path, {})

    assert response.status_code == 303
    assert response.headers["location"] == f"/webhooks/{endpoint['id']}"
    [event] = await audit_events(admin.tenant.id, "webhook:redelivered")
    assert event["target_id"] == str(delivery["id"])
    page = await lab.get(f"/webhooks/{endpoint['id']}")
    assert "The delivery is queued to be sent again." in flashes(page.text)


async def test_disable_enable_and_delete(client) -> None:
    admin = await msp_admin()
    await sign_in(client, admin)
    await register(client)
    endpoint = await only_endpoint()
    path = f"/webhooks/{endpoint['id']}"

    disabled = await post_form(client, f"{path}/status", {"status": "disabled"})
    assert disabled.status_code == 303
    assert (await only_endpoint())["status"] == "disabled"
    page = await client.get(path)
    assert "The endpoint is disabled." in flashes(page.text)
    assert ">Enable</button>" in page.text
    enabled = await post_form(client, f"{path}/status", {"status": "active"})
    assert enabled.status_code == 303
    assert (await only_endpoint())["status"] == "active"
    page = await client.get(path)
    delete = re.search(r'action="[^"]+/delete".*?<button([^>]*)>', page.text, re.S)
    assert delete is not None and "data-confirm=" in delete.group(1)

    deleted = await post_form(client, f"{path}/delete", {})

    assert (deleted.status_code, deleted.headers["location"]) == (303, "/webhooks")
    assert await WebhookEndpoint.count() == 0
    assert len(await audit_events(admin.tenant.id, "webhook:deleted")) == 1
    assert (await client.get(path)).status_code == 404


async def test_another_msps_webhook_is_a_404_everywhere(client) -> None:
    victim = await msp_admin()
    await sign_in(client, victim)
    await register(client)
    endpoint = await only_endpoint()
    await emit((victim.tenant.id,), EventType.GRANT_CREATED, {"grant_id": str(uuid.uuid4())})
    await webhooks.dispatch_outbox(datetime.now(UTC))
    [delivery] = await WebhookDelivery.select(WebhookDelivery.id)
    await session_for(client, await msp_admin())
    before = await table_snapshot()
    rows_before = await WebhookEndpoint.select().output(load_json=True)
    path = f"/webhooks/{endpoint['id']}"

    responses = [
        await client.get(path),
        await post_form(client, f"{path}/rotate", {}),
        await post_form(client, f"{path}/status", {"status": "disabled"}),
        await post_form(client, f"{path}/status", {"status": "bogus"}),
        await post_form(client, f"{path}/delete", {}),
        await post_form(client, f"{path}/deliveries/{delivery['id']}/resend", {}),
    ]

    assert [response.status_code for response in responses] == [404] * len(responses)
    assert all(PUBLIC_URL not in response.text for response in responses)
    assert PUBLIC_URL not in (await client.get("/webhooks")).text
    assert await table_snapshot() == before
    assert await WebhookEndpoint.select().output(load_json=True) == rows_before


@pytest.mark.parametrize("role", [Role.TECHNICIAN, Role.AUDITOR])
async def test_technicians_and_auditors_cannot_manage_webhooks(client, role) -> None:
    await sign_in(client, await make_person(await make_tenant("msp"), role))
    before = await table_snapshot()

    listing = await client.get("/webhooks")
    registering = await register(client)

    assert listing.status_code == registering.status_code == 403
    assert await table_snapshot() == before


# --- Account -----------------------------------------------------------------------------------

NEW_PASSWORD = "a brand new and long passphrase"


def password_form(
    current: str, new: str = NEW_PASSWORD, repeat: str | None = None
) -> dict[str, str]:
    return {
        "current_password": current,
        "new_password": new,
        "repeat_password": new if repeat is None else repeat,
    }


async def stored_hash(person: Person) -> str:
    row = await User.select(User.password_hash).where(User.id == person.user_id).first()
    assert row is not None
    return str(row["password_hash"])


async def signs_in(http: AppClient, email: str, password: str) -> bool:
    http.cookies = httpx.Cookies()
    assert (await http.get("/login")).status_code == 200
    response = await http.post(
        "/login", data={"email": email, "password": password, "_csrf_token": csrf_token(http)}
    )
    return response.status_code == 302


async def test_the_account_page_lists_memberships(client) -> None:
    person = await make_person(await make_tenant("noc"), Role.AUDITOR)
    await sign_in(client, person)

    page = await client.get("/account")

    assert page.status_code == 200
    assert person.tenant.name in page.text and "auditor" in page.text
    assert 'autocomplete="current-password"' in page.text
    assert 'action="/account/password"' in page.text


async def test_changing_the_password_then_only_the_new_one_signs_in(client) -> None:
    person = await msp_admin()
    await sign_in(client, person)
    old_hash = await stored_hash(person)
    old_session = client.cookies["shiftgate_session"]

    response = await post_form(client, "/account/password", password_form(person.password))

    assert response.status_code == 303
    assert response.headers["location"] == "/account"
    assert client.cookies["shiftgate_session"] != old_session  # a new session id
    page = await client.get("/account")
    assert page.status_code == 200
    assert "Your password is changed." in flashes(page.text)
    new_hash = await stored_hash(person)
    assert new_hash != old_hash and new_hash.startswith("scrypt$")
    [event] = await audit_events(person.tenant.id, "user:password_changed")
    assert (event["actor_id"], event["target_id"]) == (str(person.user_id), str(person.user_id))
    assert NEW_PASSWORD not in str(event) and person.password not in str(event)
    assert not await signs_in(client, person.email, person.password)
    assert await signs_in(client, person.email, NEW_PASSWORD)


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        (
            password_form("not the password at all"),
            "current_password",
            "The current password is wrong.",
        ),
        (password_form(""), "current_password", "Enter your current password."),
        (
            password_form("{current}", repeat=NEW_PASSWORD + "!"),
            "repeat_password",
            "The two new passwords differ: type the same twice.",
        ),
        (
            password_form("{current}", "too short"),
            "new_password",
            "The password needs at least 12 characters.",
        ),
        (
            password_form("{current}", "x" * 1025),
            "new_password",
            "The password may have at most 1024 characters.",
        ),
        (
            password_form("{current}", "{current}"),
            "new_password",
            "The new password must differ from the current one.",
        ),
    ],
)
async def test_a_refused_password_change_says_why_at_the_field_and_changes_nothing(
    client, form, field, message
) -> None:
    person = await msp_admin()
    await sign_in(client, person)
    old_hash = await stored_hash(person)
    before = await table_snapshot()
    form = {key: value.replace("{current}", person.password) for key, value in form.items()}

    response = await post_form(client, "/account/password", form)

    assert response.status_code == 422
    assert field_error(response.text, f"{field}-error") == message
    assert error_ids(response.text) == [f"{field}-error"]
    assert f'aria-describedby="{field}-error"' in response.text
    assert person.password not in response.text and NEW_PASSWORD not in response.text
    assert await stored_hash(person) == old_hash
    assert await table_snapshot() == before


async def test_guessing_the_current_password_is_throttled(client) -> None:
    person = await msp_admin()
    await sign_in(client, person)
    settings = client.app.state.settings
    for _ in range(settings.login_max_failures):
        wrong = await post_form(client, "/account/password", password_form("wrong guess here"))
        assert wrong.status_code == 422

    right = await post_form(client, "/account/password", password_form(person.password))

    assert right.status_code == 429
    assert "Too many wrong passwords" in (field_error(right.text, "current_password-error") or "")
    assert await signs_in(client, person.email, person.password)
    assert await audit_events(person.tenant.id, "user:password_changed") == []


async def test_the_account_pages_need_a_session(client) -> None:
    assert (await client.get("/login")).status_code == 200
    before = await table_snapshot()

    page = await client.get("/account")
    change = await post_form(client, "/account/password", password_form("whatever it is"))

    assert (page.status_code, page.headers["location"]) == (302, "/login")
    assert (change.status_code, change.headers["location"]) == (302, "/login")
    assert await table_snapshot() == before
    assert await AuditEvent.count() == before["counts"]["audit_events"]
