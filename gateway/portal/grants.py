"""MSP hand-offs and grants: hand off an incident, the live grants list, revoke, complete,
extensions, hand-back notes, the rotation list.

Handing off takes three steps, all plain POST forms: the form (scope pre-filled from the
partnership's ceiling, end from the schedule), a confirmation that lists what the partner will
see (`handoffs.plan_handoff` and `handoffs.documents_in_scope`, nothing written), and the hand-off
itself (`handoffs.create_handoff`). The grant pages poll a fragment every 3 s.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from litestar import Controller, Request, get, post
from litestar.datastructures import FormMultiDict
from litestar.params import FromPath
from litestar.plugins.flash import flash
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_422_UNPROCESSABLE_ENTITY

from gateway.auth import request_meta
from gateway.portal.common import (
    form_text,
    fragment,
    need_msp,
    page,
    portal_actor,
    render_markdown,
)
from policies.ceiling import Ceiling
from policies.decision import GrantScope
from policies.schedule import zone_of
from policies.vocabulary import DocumentKind, Sensitivity
from sharing import clients, handoffs, partnerships, rotation
from sharing.clock import Clock
from sharing.handoffs import GrantStatus, GrantView, HandoffPlan, Severity4
from sharing.partnerships import PartnershipStatus, PartnershipView
from sharing.schedules import MAX_BUFFER_MINUTES
from tenants.errors import Conflict, DomainError, Invalid, NotFound
from tenants.keyring import KeyRing
from tenants.roles import Actor, Permission

__all__ = ["GrantPages"]

_Request = Request[Any, Any, Any]
_LIVE = frozenset({GrantStatus.SCHEDULED, GrantStatus.ACTIVE})
_RECENT = timedelta(days=7)
"""Ended grants stay on the live list this long..."""
_MAX_ENDED = 25
"""...and this many of them at most."""

# Which form field a domain refusal is about (its reason code); anything else goes on top.
_FIELD_OF_CODE = {
    "partner_unknown": "partner",
    "partnership_inactive": "partner",
    "client_unknown": "client_id",
    "ceiling_client": "client_id",
    "never_share_client": "client_id",
    "psa_reference": "psa_reference",
    "summary": "summary",
    "tags": "tags",
    "ceiling_kind": "document_kinds",
    "secrets_not_allowed": "max_sensitivity",
    "too_long": "ends_at",
    "ends_in_past": "ends_at",
    "ends_before_starts": "ends_at",
    "no_schedule": "ends_at",
    "no_shift_end": "ends_at",
}

_SEVERITY_HINTS = {
    Severity4.P1: "respond in about 15 minutes",
    Severity4.P2: "respond in about 30 minutes",
    Severity4.P3: "respond in about 2 hours",
    Severity4.P4: "respond in about 8 hours",
}


# --- What the app holds ------------------------------------------------------------------------


def _clock(request: _Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


def _keyring(request: _Request) -> KeyRing:
    keyring: KeyRing = request.app.state.keyring
    return keyring


async def _msp_actor(request: _Request) -> Actor:
    """The signed-in MSP technician or admin (403 for anyone else)."""
    actor = await portal_actor(request)
    need_msp(actor, Permission.HANDOFF_CREATE)
    return actor


# --- Times: shown in the MSP's zone, typed as datetime-local in it -------------------------------


@dataclass(frozen=True, slots=True)
class _Times:
    """Formats instants for one zone (templates call `local`, `utc` and `field`)."""

    zone_name: str

    @property
    def zone(self) -> ZoneInfo:
        return zone_of(self.zone_name)

    def local(self, instant: datetime) -> str:
        return instant.astimezone(self.zone).strftime("%a %d %b %Y, %H:%M %Z")

    def utc(self, instant: datetime) -> str:
        return instant.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")

    def field(self, instant: datetime | None) -> str:
        """The value of a datetime-local input."""
        return "" if instant is None else instant.astimezone(self.zone).strftime("%Y-%m-%dT%H:%M")

    def iso(self, instant: datetime) -> str:
        return instant.astimezone(UTC).isoformat()

    def parse(self, text: str) -> datetime:
        """A datetime-local value read in the zone (the first of two repeated hours, as the
        schedule does); ValueError when it is not one."""
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=self.zone)
        return moment.astimezone(UTC)


async def _times(actor: Actor, clock: Clock) -> _Times:
    return _Times((await handoffs.proposed_end(actor, clock)).time_zone)


def _left(grant: GrantView) -> str:
    """Time left as text, for pages without JavaScript (portal.js counts it down)."""
    minutes = grant.seconds_left // 60
    if minutes >= 60:
        return f"{minutes // 60} h {minutes % 60:02d} min"
    return f"{minutes} min"


# --- The hand-off form ---------------------------------------------------------------------------


@dataclass(frozen=True)
class HandoffForm:
    """The hand-off form as typed, kept to show again (on the form, and hidden on the
    confirmation page). `ends_at` is a datetime-local value in the MSP's zone."""

    partner: str = ""
    client_id: str = ""
    psa_reference: str = ""
    summary: str = ""
    severity: str = ""
    document_kinds: list[str] = field(default_factory=list)
    tags: str = ""
    max_sensitivity: str = ""
    ends_at: str = ""
    handback_buffer_minutes: str = "0"

    @classmethod
    def posted(cls, form: FormMultiDict) -> HandoffForm:
        return cls(
            partner=form_text(form, "partner"),
            client_id=form_text(form, "client_id"),
            psa_reference=form_text(form, "psa_reference"),
            summary=form_text(form, "summary"),
            severity=form_text(form, "severity"),
            document_kinds=[str(kind) for kind in form.getall("document_kinds", [])],
            tags=form_text(form, "tags"),
            max_sensitivity=form_text(form, "max_sensitivity"),
            ends_at=form_text(form, "ends_at"),
            handback_buffer_minutes=form_text(form, "handback_buffer_minutes") or "0",
        )

    def with_scope(self, scope: GrantScope) -> HandoffForm:
        return replace(
            self,
            document_kinds=[kind.value for kind in scope.document_kinds],
            tags=", ".join(scope.tags),
            max_sensitivity=scope.max_sensitivity.value,
        )


@dataclass(frozen=True, slots=True)
class _Parsed:
    client_id: uuid.UUID
    severity: Severity4
    scope: GrantScope
    ends_at: datetime | None


def _scope_of(values: HandoffForm, errors: dict[str, str]) -> GrantScope | None:
    try:
        kinds = [DocumentKind(kind) for kind in values.document_kinds]
    except ValueError:
        errors["document_kinds"] = "Choose document kinds from the list."
        return None
    if not kinds:
        errors["document_kinds"] = "Choose at least one document kind."
    try:
        sensitivity = Sensitivity(values.max_sensitivity)
    except ValueError:
        errors["max_sensitivity"] = "Choose the most sensitive level the partner may see."
        return None
    if not kinds:
        return None
    tags = [tag.strip() for tag in values.tags.split(",") if tag.strip()]
    return GrantScope(document_kinds=kinds, tags=tags, max_sensitivity=sensitivity)


def _end_of(values: HandoffForm, times: _Times, errors: dict[str, str]) -> datetime | None:
    """The end typed plus the hand-back buffer; None (the schedule's default) when empty."""
    try:
        buffer = int(values.handback_buffer_minutes)
    except ValueError:
        buffer = -1
    if not 0 <= buffer <= MAX_BUFFER_MINUTES:
        errors["handback_buffer_minutes"] = f"Enter 0 to {MAX_BUFFER_MINUTES} minutes."
        return None
    if not values.ends_at:
        return None
    try:
        return times.parse(values.ends_at) + timedelta(minutes=buffer)
    except ValueError:
        errors["ends_at"] = "Enter a date and time, e.g. 2026-12-28 08:00."
        return None


def _parse(values: HandoffForm, times: _Times, errors: dict[str, str]) -> _Parsed | None:
    """The form's own checks (present, well-formed); the domain decides everything else."""
    if not values.partner:
        errors["partner"] = "Choose a partner NOC."
    try:
        client_id = uuid.UUID(values.client_id)
    except ValueError:
        errors["client_id"] = "Choose a client."
    if not values.psa_reference:
        errors["psa_reference"] = "Enter the incident's reference in your PSA."
    if not values.summary:
        errors["summary"] = "Write what the partner needs to know."
    try:
        severity = Severity4(values.severity)
    except ValueError:
        errors["severity"] = "Choose a severity."
    scope = _scope_of(values, errors)
    ends_at = _end_of(values, times, errors)
    if errors or scope is None:
        return None
    return _Parsed(client_id, severity, scope, ends_at)


def _domain_errors(exc: DomainError) -> dict[str, str]:
    """A refusal as messages per field; each reason of a refused grant at its own field."""
    reasons = exc.extra.get("reasons") or [{"code": exc.code or "", "message": exc.detail}]
    errors: dict[str, str] = {}
    for reason in reasons:
        name = _FIELD_OF_CODE.get(str(reason["code"]), "form")
        message = str(reason["message"])
        errors[name] = f"{errors[name]}; {message}" if name in errors else message
    return errors


async def _plan(
    actor: Actor, clock: Clock, values: HandoffForm, times: _Times
) -> tuple[HandoffPlan | None, dict[str, str]]:
    errors: dict[str, str] = {}
    parsed = _parse(values, times, errors)
    if parsed is None:
        return None, errors
    try:
        plan = await handoffs.plan_handoff(
            actor,
            clock,
            partner=values.partner,
            client_id=parsed.client_id,
            psa_reference=values.psa_reference,
            summary=values.summary,
            severity=parsed.severity,
            scope=parsed.scope,
            ends_at=parsed.ends_at,
        )
    except (Invalid, Conflict) as exc:
        return None, _domain_errors(exc)
    return plan, {}


async def _partners(actor: Actor) -> list[PartnershipView]:
    """The partner NOCs this MSP may hand off to now."""
    return [
        view
        for view in await partnerships.list_partnerships(actor)
        if view.status is PartnershipStatus.ACTIVE and view.msp.id == actor.tenant_id
    ]


def _partnership_for(partners: list[PartnershipView], slug: str) -> PartnershipView | None:
    return next((view for view in partners if view.noc.slug == slug), None)


def _scope_context(
    partners: list[PartnershipView], values: HandoffForm, errors: dict[str, str]
) -> dict[str, Any]:
    """What the scope fieldset (`_handoff_scope.html`) needs."""
    chosen = _partnership_for(partners, values.partner)
    return {
        "values": values,
        "errors": errors,
        "partnership": chosen,
        "ceiling": chosen.ceiling if chosen else None,
        "kinds": list(DocumentKind),
        "sensitivities": list(Sensitivity),
    }


def _with_ceiling(values: HandoffForm, partners: list[PartnershipView]) -> HandoffForm:
    """The scope reset to the widest the chosen partner's ceiling allows."""
    chosen = _partnership_for(partners, values.partner)
    ceiling: Ceiling | None = chosen.ceiling if chosen else None
    if ceiling is None:
        return replace(values, document_kinds=[], tags="", max_sensitivity="")
    return values.with_scope(handoffs.default_scope(ceiling))


async def _form_page(
    request: _Request,
    actor: Actor,
    values: HandoffForm | None = None,
    *,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Template:
    clock = _clock(request)
    proposed = await handoffs.proposed_end(actor, clock)
    times = _Times(proposed.time_zone)
    partners = await _partners(actor)
    if values is None:  # a fresh form: the first partner, its ceiling, the next shift end
        chosen = str(request.query_params.get("partner", ""))
        if _partnership_for(partners, chosen) is None:
            chosen = partners[0].noc.slug if partners else ""
        values = _with_ceiling(
            HandoffForm(
                partner=chosen,
                ends_at=times.field(proposed.shift_end),
                handback_buffer_minutes=str(proposed.handback_buffer_minutes),
            ),
            partners,
        )
    return await page(
        actor,
        "handoff_new.html",
        status=status,
        partners=partners,
        clients=await clients.list_clients(actor),
        severities=list(Severity4),
        severity_hints=_SEVERITY_HINTS,
        proposed=proposed,
        times=times,
        max_buffer=MAX_BUFFER_MINUTES,
        **_scope_context(partners, values, errors or {}),
    )


# --- Live grants ---------------------------------------------------------------------------------


def _ended_at(grant: GrantView) -> datetime:
    return grant.ended_at or grant.ends_at


async def _grants_context(request: _Request, actor: Actor) -> dict[str, Any]:
    """The live list: scheduled and active grants, soonest end first; then the recently
    ended, latest first. Reads and break-glass counts in one query for all of them."""
    clock = _clock(request)
    now = await clock.now()
    views = await handoffs.list_grants(actor, clock, ended_since=now - _RECENT)
    live = sorted((g for g in views if g.status in _LIVE), key=lambda g: g.ends_at)
    ended = sorted(
        (g for g in views if g.status not in _LIVE and _ended_at(g) >= now - _RECENT),
        key=_ended_at,
        reverse=True,
    )[:_MAX_ENDED]
    activity = await handoffs.grant_activity(actor, [g.id for g in (*live, *ended)])
    return {
        "live": live,
        "ended": ended,
        "activity": activity,
        "no_activity": handoffs.GrantActivity(),
        "times": await _times(actor, clock),
        "left": _left,
        "errors": {},
        "reasons": {},
    }


async def _grant_context(request: _Request, actor: Actor, grant_id: uuid.UUID) -> dict[str, Any]:
    """One grant: the incident, its state and window, reads, extensions and notes."""
    clock, keyring = _clock(request), _keyring(request)
    grant = await handoffs.get_grant(actor, clock, grant_id)
    handoff = await handoffs.get_handoff(actor, keyring, clock, grant.handoff_id)
    reads = await handoffs.grant_reads(actor, keyring, grant_id)
    activity = await handoffs.grant_activity(actor, [grant_id])
    times = await _times(actor, clock)
    return {
        "grant": handoff.grant,
        "handoff": handoff,
        "reads": reads,
        "break_glass": [read for read in reads if read.break_glass],
        "activity": activity.get(grant_id, handoffs.GrantActivity()),
        "is_live": handoff.grant.status in _LIVE,
        "times": times,
        "left": _left,
        "markdown": render_markdown,
        "extension_ends": {
            str(ext.id): times.field(ext.requested_ends_at) for ext in handoff.extensions
        },
        "errors": {},
        "reasons": {},
    }


def _back(form: FormMultiDict, grant_id: uuid.UUID) -> str:
    """Where a grant's button returns: its page, or the list (never a URL from the form)."""
    return f"/grants/{grant_id}" if form.get("next") == "detail" else "/grants"


async def _refused_on(
    request: _Request,
    actor: Actor,
    back: str,
    grant_id: uuid.UUID,
    errors: dict[str, str],
    reasons: dict[str, str] | None = None,
    extension_ends: dict[str, str] | None = None,
) -> Template:
    """The page a grant's form came from again, with the message at its field (422)."""
    if back == "/grants":
        context = await _grants_context(request, actor)
        template = "grants.html"
    else:
        context = await _grant_context(request, actor, grant_id)
        template = "grant.html"
    context["errors"] = errors
    context["reasons"] = reasons or {}
    context["extension_ends"] = {**context.get("extension_ends", {}), **(extension_ends or {})}
    return await page(actor, template, status=HTTP_422_UNPROCESSABLE_ENTITY, **context)


async def _extension_of(
    request: _Request, actor: Actor, grant_id: uuid.UUID, extension_id: uuid.UUID
) -> handoffs.ExtensionView:
    """The extension request, if it is one of this grant's (404 otherwise)."""
    clock = _clock(request)
    grant = await handoffs.get_grant(actor, clock, grant_id)
    handoff = await handoffs.get_handoff(actor, _keyring(request), clock, grant.handoff_id)
    found = next((ext for ext in handoff.extensions if ext.id == extension_id), None)
    if found is None:
        raise NotFound("no such extension request")
    return found


# --- Pages ---------------------------------------------------------------------------------------


class GrantPages(Controller):
    path = "/"
    include_in_schema = False

    # Hand off ---------------------------------------------------------------------------------

    @get("/handoffs/new", name="handoff_new")
    async def new_handoff(self, request: _Request) -> Template:
        actor = await _msp_actor(request)
        return await _form_page(request, actor)

    @post("/handoffs/new", status_code=200)
    async def edit_handoff(self, request: _Request) -> Template:
        """The form again with what was typed: "Change" on the confirmation page, and "Use
        this partner's ceiling" (`action=ceiling`) without JavaScript."""
        actor = await _msp_actor(request)
        form = await request.form()
        values = HandoffForm.posted(form)
        if form.get("action") == "ceiling":
            values = _with_ceiling(values, await _partners(actor))
        return await _form_page(request, actor, values)

    @get("/handoffs/scope")
    async def scope_fieldset(self, request: _Request) -> Template:
        """The scope fieldset with the chosen partner's ceiling as defaults (htmx)."""
        actor = await _msp_actor(request)
        partners = await _partners(actor)
        values = HandoffForm(partner=str(request.query_params.get("partner", "")))
        return fragment(
            "_handoff_scope.html", **_scope_context(partners, _with_ceiling(values, partners), {})
        )

    @post("/handoffs/confirm", status_code=200)
    async def confirm_handoff(self, request: _Request) -> Template:
        """Everything checked, nothing written: what the partner will be able to see."""
        actor = await _msp_actor(request)
        clock = _clock(request)
        values = HandoffForm.posted(await request.form())
        times = await _times(actor, clock)
        plan, errors = await _plan(actor, clock, values, times)
        if plan is None:
            return await _form_page(
                request, actor, values, errors=errors, status=HTTP_422_UNPROCESSABLE_ENTITY
            )
        preview = await handoffs.documents_in_scope(
            actor,
            _keyring(request),
            client_id=plan.client_id,
            partner=plan.noc.slug,
            scope=plan.scope,
        )
        return await page(
            actor,
            "handoff_confirm.html",
            plan=plan,
            preview=preview,
            values=values,
            times=times,
            markdown=render_markdown,
            hours=(plan.ends_at - plan.starts_at).total_seconds() / 3600,
        )

    @post("/handoffs")
    async def create_handoff(self, request: _Request) -> Template | Redirect:
        actor = await _msp_actor(request)
        clock = _clock(request)
        values = HandoffForm.posted(await request.form())
        times = await _times(actor, clock)
        plan, errors = await _plan(actor, clock, values, times)
        if plan is not None:
            try:
                made = await handoffs.create_handoff(
                    actor,
                    _keyring(request),
                    clock,
                    partner=plan.noc.slug,
                    client_id=plan.client_id,
                    psa_reference=plan.psa_reference,
                    summary=plan.summary,
                    severity=plan.severity,
                    scope=plan.scope,
                    ends_at=plan.ends_at,
                    request=request_meta(request),
                )
            except (Invalid, Conflict) as exc:
                errors = _domain_errors(exc)
            else:
                flash(
                    request,
                    f"{made.psa_reference} handed to {plan.noc.name} until "
                    f"{times.local(made.grant.ends_at)}.",
                    category="success",
                )
                return Redirect(f"/grants/{made.grant.id}", status_code=303)
        return await _form_page(
            request, actor, values, errors=errors, status=HTTP_422_UNPROCESSABLE_ENTITY
        )

    # Grants -----------------------------------------------------------------------------------

    @get("/grants", name="grants")
    async def grants_page(self, request: _Request) -> Template:
        actor = await _msp_actor(request)
        return await page(actor, "grants.html", **await _grants_context(request, actor))

    @get("/grants/live")
    async def grants_live(self, request: _Request) -> Template:
        actor = await _msp_actor(request)
        return fragment("_grants_live.html", **await _grants_context(request, actor))

    @get("/grants/{grant_id:uuid}")
    async def grant_page(self, request: _Request, grant_id: FromPath[uuid.UUID]) -> Template:
        actor = await _msp_actor(request)
        return await page(actor, "grant.html", **await _grant_context(request, actor, grant_id))

    @get("/grants/{grant_id:uuid}/live")
    async def grant_live(self, request: _Request, grant_id: FromPath[uuid.UUID]) -> Template:
        actor = await _msp_actor(request)
        return fragment("_grant_live.html", **await _grant_context(request, actor, grant_id))

    @post("/grants/{grant_id:uuid}/revoke")
    async def revoke(self, request: _Request, grant_id: FromPath[uuid.UUID]) -> Template | Redirect:
        actor = await _msp_actor(request)
        form = await request.form()
        back = _back(form, grant_id)
        reason = form_text(form, "reason")
        field_name = f"reason-{grant_id}"
        if not reason:
            errors = {field_name: "Give a reason: the partner and the auditors will see it."}
            return await _refused_on(request, actor, back, grant_id, errors)
        try:
            view = await handoffs.revoke_grant(
                actor, _clock(request), grant_id, reason, request=request_meta(request)
            )
        except Invalid as exc:
            errors = {field_name: exc.detail}
            reasons = {str(grant_id): reason}
            return await _refused_on(request, actor, back, grant_id, errors, reasons)
        except Conflict as exc:
            flash(request, exc.detail, category="error")
        else:
            flash(
                request,
                f"{view.psa_reference}: access for {view.noc.name} revoked.",
                category="success",
            )
        return Redirect(back, status_code=303)

    @post("/grants/{grant_id:uuid}/complete")
    async def complete(self, request: _Request, grant_id: FromPath[uuid.UUID]) -> Redirect:
        actor = await _msp_actor(request)
        back = _back(await request.form(), grant_id)
        try:
            view = await handoffs.complete_grant(
                actor, _clock(request), grant_id, request=request_meta(request)
            )
        except Conflict as exc:
            flash(request, exc.detail, category="error")
        else:
            flash(
                request,
                f"{view.psa_reference} completed: access for {view.noc.name} ended.",
                category="success",
            )
        return Redirect(back, status_code=303)

    @post("/grants/{grant_id:uuid}/extensions/{extension_id:uuid}/approve")
    async def approve_extension(
        self,
        request: _Request,
        grant_id: FromPath[uuid.UUID],
        extension_id: FromPath[uuid.UUID],
    ) -> Template | Redirect:
        actor = await _msp_actor(request)
        await _extension_of(request, actor, grant_id, extension_id)
        clock = _clock(request)
        form = await request.form()
        typed = form_text(form, "new_ends_at")
        field_name = f"new_ends_at-{extension_id}"
        times = await _times(actor, clock)
        errors: dict[str, str] = {}
        try:
            new_end = times.parse(typed) if typed else None
        except ValueError:
            errors[field_name] = "Enter a date and time, e.g. 2026-12-28 10:00."
        else:
            try:
                decided = await handoffs.decide_extension(
                    actor,
                    clock,
                    extension_id,
                    approve=True,
                    new_ends_at=new_end,
                    request=request_meta(request),
                )
            except Invalid as exc:
                errors[field_name] = exc.detail
            except Conflict as exc:
                flash(request, exc.detail, category="error")
                return Redirect(f"/grants/{grant_id}", status_code=303)
            else:
                assert decided.new_ends_at is not None
                flash(
                    request,
                    f"Extension approved: the grant now ends {times.local(decided.new_ends_at)}.",
                    category="success",
                )
                return Redirect(f"/grants/{grant_id}", status_code=303)
        return await _refused_on(
            request,
            actor,
            f"/grants/{grant_id}",
            grant_id,
            errors,
            extension_ends={str(extension_id): typed},
        )

    @post("/grants/{grant_id:uuid}/extensions/{extension_id:uuid}/decline")
    async def decline_extension(
        self,
        request: _Request,
        grant_id: FromPath[uuid.UUID],
        extension_id: FromPath[uuid.UUID],
    ) -> Redirect:
        actor = await _msp_actor(request)
        await _extension_of(request, actor, grant_id, extension_id)
        try:
            await handoffs.decide_extension(
                actor, _clock(request), extension_id, approve=False, request=request_meta(request)
            )
        except Conflict as exc:
            flash(request, exc.detail, category="error")
        else:
            flash(request, "Extension declined: the grant keeps its end.", category="success")
        return Redirect(f"/grants/{grant_id}", status_code=303)

    # Rotation ---------------------------------------------------------------------------------

    @get("/rotation", name="rotation")
    async def rotation_page(self, request: _Request) -> Template:
        actor = await _msp_actor(request)
        include_rotated = request.query_params.get("show") == "all"
        rows = await rotation.list_rotation_titled(
            actor, _keyring(request), include_rotated=include_rotated
        )
        return await page(
            actor,
            "rotation.html",
            rows=rows,
            include_rotated=include_rotated,
            times=await _times(actor, _clock(request)),
            can_mark=actor.can(Permission.CONTENT_WRITE),
        )

    @post("/rotation/{item_id:uuid}/rotated")
    async def mark_rotated(self, request: _Request, item_id: FromPath[uuid.UUID]) -> Redirect:
        actor = await _msp_actor(request)
        try:
            await rotation.mark_rotated(actor, item_id, request=request_meta(request))
        except Conflict as exc:
            flash(request, exc.detail, category="error")
        else:
            flash(request, "Marked rotated.", category="success")
        return Redirect("/rotation", status_code=303)
