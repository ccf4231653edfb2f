"""MSP settings and the account page: the business-hours schedule editor with its preview, the
MSP's sharing rules, webhooks, changing one's password.
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import FormMultiDict
from litestar.params import FromPath
from litestar.plugins.flash import flash
from litestar.response import Redirect, Template
from litestar.status_codes import (
    HTTP_409_CONFLICT,
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_429_TOO_MANY_REQUESTS,
)

from gateway.auth import remember_sign_in, request_meta
from gateway.portal.common import form_text, fragment, need, need_msp, page, portal_actor
from gateway.settings import Settings
from policies.decision import MspRules
from policies.schedule import BusinessHours, Weekday, zone_of
from sharing import accounts, clients, schedules, webhooks
from sharing.clock import Clock
from sharing.documents import normalise_tags
from sharing.schedules import ScheduleView
from sharing.webhooks import EndpointStatus, WebhookIssued
from tenants import service
from tenants.errors import Conflict, DomainError, Invalid, NotFound
from tenants.passwords import MIN_PASSWORD_LENGTH, check_password_strength
from tenants.roles import Actor, Permission

__all__ = ["AdminPages"]

_DAY_NAMES = {
    Weekday.MON: "Monday",
    Weekday.TUE: "Tuesday",
    Weekday.WED: "Wednesday",
    Weekday.THU: "Thursday",
    Weekday.FRI: "Friday",
    Weekday.SAT: "Saturday",
    Weekday.SUN: "Sunday",
}
_ALL_DAY = [["00:00", "24:00"]]
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_AT_PATH = re.compile(r" - at `\$[^`]*`$")
_BOUND = re.compile(r"^Expected `int` (>=|<=) (-?\d+)$")
_RULE_NUMBERS = ("expiry_warning_minutes", "reads_per_minute", "max_grant_hours")
_PASSWORD_CHARS = 4096  # longer than any acceptable password: the domain says what is wrong
_NO_STORE = {"Cache-Control": "no-store"}


@functools.cache
def _zones() -> list[str]:
    return sorted(available_timezones())


def _sentence(text: str) -> str:
    """A domain message as a sentence for a form: capitalised, ending in a full stop."""
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _validation_message(exc: msgspec.ValidationError) -> str:
    """msgspec's message without its JSON path, bounds said in words."""
    message = _AT_PATH.sub("", str(exc))
    bound = _BOUND.match(message)
    if bound:
        side = "at least" if bound.group(1) == ">=" else "at most"
        return f"Enter a whole number of {side} {bound.group(2)}."
    return _sentence(message)


def _formatter(zone: ZoneInfo) -> Callable[[datetime | None], str]:
    def when(moment: datetime | None) -> str:
        if moment is None:
            return ""
        return moment.astimezone(zone).strftime("%a %d %b %Y, %H:%M %Z")

    return when


def _long_when(moment: datetime, zone_name: str) -> str:
    """e.g. `Monday 28 December 2026, 08:00 CET (Europe/Berlin)`."""
    local = moment.astimezone(zone_of(zone_name))
    return f"{local.strftime('%A %d %B %Y, %H:%M %Z')} ({zone_name})"


async def _tenant_zone(actor: Actor) -> ZoneInfo:
    if actor.tenant_id is None:
        return ZoneInfo("UTC")
    tenant = await service.get_tenant(actor.tenant_id)
    try:
        return zone_of(tenant.time_zone)
    except ValueError:
        return ZoneInfo("UTC")


# --- Business hours: form values, parsing, the preview ----------------------------------------


def _schedule_values(saved: ScheduleView | None, default_zone: str) -> dict[str, str]:
    """The saved schedule as the form's field values."""
    if saved is None:
        return {"time_zone": default_zone, "handback_buffer_minutes": "0", "holidays": ""}
    hours = saved.hours
    always = all(hours.weekly.get(day) == _ALL_DAY for day in Weekday)
    values = {
        "time_zone": hours.time_zone,
        "always_open": "on" if always else "",
        "holidays": "\n".join(day.isoformat() for day in sorted(hours.holidays)),
        "handback_buffer_minutes": str(saved.handback_buffer_minutes),
    }
    for day in Weekday:
        ranges = [] if always else hours.weekly.get(day, [])
        values[f"hours_{day.value}"] = ", ".join(f"{start}-{end}" for start, end in ranges)
    return values


def _submitted_schedule(form: FormMultiDict) -> dict[str, str]:
    names = ["time_zone", "always_open", "handback_buffer_minutes"]
    values = {name: form_text(form, name) for name in names}
    values["holidays"] = str(form.get("holidays", ""))
    for day in Weekday:
        values[f"hours_{day.value}"] = form_text(form, f"hours_{day.value}")
    return values


def _parse_day(day: Weekday, text: str) -> tuple[list[list[str]], str | None]:
    """`08:00-12:00, 13:00-17:00` as ranges; the schedule model checks the times."""
    ranges: list[list[str]] = []
    for part in text.replace("\u2013", "-").replace("\u2014", "-").split(","):
        part = part.strip()
        if not part:
            continue
        start, dash, end = part.partition("-")
        if not dash or not start.strip() or not end.strip():
            return [], f"Write each range as 08:00-17:00, separated by commas ({_clip(part)!r})."
        ranges.append([start.strip(), end.strip()])
    try:
        msgspec.convert({"time_zone": "UTC", "weekly": {day.value: ranges}}, BusinessHours)
    except msgspec.ValidationError as exc:
        return [], _sentence(_AT_PATH.sub("", str(exc)).removeprefix(f"{day.value}: "))
    return ranges, None


def _parse_holidays(text: str) -> tuple[list[str], str | None]:
    found: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        try:
            if not _ISO_DATE.match(line):
                raise ValueError(line)
            date.fromisoformat(line)
        except ValueError:
            return [], f"Line {number}: {_clip(line)!r} is not a date written YYYY-MM-DD."
        found.append(line)
    return sorted(set(found)), None


def _parse_buffer(text: str) -> tuple[int, str | None]:
    limit = schedules.MAX_BUFFER_MINUTES
    try:
        minutes = int(text or "0")
    except ValueError:
        return 0, "Enter a whole number of minutes."
    if not 0 <= minutes <= limit:
        return 0, f"Choose between 0 and {limit} minutes."
    return minutes, None


def _parse_schedule(values: Mapping[str, str]) -> tuple[BusinessHours | None, int, dict[str, str]]:
    """The business hours and hand-back buffer of the form, or the errors per field."""
    errors: dict[str, str] = {}
    zone = values.get("time_zone", "")
    if not zone:
        errors["time_zone"] = "Choose a time zone, such as Europe/Berlin."
    else:
        try:
            zone_of(zone)
        except ValueError as exc:
            errors["time_zone"] = _sentence(str(exc))
    always = values.get("always_open") == "on"
    weekly: dict[str, list[list[str]]] = {}
    for day in Weekday:
        if always:
            weekly[day.value] = _ALL_DAY
            continue
        ranges, problem = _parse_day(day, values.get(f"hours_{day.value}", ""))
        if problem:
            errors[f"hours_{day.value}"] = problem
        elif ranges:
            weekly[day.value] = ranges
    holidays, problem = _parse_holidays(values.get("holidays", ""))
    if problem:
        errors["holidays"] = problem
    buffer, problem = _parse_buffer(values.get("handback_buffer_minutes", ""))
    if problem:
        errors["handback_buffer_minutes"] = problem
    if errors:
        return None, 0, errors
    try:
        hours = msgspec.convert(
            {"time_zone": zone, "weekly": weekly, "holidays": holidays}, BusinessHours
        )
    except msgspec.ValidationError as exc:
        key = "holidays" if "holiday" in str(exc) else "schedule_form"
        return None, 0, {key: _validation_message(exc)}
    return hours, buffer, {}


async def _preview(
    request: Request[Any, Any, Any], actor: Actor, hours: BusinessHours | None, buffer: int
) -> dict[str, Any]:
    """What the preview says: where a grant handed off now would end, by these hours."""
    if hours is None:
        return {"problem": "Fix the marked fields to see when a grant would end."}
    clock: Clock = request.app.state.clock
    now = await clock.now()
    end = schedules.proposed_grant_end(hours, buffer, now)
    if end is None:
        return {"ends": None, "always_open": all(hours.weekly.get(d) == _ALL_DAY for d in Weekday)}
    rules = await schedules.get_rules(actor)
    return {
        "ends": _long_when(end, hours.time_zone),
        "ends_iso": end.isoformat(),
        "buffer": buffer,
        "longest": rules.max_grant_hours,
        "too_long": (end - now).total_seconds() > rules.max_grant_hours * 3600,
    }


# --- Sharing rules: form values and parsing ---------------------------------------------------


def _rules_values(rules: MspRules) -> dict[str, Any]:
    return {
        "expiry_warning_minutes": str(rules.expiry_warning_minutes),
        "reads_per_minute": str(rules.reads_per_minute),
        "max_grant_hours": str(rules.max_grant_hours),
        "never_share_clients": [str(client) for client in rules.never_share_clients],
        "never_share_tags": ", ".join(rules.never_share_tags),
        "partner_networks": "\n".join(rules.partner_networks),
        "secrets_need_break_glass": "on" if rules.secrets_need_break_glass else "",
    }


def _submitted_rules(form: FormMultiDict) -> dict[str, Any]:
    values: dict[str, Any] = {name: form_text(form, name) for name in _RULE_NUMBERS}
    values["never_share_clients"] = (
        [str(value) for value in form.getall("never_share_clients")]
        if "never_share_clients" in form
        else []
    )
    values["never_share_tags"] = form_text(form, "never_share_tags")
    values["partner_networks"] = str(form.get("partner_networks", ""))
    values["secrets_need_break_glass"] = form_text(form, "secrets_need_break_glass")
    return values


def _rules_problem(fields: dict[str, Any]) -> str | None:
    """What the rules model says about these fields alone (the others at their defaults)."""
    try:
        msgspec.convert(fields, MspRules)
    except msgspec.ValidationError as exc:
        return _validation_message(exc)
    return None


def _parse_networks(text: str) -> tuple[list[str], str | None]:
    found: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        if problem := _rules_problem({"partner_networks": [line]}):
            return [], f"Line {number}: {problem}"
        found.append(line)
    return found, None


def _parse_rules(
    values: Mapping[str, Any], known_clients: set[str]
) -> tuple[MspRules | None, dict[str, str]]:
    errors: dict[str, str] = {}
    fields: dict[str, Any] = {}
    for name in _RULE_NUMBERS:
        try:
            number = int(values[name])
        except ValueError:
            errors[name] = "Enter a whole number."
            continue
        if problem := _rules_problem({name: number}):
            errors[name] = problem
        else:
            fields[name] = number
    chosen = values["never_share_clients"]
    if any(client not in known_clients for client in chosen):
        errors["never_share_clients"] = "Choose clients from the list."
    fields["never_share_clients"] = chosen
    try:
        fields["never_share_tags"] = normalise_tags(
            [tag for tag in re.split(r"[,\s]+", values["never_share_tags"]) if tag]
        )
    except Invalid as exc:
        errors["never_share_tags"] = _sentence(exc.detail)
    networks, problem = _parse_networks(values["partner_networks"])
    if problem:
        errors["partner_networks"] = problem
    fields["partner_networks"] = networks
    fields["secrets_need_break_glass"] = values["secrets_need_break_glass"] == "on"
    if errors:
        return None, errors
    try:
        return msgspec.convert(fields, MspRules), {}
    except msgspec.ValidationError as exc:
        return None, {"rules_form": _validation_message(exc)}


# --- Webhooks ---------------------------------------------------------------------------------


def _webhook_field(exc: DomainError) -> str:
    code = exc.code or ""
    if code.startswith("url"):
        return "url"
    if code in {"events", "description"}:
        return code
    return "form"


def _allow_private(request: Request[Any, Any, Any]) -> bool:
    settings: Settings = request.app.state.settings
    return settings.webhook_allow_private


# --- Account ----------------------------------------------------------------------------------

_PASSWORD_FIELDS = {"current_password": "current_password", "new_password": "new_password"}


def _password_key(actor: Actor) -> str:
    return f"password:user:{actor.id}"


class AdminPages(Controller):
    path = "/"
    include_in_schema = False

    # --- Business hours and sharing rules -----------------------------------------------------

    @get("/schedule", name="schedule")
    async def schedule_page(self, request: Request[Any, Any, Any]) -> Template:
        actor = await portal_actor(request)
        need_msp(actor, Permission.PARTNERSHIP_MANAGE)
        return await _schedule_page(request, actor)

    @post("/schedule")
    async def save_schedule(self, request: Request[Any, Any, Any]) -> Response[Any]:
        actor = await portal_actor(request)
        need_msp(actor, Permission.PARTNERSHIP_MANAGE)
        values = _submitted_schedule(await request.form())
        hours, buffer, errors = _parse_schedule(values)
        if hours is not None:
            try:
                await schedules.set_schedule(
                    actor, hours, handback_buffer_minutes=buffer, request=request_meta(request)
                )
            except Invalid as exc:
                key = "handback_buffer_minutes" if exc.code == "buffer" else "schedule_form"
                errors[key] = _sentence(exc.detail)
            else:
                flash(request, "Business hours saved.", category="success")
                return Redirect("/schedule", status_code=303)
        return await _schedule_page(
            request,
            actor,
            form=values,
            errors=errors,
            status=HTTP_422_UNPROCESSABLE_ENTITY,
            preview=await _preview(request, actor, None, 0),
        )

    @post("/schedule/preview")
    async def schedule_preview(self, request: Request[Any, Any, Any]) -> Template:
        """The preview of the unsaved form (htmx, on every change)."""
        actor = await portal_actor(request)
        need_msp(actor, Permission.PARTNERSHIP_MANAGE)
        hours, buffer, _ = _parse_schedule(_submitted_schedule(await request.form()))
        return fragment(
            "_schedule_preview.html", preview=await _preview(request, actor, hours, buffer)
        )

    @post("/schedule/rules")
    async def save_rules(self, request: Request[Any, Any, Any]) -> Response[Any]:
        actor = await portal_actor(request)
        need_msp(actor, Permission.PARTNERSHIP_MANAGE)
        values = _submitted_rules(await request.form())
        known = {str(c.id) for c in await clients.list_clients(actor, include_archived=True)}
        rules, errors = _parse_rules(values, known)
        if rules is not None:
            await schedules.set_rules(actor, rules, request=request_meta(request))
            flash(request, "Sharing rules saved.", category="success")
            return Redirect("/schedule", status_code=303)
        return await _schedule_page(
            request, actor, rules_form=values, errors=errors, status=HTTP_422_UNPROCESSABLE_ENTITY
        )

    # --- Webhooks -----------------------------------------------------------------------------

    @get("/webhooks", name="webhooks")
    async def webhooks_page(self, request: Request[Any, Any, Any]) -> Template:
        actor = await portal_actor(request)
        need(actor, Permission.WEBHOOK_MANAGE)
        return await _webhooks_page(actor)

    @post("/webhooks")
    async def register_webhook(self, request: Request[Any, Any, Any]) -> Template:
        actor = await portal_actor(request)
        need(actor, Permission.WEBHOOK_MANAGE)
        form = await request.form()
        values: dict[str, Any] = {
            "url": form_text(form, "url"),
            "description": form_text(form, "description"),
            "events": [str(event) for event in form.getall("events")] if "events" in form else [],
        }
        errors: dict[str, str] = {}
        if not values["url"]:
            errors["url"] = "Enter the URL that receives the events."
        if not values["events"]:
            errors["events"] = "Choose at least one event."
        if not errors:
            try:
                issued = await webhooks.create_endpoint(
                    actor,
                    request.app.state.keyring,
                    url=values["url"],
                    events=values["events"],
                    description=values["description"],
                    allow_private=_allow_private(request),
                    request=request_meta(request),
                )
            except (Invalid, Conflict) as exc:
                errors[_webhook_field(exc)] = _sentence(exc.detail)
            else:
                return await _webhook_page(actor, issued.endpoint.id, issued=issued)
        status = HTTP_409_CONFLICT if "form" in errors else HTTP_422_UNPROCESSABLE_ENTITY
        return await _webhooks_page(actor, form=values, errors=errors, status=status)

    @get("/webhooks/{endpoint_id:uuid}")
    async def webhook_page(
        self, request: Request[Any, Any, Any], endpoint_id: FromPath[uuid.UUID]
    ) -> Template:
        actor = await portal_actor(request)
        need(actor, Permission.WEBHOOK_MANAGE)
        return await _webhook_page(actor, endpoint_id)

    @post("/webhooks/{endpoint_id:uuid}/rotate")
    async def rotate_webhook_secret(
        self, request: Request[Any, Any, Any], endpoint_id: FromPath[uuid.UUID]
    ) -> Template:
        actor = await portal_actor(request)
        need(actor, Permission.WEBHOOK_MANAGE)
        issued = await webhooks.rotate_secret(
            actor, request.app.state.keyring, endpoint_id, request=request_meta(request)
        )
        return await _webhook_page(actor, endpoint_id, issued=issued)

    @post("/webhooks/{endpoint_id:uuid}/status")
    async def set_webhook_status(
        self, request: Request[Any, Any, Any], endpoint_id: FromPath[uuid.UUID]
    ) -> Redirect:
        actor = await portal_actor(request)
        need(actor, Permission.WEBHOOK_MANAGE)
        wanted = form_text(await request.form(), "status")
        if wanted not in {EndpointStatus.ACTIVE.value, EndpointStatus.DISABLED.value}:
            await webhooks.get_endpoint(actor, endpoint_id)  # another tenant's: 404 first
            flash(request, "Choose enable or disable.", category="error")
        else:
            view = await webhooks.update_endpoint(
                actor,
                endpoint_id,
                status=EndpointStatus(wanted),
                request=request_meta(request),
            )
            done = "enabled" if view.status is EndpointStatus.ACTIVE else "disabled"
            flash(request, f"The endpoint is {done}.", category="success")
        return Redirect(f"/webhooks/{endpoint_id}", status_code=303)

    @post("/webhooks/{endpoint_id:uuid}/delete")
    async def delete_webhook(
        self, request: Request[Any, Any, Any], endpoint_id: FromPath[uuid.UUID]
    ) -> Redirect:
        actor = await portal_actor(request)
        need(actor, Permission.WEBHOOK_MANAGE)
        view = await webhooks.get_endpoint(actor, endpoint_id)
        await webhooks.delete_endpoint(actor, endpoint_id, request=request_meta(request))
        flash(request, f"The endpoint {view.url} is deleted.", category="success")
        return Redirect("/webhooks", status_code=303)

    @post("/webhooks/{endpoint_id:uuid}/deliveries/{delivery_id:uuid}/resend")
    async def resend_delivery(
        self,
        request: Request[Any, Any, Any],
        endpoint_id: FromPath[uuid.UUID],
        delivery_id: FromPath[uuid.UUID],
    ) -> Redirect:
        actor = await portal_actor(request)
        need(actor, Permission.WEBHOOK_MANAGE)
        try:
            await webhooks.resend(
                actor,
                request.app.state.clock,
                delivery_id,
                endpoint_id=endpoint_id,
                request=request_meta(request),
            )
        except Conflict as exc:
            flash(request, _sentence(exc.detail), category="error")
        else:
            flash(request, "The delivery is queued to be sent again.", category="success")
        return Redirect(f"/webhooks/{endpoint_id}", status_code=303)

    # --- Account ------------------------------------------------------------------------------

    @get("/account", name="account")
    async def account_page(self, request: Request[Any, Any, Any]) -> Template:
        actor = await portal_actor(request)
        return await page(actor, "account.html", min_password=MIN_PASSWORD_LENGTH)

    @post("/account/password")
    async def change_password(self, request: Request[Any, Any, Any]) -> Response[Any]:
        actor = await portal_actor(request)
        form = await request.form()
        current = str(form.get("current_password", ""))[:_PASSWORD_CHARS]
        new = str(form.get("new_password", ""))[:_PASSWORD_CHARS]
        repeat = str(form.get("repeat_password", ""))[:_PASSWORD_CHARS]
        errors: dict[str, str] = {}
        if not current:
            errors["current_password"] = "Enter your current password."
        if problem := check_password_strength(new):
            errors["new_password"] = _sentence(problem)
        elif new != repeat:
            errors["repeat_password"] = "The two new passwords differ: type the same twice."
        settings: Settings = request.app.state.settings
        throttle = request.app.state.throttle
        status = HTTP_422_UNPROCESSABLE_ENTITY
        if not errors and await throttle.count(_password_key(actor)) >= settings.login_max_failures:
            errors["current_password"] = "Too many wrong passwords. Wait a few minutes."
            status = HTTP_429_TOO_MANY_REQUESTS
        if not errors:
            try:
                await accounts.change_password(actor, current, new, request=request_meta(request))
            except Invalid as exc:
                if exc.code == "current_password":
                    await throttle.hit(_password_key(actor), settings.login_window_seconds)
                errors[_PASSWORD_FIELDS.get(exc.code or "", "new_password")] = _sentence(exc.detail)
            else:
                await throttle.reset(_password_key(actor))
                await remember_sign_in(request, actor)  # a new session id with the new password
                flash(request, "Your password is changed.", category="success")
                return Redirect("/account", status_code=303)
        return await page(
            actor, "account.html", status=status, errors=errors, min_password=MIN_PASSWORD_LENGTH
        )


async def _saved_schedule(actor: Actor) -> ScheduleView | None:
    try:
        return await schedules.get_schedule(actor)
    except NotFound:
        return None


async def _schedule_page(
    request: Request[Any, Any, Any],
    actor: Actor,
    *,
    form: dict[str, str] | None = None,
    rules_form: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
    preview: dict[str, Any] | None = None,
) -> Template:
    """The schedule page; a refused form shows its input again, the other its saved values.
    The preview is of the saved hours unless given."""
    saved = await _saved_schedule(actor)
    zone = await _tenant_zone(actor)
    if preview is not None:
        pass
    elif saved is None:
        preview = {"unset": True}
    else:
        preview = await _preview(request, actor, saved.hours, saved.handback_buffer_minutes)
    return await page(
        actor,
        "schedule.html",
        status=status,
        errors=errors or {},
        form=form or _schedule_values(saved, str(zone.key)),
        rules_form=rules_form or _rules_values(await schedules.get_rules(actor)),
        clients=await clients.list_clients(actor, include_archived=True),
        days=[(day.value, _DAY_NAMES[day]) for day in Weekday],
        zones=_zones(),
        preview=preview,
        saved=saved,
        when=_formatter(zone),
    )


async def _webhooks_page(
    actor: Actor,
    *,
    form: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Template:
    return await page(
        actor,
        "webhooks.html",
        status=status,
        errors=errors or {},
        form=form or {"url": "", "description": "", "events": []},
        endpoints=await webhooks.list_endpoints(actor),
        event_types=webhooks.EVENT_TYPES,
        when=_formatter(await _tenant_zone(actor)),
    )


async def _webhook_page(
    actor: Actor, endpoint_id: uuid.UUID, *, issued: WebhookIssued | None = None
) -> Template:
    """One endpoint with its recent deliveries; `issued` carries a secret to show this once."""
    endpoint = issued.endpoint if issued else await webhooks.get_endpoint(actor, endpoint_id)
    return await page(
        actor,
        "webhook.html",
        headers=_NO_STORE if issued else None,
        endpoint=endpoint,
        secret=issued.secret if issued else None,
        deliveries=await webhooks.list_deliveries(actor, endpoint_id, limit=50),
        Status=EndpointStatus,
        when=_formatter(await _tenant_zone(actor)),
    )
