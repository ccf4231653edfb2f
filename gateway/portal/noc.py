"""NOC technicians: my grants, the incident bundle, the document reader with break-glass, notes,
extensions; OAuth clients for NOC admins.

A technician reads through `sharing.partner_access` exactly as the NOC's OAuth client does (same
decision, audit and rate ceiling), as `Partner.for_user`. Secrets need a reason and, unless the
user entered their password within `REAUTH_SECONDS`, the password again.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import FormMultiDict
from litestar.params import FromPath
from litestar.plugins.flash import flash
from litestar.response import Redirect, Template
from litestar.status_codes import (
    HTTP_201_CREATED,
    HTTP_403_FORBIDDEN,
    HTTP_409_CONFLICT,
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_429_TOO_MANY_REQUESTS,
)

from gateway.auth import request_meta
from gateway.portal.common import form_text, fragment, page, portal_actor, render_markdown
from gateway.settings import Settings
from gateway.throttle import Throttle
from policies.decision import MAX_BREAK_GLASS_REASON
from sharing import partner_access, partner_clients
from sharing.clock import Clock
from sharing.handoffs import GrantStatus, GrantView
from sharing.partner_access import Bundle, Denied, Partner
from tenants import service
from tenants.errors import Conflict, Invalid, NotFound
from tenants.keyring import KeyRing
from tenants.oauth_clients import AuthMethod, OAuthClientView, PartnerScope
from tenants.roles import Actor

__all__ = ["REAUTH_SECONDS", "NocPages"]

REAUTH_SECONDS = 300
"""How long a password entered again counts for break-glass."""

_REAUTH_AT = "reauth_at"
_ENDED = frozenset({GrantStatus.EXPIRED, GrantStatus.REVOKED, GrantStatus.COMPLETED})
_NO_STORE = {"Cache-Control": "no-store"}
_CLIENT_FIELDS = frozenset({"name", "auth_method", "scopes", "networks", "jwks"})


# --- What the app holds: clock, keys, the read counter -----------------------------------------


def _clock(request: Request[Any, Any, Any]) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


def _keyring(request: Request[Any, Any, Any]) -> KeyRing:
    keyring: KeyRing = request.app.state.keyring
    return keyring


# --- Time as the NOC reads it ------------------------------------------------------------------


async def _zone(actor: Actor) -> ZoneInfo:
    assert actor.tenant_id is not None  # every caller checked the tenant first
    return ZoneInfo((await service.get_tenant(actor.tenant_id)).time_zone)


def _local(zone: ZoneInfo) -> Callable[[datetime], str]:
    def local(moment: datetime) -> str:
        return moment.astimezone(zone).strftime("%a %d %b %Y, %H:%M %Z")

    return local


def _left(seconds: int) -> str:
    """Time left as portal.js shows it, for pages read without JavaScript."""
    if seconds <= 0:
        return "ended"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


async def _time_context(actor: Actor) -> dict[str, Any]:
    zone = await _zone(actor)
    return {"local": _local(zone), "left": _left, "zone_name": zone.key}


# --- Grants ------------------------------------------------------------------------------------


def _is_ended(grant: GrantView) -> bool:
    return grant.status in _ENDED


async def _grant_page(
    request: Request[Any, Any, Any],
    actor: Actor,
    grant_id: uuid.UUID,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    form: FormMultiDict | None = None,
) -> Template:
    """The incident bundle (an audited read), or the grant's state when access is refused."""
    partner = Partner.for_user(actor, grant_id, break_glass=False)
    clock = _clock(request)
    bundle: Bundle | None = None
    refusal: Denied | None = None
    try:
        bundle = await partner_access.partner_bundle(
            partner, _keyring(request), clock, grant_id, request=request_meta(request)
        )
        grant = bundle.grant
    except Denied as denied:
        refusal = denied
        grant = await partner_access.partner_grant(partner, clock, grant_id)
    return await page(
        actor,
        "noc_grant.html",
        status=status,
        errors=errors or {},
        form=form or {},
        grant=grant,
        bundle=bundle,
        refusal=refusal.decision.reasons if refusal else (),
        ended=_is_ended(grant),
        waiting=bundle is None and not _is_ended(grant),
        ask_password=not _recently_confirmed(request),
        max_reason=MAX_BREAK_GLASS_REASON,
        max_note=partner_access.MAX_NOTE_CHARS,
        **await _time_context(actor),
    )


def _requested_end(raw: str, zone: ZoneInfo) -> datetime:
    """A `datetime-local` value, meant in the NOC's zone, as an instant (ValueError if bad)."""
    moment = datetime.fromisoformat(raw)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


# --- Reading and break-glass -------------------------------------------------------------------


def _recently_confirmed(request: Request[Any, Any, Any]) -> bool:
    raw = request.session.get(_REAUTH_AT) if isinstance(request.session, dict) else None
    if not isinstance(raw, str):
        return False
    try:
        confirmed = datetime.fromisoformat(raw)
    except ValueError:
        return False
    age = datetime.now(UTC) - confirmed
    return timedelta(0) <= age < timedelta(seconds=REAUTH_SECONDS)


def _reauth_key(actor: Actor) -> str:
    return f"reauth:{actor.id}"


async def _read(
    request: Request[Any, Any, Any],
    actor: Actor,
    partner: Partner,
    grant_id: uuid.UUID,
    document_id: uuid.UUID,
    reason: str | None,
) -> Template:
    """Read through the partner path; a refusal shows its reasons (403)."""
    try:
        document = await partner_access.partner_read(
            partner,
            _keyring(request),
            _clock(request),
            # the partner API's counter: a technician and the NOC's tooling share one ceiling
            request.app.state.read_counter,
            grant_id,
            document_id,
            break_glass_reason=reason,
            request=request_meta(request),
            appender=request.app.state.audit_appender,
        )
    except Denied as denied:
        return await page(
            actor,
            "noc_document.html",
            status=HTTP_403_FORBIDDEN,
            grant_id=grant_id,
            document_id=document_id,
            document=None,
            reasons=denied.decision.reasons,
            needs_break_glass="break_glass_required" in denied.decision.codes,
        )
    return await page(
        actor,
        "noc_document.html",
        headers=_NO_STORE,
        grant_id=grant_id,
        document_id=document_id,
        document=document,
        body_html=render_markdown(document.body) if document.body else "",
    )


async def _break_glass_page(
    request: Request[Any, Any, Any],
    actor: Actor,
    grant_id: uuid.UUID,
    document_id: uuid.UUID,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    form: FormMultiDict | None = None,
) -> Template:
    partner = Partner.for_user(actor, grant_id, break_glass=False)
    grant = await partner_access.partner_grant(partner, _clock(request), grant_id)
    return await page(
        actor,
        "noc_break_glass.html",
        status=status,
        errors=errors or {},
        form=form or {},
        grant=grant,
        ended=_is_ended(grant),
        document_id=document_id,
        ask_password=not _recently_confirmed(request),
        max_reason=MAX_BREAK_GLASS_REASON,
        **await _time_context(actor),
    )


def _break_glass_errors(reason: str, password: str, ask_password: bool) -> dict[str, str]:
    errors = {}
    if not reason:
        errors["reason"] = "State why you need this secret: the reason goes on the record."
    elif len(reason) > MAX_BREAK_GLASS_REASON:
        errors["reason"] = f"Keep the reason to {MAX_BREAK_GLASS_REASON} characters."
    if ask_password and not password:
        errors["password"] = "Enter your password again to break the glass."
    return errors


async def _confirm_password(
    request: Request[Any, Any, Any],
    actor: Actor,
    grant_id: uuid.UUID,
    document_id: uuid.UUID,
    password: str,
) -> tuple[int, str] | None:
    """Check the password entered again; None when right, else the status and the message.
    Wrong passwords count like failed sign-ins, so that a left-open session cannot guess."""
    settings: Settings = request.app.state.settings
    throttle: Throttle = request.app.state.throttle
    key = _reauth_key(actor)
    if await throttle.count(key) >= settings.login_max_failures:
        return HTTP_429_TOO_MANY_REQUESTS, "Too many wrong passwords. Wait a few minutes."
    partner = Partner.for_user(actor, grant_id, break_glass=False)
    if not await partner_access.confirm_break_glass_password(
        partner, grant_id, document_id, password, request=request_meta(request)
    ):
        await throttle.hit(key, settings.login_window_seconds)
        return HTTP_422_UNPROCESSABLE_ENTITY, "The password is wrong. Nothing was revealed."
    await throttle.reset(key)
    request.session[_REAUTH_AT] = datetime.now(UTC).isoformat()
    return None


# --- OAuth clients -----------------------------------------------------------------------------


def _jwks(raw: str, errors: dict[str, str]) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        parsed = json.loads(raw)
    except ValueError:
        errors["jwks"] = 'The key set is not JSON: paste {"keys": [...]}.'
        return None
    if not isinstance(parsed, dict):
        errors["jwks"] = 'The key set must be a JSON object: {"keys": [...]}.'
        return None
    return parsed


def _networks(raw: str) -> list[str]:
    return [part for part in re.split(r"[\s,]+", raw) if part]


async def _client_of(actor: Actor, client_pk: uuid.UUID) -> OAuthClientView:
    """One of the NOC's clients (the listing checks who may see them); 404 otherwise."""
    for client in await partner_clients.list_clients(actor):
        if client.id == client_pk:
            return client
    raise NotFound("no such OAuth client")


async def _clients_page(
    actor: Actor,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    form: FormMultiDict | None = None,
) -> Template:
    return await page(
        actor,
        "noc_clients.html",
        status=status,
        errors=errors or {},
        form=form or {},
        clients=await partner_clients.list_clients(actor),
        methods=list(AuthMethod),
        all_scopes=list(PartnerScope),
        chosen_scopes=form.getall("scopes", []) if form else [PartnerScope.READ.value],
    )


async def _client_page(
    actor: Actor,
    client: OAuthClientView,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    form: FormMultiDict | None = None,
    secret: str | None = None,
    registered: bool = False,
    rotated: bool = False,
) -> Template:
    """The client; a secret just issued is shown on this response only (never stored)."""
    return await page(
        actor,
        "noc_client.html",
        status=status,
        headers=_NO_STORE if secret else None,
        errors=errors or {},
        form=form or {},
        client=client,
        secret=secret,
        registered=registered,
        rotated=rotated,
        max_overlap=partner_clients.MAX_OVERLAP_HOURS,
    )


async def _set_disabled(
    request: Request[Any, Any, Any], client_pk: uuid.UUID, disabled: bool
) -> Redirect:
    actor = await portal_actor(request)
    try:
        view = await partner_clients.set_client_disabled(
            actor, client_pk, disabled, request=request_meta(request)
        )
    except Conflict as exc:
        flash(request, exc.detail, category="error")
    else:
        state = "disabled: it gets no tokens" if disabled else "enabled"
        flash(request, f"{view.name} is {state}.", category="success")
    return Redirect(f"/noc/clients/{client_pk}", status_code=303)


class NocPages(Controller):
    path = "/"
    include_in_schema = False

    # --- grants ----------------------------------------------------------------------------

    @get("/noc/grants")
    async def grants(self, request: Request[Any, Any, Any]) -> Template:
        actor = await portal_actor(request)
        grants = await partner_access.list_user_grants(actor, _clock(request))
        return await page(actor, "noc_grants.html", grants=grants, **await _time_context(actor))

    @get("/noc/grants/live")
    async def grants_live(self, request: Request[Any, Any, Any]) -> Template:
        actor = await portal_actor(request)
        grants = await partner_access.list_user_grants(actor, _clock(request))
        return fragment("_noc_grants_live.html", grants=grants, **await _time_context(actor))

    @get("/noc/grants/{grant_id:uuid}")
    async def grant(
        self, request: Request[Any, Any, Any], grant_id: FromPath[uuid.UUID]
    ) -> Template:
        actor = await portal_actor(request)
        return await _grant_page(request, actor, grant_id)

    @get("/noc/grants/{grant_id:uuid}/live")
    async def grant_live(
        self, request: Request[Any, Any, Any], grant_id: FromPath[uuid.UUID]
    ) -> Template:
        """The grant's state, polled: no content, so not audited; when access has ended it
        also replaces the documents and forms (out of band) and stops polling."""
        actor = await portal_actor(request)
        partner = Partner.for_user(actor, grant_id, break_glass=False)
        grant = await partner_access.partner_grant(partner, _clock(request), grant_id)
        return fragment(
            "_noc_grant_live.html",
            grant=grant,
            ended=_is_ended(grant),
            waiting=request.query_params.get("waiting") == "1",
            oob=True,
            **await _time_context(actor),
        )

    # --- reading ---------------------------------------------------------------------------

    @post("/noc/grants/{grant_id:uuid}/documents/{document_id:uuid}")
    async def read(
        self,
        request: Request[Any, Any, Any],
        grant_id: FromPath[uuid.UUID],
        document_id: FromPath[uuid.UUID],
    ) -> Template:
        actor = await portal_actor(request)
        partner = Partner.for_user(actor, grant_id, break_glass=False)
        return await _read(request, actor, partner, grant_id, document_id, None)

    @get("/noc/grants/{grant_id:uuid}/documents/{document_id:uuid}/break-glass")
    async def break_glass_form(
        self,
        request: Request[Any, Any, Any],
        grant_id: FromPath[uuid.UUID],
        document_id: FromPath[uuid.UUID],
    ) -> Template:
        actor = await portal_actor(request)
        return await _break_glass_page(request, actor, grant_id, document_id)

    @post("/noc/grants/{grant_id:uuid}/documents/{document_id:uuid}/break-glass")
    async def break_glass(
        self,
        request: Request[Any, Any, Any],
        grant_id: FromPath[uuid.UUID],
        document_id: FromPath[uuid.UUID],
    ) -> Template:
        actor = await portal_actor(request)
        Partner.for_user(actor, grant_id, break_glass=False)  # 403 before reading the form
        form = await request.form()
        reason = form_text(form, "reason")
        password = str(form.get("password", ""))[:1024]
        ask_password = not _recently_confirmed(request)
        errors = _break_glass_errors(reason, password, ask_password)
        if not errors and ask_password:
            refused = await _confirm_password(request, actor, grant_id, document_id, password)
            if refused is not None:
                status, message = refused
                return await _break_glass_page(
                    request,
                    actor,
                    grant_id,
                    document_id,
                    status=status,
                    errors={"password": message},
                    form=form,
                )
        if errors:
            return await _break_glass_page(
                request,
                actor,
                grant_id,
                document_id,
                status=HTTP_422_UNPROCESSABLE_ENTITY,
                errors=errors,
                form=form,
            )
        partner = Partner.for_user(actor, grant_id, break_glass=True)
        return await _read(request, actor, partner, grant_id, document_id, reason)

    # --- notes and extensions --------------------------------------------------------------

    @post("/noc/grants/{grant_id:uuid}/notes")
    async def note(
        self, request: Request[Any, Any, Any], grant_id: FromPath[uuid.UUID]
    ) -> Response[Any]:
        actor = await portal_actor(request)
        partner = Partner.for_user(actor, grant_id, break_glass=False)
        form = await request.form()
        body = form_text(form, "body")
        status = HTTP_422_UNPROCESSABLE_ENTITY
        errors: dict[str, str] = {}
        if not body:
            errors["note_body"] = "Write the note first."
        else:
            try:
                await partner_access.partner_note(
                    partner,
                    _keyring(request),
                    _clock(request),
                    grant_id,
                    body,
                    request=request_meta(request),
                )
            except Invalid as exc:
                errors["note_body"] = exc.detail
            except Conflict:
                status = HTTP_409_CONFLICT
                errors["note_body"] = "Access has ended: notes can no longer be posted."
            else:
                flash(request, "Your hand-back note is with the MSP.", category="success")
                return Redirect(f"/noc/grants/{grant_id}", status_code=303)
        return await _grant_page(request, actor, grant_id, status=status, errors=errors, form=form)

    @post("/noc/grants/{grant_id:uuid}/extension")
    async def extension(
        self, request: Request[Any, Any, Any], grant_id: FromPath[uuid.UUID]
    ) -> Response[Any]:
        actor = await portal_actor(request)
        partner = Partner.for_user(actor, grant_id, break_glass=False)
        form = await request.form()
        reason = form_text(form, "reason")
        raw_end = form_text(form, "requested_ends_at")
        errors: dict[str, str] = {}
        status = HTTP_422_UNPROCESSABLE_ENTITY
        requested: datetime | None = None
        if not reason:
            errors["extension_reason"] = "Say why you need more time."
        if raw_end:
            try:
                requested = _requested_end(raw_end, await _zone(actor))
            except ValueError:
                errors["requested_ends_at"] = "Enter a date and a time, or leave it empty."
        if not errors:
            try:
                await partner_access.partner_extension(
                    partner,
                    _clock(request),
                    grant_id,
                    reason,
                    requested,
                    request=request_meta(request),
                )
            except Invalid as exc:
                field = (
                    "requested_ends_at" if exc.code == "requested_ends_at" else "extension_reason"
                )
                errors[field] = exc.detail
            except Conflict as exc:
                status = HTTP_409_CONFLICT
                errors["extension"] = (
                    "Access has ended: more time can only be asked for while it lasts."
                    if exc.code == "grant_not_active"
                    else "A request for more time is waiting for the MSP already."
                )
            else:
                flash(request, "More time requested: the MSP decides.", category="success")
                return Redirect(f"/noc/grants/{grant_id}", status_code=303)
        return await _grant_page(request, actor, grant_id, status=status, errors=errors, form=form)

    # --- OAuth clients ---------------------------------------------------------------------

    @get("/noc/clients")
    async def clients(self, request: Request[Any, Any, Any]) -> Template:
        actor = await portal_actor(request)
        return await _clients_page(actor)

    @post("/noc/clients")
    async def register(self, request: Request[Any, Any, Any]) -> Template:
        actor = await portal_actor(request)
        form = await request.form()
        errors: dict[str, str] = {}
        try:
            method = AuthMethod(form_text(form, "auth_method"))
        except ValueError:
            errors["auth_method"] = "Choose how the client authenticates."
        jwks = _jwks(form_text(form, "jwks"), errors)
        if not errors:
            try:
                view, secret = await partner_clients.register_client(
                    actor,
                    name=form_text(form, "name"),
                    auth_method=method,
                    scopes=[str(scope) for scope in form.getall("scopes", [])],
                    networks=_networks(form_text(form, "networks")),
                    jwks=jwks,
                    request=request_meta(request),
                )
            except Invalid as exc:
                errors[exc.code if exc.code in _CLIENT_FIELDS else "form"] = exc.detail
            else:
                return await _client_page(
                    actor, view, status=HTTP_201_CREATED, secret=secret, registered=True
                )
        return await _clients_page(
            actor, status=HTTP_422_UNPROCESSABLE_ENTITY, errors=errors, form=form
        )

    @get("/noc/clients/{client_pk:uuid}")
    async def client(
        self, request: Request[Any, Any, Any], client_pk: FromPath[uuid.UUID]
    ) -> Template:
        actor = await portal_actor(request)
        return await _client_page(actor, await _client_of(actor, client_pk))

    @post("/noc/clients/{client_pk:uuid}/rotate")
    async def rotate(
        self, request: Request[Any, Any, Any], client_pk: FromPath[uuid.UUID]
    ) -> Template:
        actor = await portal_actor(request)
        client = await _client_of(actor, client_pk)
        form = await request.form()
        errors: dict[str, str] = {}
        overlap = 24
        try:
            overlap = int(form_text(form, "overlap_hours") or "24")
        except ValueError:
            errors["overlap_hours"] = "Enter a whole number of hours."
        jwks = _jwks(form_text(form, "jwks"), errors)
        if not errors:
            try:
                view, secret = await partner_clients.rotate_credentials(
                    actor,
                    client_pk,
                    jwks=jwks,
                    overlap_hours=overlap,
                    request=request_meta(request),
                )
            except Invalid as exc:
                errors["jwks" if exc.code == "jwks" else "overlap_hours"] = exc.detail
            else:
                return await _client_page(actor, view, secret=secret, rotated=True)
        return await _client_page(
            actor, client, status=HTTP_422_UNPROCESSABLE_ENTITY, errors=errors, form=form
        )

    @post("/noc/clients/{client_pk:uuid}/disable")
    async def disable(
        self, request: Request[Any, Any, Any], client_pk: FromPath[uuid.UUID]
    ) -> Redirect:
        return await _set_disabled(request, client_pk, True)

    @post("/noc/clients/{client_pk:uuid}/enable")
    async def enable(
        self, request: Request[Any, Any, Any], client_pk: FromPath[uuid.UUID]
    ) -> Redirect:
        return await _set_disabled(request, client_pk, False)
