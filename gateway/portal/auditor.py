"""Auditors: the audit log with its filters, the timeline of a grant, exports, the chain's
verification status.

Every page reads the caller's own tenant's chain through `sharing.audit_search` and
`sharing.timeline`, the functions the audit API calls. Reading is not written to the chain (see
`audit_search.search`); the exports are the API's own endpoints, which a portal session may call.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import MultiDict
from litestar.params import FromPath
from litestar.plugins.flash import flash
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_422_UNPROCESSABLE_ENTITY

from gateway.portal.common import fragment, need, page, portal_actor
from sharing import audit_search, checkpoints, timeline
from sharing.audit import AuditAction, Outcome, Severity, verify_chain
from sharing.audit_search import AuditEventView, AuditQuery, Order
from tenants import service
from tenants.errors import Invalid
from tenants.roles import Actor, Permission

__all__ = ["AuditPages"]

PAGE_SIZE = 50
_TEXT_FILTERS = ("actor", "partner", "psa_reference")
_ID_FILTERS = ("client_id", "grant_id", "document_id")
_TIME_FILTERS = ("since", "until")
_CHOICE_FILTERS = ("outcome", "severity", "order")
_FIELDS = frozenset(
    (*_TEXT_FILTERS, *_ID_FILTERS, *_TIME_FILTERS, *_CHOICE_FILTERS, "action", "cursor")
)
_CHOICES: dict[str, type[Outcome | Severity | Order]] = {
    "outcome": Outcome,
    "severity": Severity,
    "order": Order,
}
_VERIFIED = "audit_verified"  # the session key of the last "Verify now" result, per tenant


# --- The filters of the log --------------------------------------------------------------------


@dataclass
class _Filters:
    """The log's query string, read: what was typed (`form`, to show again), the search it
    makes, and what is wrong with it, by field."""

    form: dict[str, Any] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    cursor: str | None = None

    def query(self) -> AuditQuery:
        return AuditQuery(**self.values)


def _instant(text: str, zone: ZoneInfo) -> datetime:
    """A moment typed in the form: a `datetime-local` value is wall-clock time of the tenant's
    zone; a value with an offset (from a link) is taken as it is."""
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=zone) if moment.tzinfo is None else moment


def _read_filters(params: MultiDict[str], zone: ZoneInfo) -> _Filters:
    found = _Filters()
    unknown = sorted(set(params) - _FIELDS)
    if unknown:
        found.errors["form"] = f"Unknown filter {unknown[0]!r}: use the form below."
    for name in (*_TEXT_FILTERS, *_ID_FILTERS, *_TIME_FILTERS, *_CHOICE_FILTERS):
        text = str(params.get(name) or "").strip()
        if not text:
            continue
        found.form[name] = text
        try:
            if name in _ID_FILTERS:
                found.values[name] = uuid.UUID(text)
            elif name in _TIME_FILTERS:
                found.values[name] = _instant(text, zone)
            elif name in _CHOICES:
                found.values[name] = _CHOICES[name](text)
            else:
                found.values[name] = text
        except ValueError:
            found.errors[name] = _BAD_VALUE[name]
    actions = [str(a) for a in params.getall("action", []) if str(a).strip()]
    found.form["action"] = actions
    known = {action.value for action in AuditAction}
    if any(action not in known for action in actions):
        found.errors["action"] = "Choose actions from the list."
    else:
        found.values["action"] = tuple(AuditAction(action) for action in actions)
    found.cursor = str(params.get("cursor") or "").strip() or None
    return found


_BAD_VALUE = {
    **dict.fromkeys(_ID_FILTERS, "Enter a full id, e.g. 3f2b8c1e-5d4a-4e7b-9c0d-1a2b3c4d5e6f."),
    **dict.fromkeys(_TIME_FILTERS, "Enter a date and time, e.g. 2026-12-24T02:10."),
    **dict.fromkeys(_TEXT_FILTERS, "Enter some text."),
    "outcome": "Choose an outcome from the list.",
    "severity": "Choose a severity from the list.",
    "order": "Choose newest or oldest first.",
}


def _field_of(error: Invalid) -> str:
    """Which field a refused search is about: `since` for a range the wrong way round, else the
    field msgspec names (`... - at `$.actor``), else the form as a whole."""
    if error.code == "since":
        return "until"
    match = re.search(r"\$\.(\w+)", error.detail)
    return match.group(1) if match and match.group(1) in _FIELDS else "form"


def _api_params(query: AuditQuery) -> list[tuple[str, str]]:
    """The API's query string for the same search: only the filters given, instants in UTC."""
    params: list[tuple[str, str]] = []
    for name, value in msgspec.structs.asdict(query).items():
        if value is None or value == () or (name == "order" and value is Order.DESC):
            continue
        if isinstance(value, datetime):
            params.append((name, value.astimezone(UTC).isoformat().replace("+00:00", "Z")))
        elif isinstance(value, tuple):
            params += [(name, str(item)) for item in value]
        else:
            params.append((name, str(value)))
    return params


def _page_link(form: dict[str, Any], cursor: str | None = None) -> str:
    """`/audit` with the same filters as typed (and a page's cursor)."""
    params: list[tuple[str, str]] = []
    for name, value in form.items():
        params += [(name, item) for item in value] if isinstance(value, list) else [(name, value)]
    if cursor:
        params.append(("cursor", cursor))
    return "/audit" + (f"?{urlencode(params)}" if params else "")


# --- Rows of the log ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _LogRow:
    event: AuditEventView
    day: str
    time: str
    grant_id: str | None

    @classmethod
    def of(cls, event: AuditEventView, zone: ZoneInfo) -> _LogRow:
        local = event.occurred_at.astimezone(zone)
        return cls(event, f"{local:%Y-%m-%d}", f"{local:%H:%M:%S %Z}", _grant_of(event))


def _grant_of(event: AuditEventView) -> str | None:
    if event.target_type == "grant" and event.target_id:
        return event.target_id
    return event.context.get("grant_id")


def _local(zone: ZoneInfo) -> Callable[[datetime | None], str]:
    """A formatter of instants in the tenant's zone, for templates."""

    def when(moment: datetime | None) -> str:
        return "" if moment is None else f"{moment.astimezone(zone):%Y-%m-%d %H:%M:%S %Z}"

    return when


def _action_groups() -> list[tuple[str, list[str]]]:
    """Every action, grouped by subject (`grant:...`, `document:...`), for the filter's list."""
    groups: dict[str, list[str]] = {}
    for action in sorted(a.value for a in AuditAction):
        groups.setdefault(action.split(":", 1)[0], []).append(action)
    return sorted(groups.items())


# --- The chain's status ------------------------------------------------------------------------


async def _chain_status(
    request: Request[Any, Any, Any], tenant_id: uuid.UUID, zone: ZoneInfo
) -> dict[str, Any]:
    """What the status box shows: the latest signed checkpoint and this session's last check."""
    verified = request.session.get(_VERIFIED, {}) if request.session else {}
    last = verified.get(str(tenant_id)) if isinstance(verified, dict) else None
    return {
        "tenant_id": tenant_id,
        "checkpoint": await checkpoints.latest_checkpoint(tenant_id),
        "last_check": last,
        "when": _local(zone),
        "parse": datetime.fromisoformat,
    }


async def _zone_of(tenant_id: uuid.UUID) -> ZoneInfo:
    return ZoneInfo((await service.get_tenant(tenant_id)).time_zone)


def _audit_tenant(actor: Actor) -> uuid.UUID:
    """The permission check of every page here (`need`), and the tenant whose chain is read."""
    need(actor, Permission.AUDIT_READ)
    assert actor.tenant_id is not None  # `need` refuses an actor without a tenant
    return actor.tenant_id


class AuditPages(Controller):
    path = "/"
    include_in_schema = False

    @get("/audit", name="audit")
    async def log(self, request: Request[Any, Any, Any]) -> Template:
        """The tenant's chain, filtered as the API filters it, a page at a time."""
        actor = await portal_actor(request)
        tenant_id = _audit_tenant(actor)
        zone = await _zone_of(tenant_id)
        filters = _read_filters(request.query_params, zone)
        result = None
        try:
            audit_search.checked(filters.query())  # every refusal at once, the range's too
            if not filters.errors:
                result = await audit_search.search(
                    actor, filters.query(), cursor=filters.cursor, limit=PAGE_SIZE
                )
        except Invalid as error:
            name = "form" if error.code == "cursor" else _field_of(error)
            filters.errors.setdefault(name, error.detail)
        query = filters.query() if not filters.errors else AuditQuery()
        api = _api_params(query)
        context: dict[str, Any] = {
            "form": filters.form,
            "errors": filters.errors,
            "rows": [_LogRow.of(event, zone) for event in (result.events if result else [])],
            "next_link": (
                _page_link(filters.form, result.next_cursor)
                if result and result.next_cursor
                else None
            ),
            "first_link": _page_link(filters.form) if filters.cursor else None,
            "filtered": bool(api),
            "csv_params": api,
            "export_params": [(k, v) for k, v in api if k in {"since", "until"}],
            "action_groups": _action_groups(),
            "outcomes": list(Outcome),
            "severities": list(Severity),
            "time_zone": zone.key,
            **await _chain_status(request, tenant_id, zone),
        }
        status = HTTP_422_UNPROCESSABLE_ENTITY if filters.errors else 200
        return await page(actor, "audit.html", status=status, **context)

    @post("/audit/verify")
    async def verify(self, request: Request[Any, Any, Any]) -> Response[Any]:
        """Recompute every hash of the tenant's chain now; the result replaces the last one."""
        actor = await portal_actor(request)
        tenant_id = _audit_tenant(actor)
        report = await verify_chain(tenant_id)
        checked_at = await request.app.state.clock.now()
        verified = dict(request.session.get(_VERIFIED) or {})
        verified[str(tenant_id)] = {
            "verified": report.verified,
            "broken_at": report.broken_at,
            "problem": report.problem,
            "at": checked_at.isoformat(),
        }
        request.session[_VERIFIED] = verified
        if request.headers.get("hx-request") == "true":
            zone = await _zone_of(tenant_id)
            return fragment(
                "_audit_chain_status.html", **await _chain_status(request, tenant_id, zone)
            )
        if report.ok:
            flash(
                request,
                f"Verified {report.verified} events: the chain is intact.",
                category="success",
            )
        else:
            flash(request, f"The chain is broken at event {report.broken_at}.", category="error")
        return Redirect("/audit", status_code=303)

    @get("/audit/grants/{grant_id:uuid}", name="audit_grant")
    async def grant(
        self, request: Request[Any, Any, Any], grant_id: FromPath[uuid.UUID]
    ) -> Template:
        """The timeline of one grant's accesses, from the caller's chain (MSP or partner)."""
        actor = await portal_actor(request)
        _audit_tenant(actor)
        found = await timeline.grant_timeline(actor, request.app.state.clock, grant_id)
        zone = ZoneInfo(found.time_zone)
        return await page(
            actor,
            "audit_timeline.html",
            timeline=found,
            chart=found.chart,
            grant=found.grant,
            when=_local(zone),
            kind_of=timeline.mark_kind,
            log_link=_page_link({"grant_id": str(grant_id)}),
            csv_params=[("grant_id", str(grant_id))],
        )
