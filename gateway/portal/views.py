"""The web portal: sign-in, the dashboard and partnership pages. Server-rendered, CSRF on forms."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import FormMultiDict
from litestar.params import FromPath
from litestar.plugins.flash import flash
from litestar.response import Redirect, Template
from litestar.status_codes import (
    HTTP_401_UNAUTHORIZED,
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_429_TOO_MANY_REQUESTS,
)

from gateway.auth import SESSION_TENANT, remember_sign_in, request_meta, resolve_actor
from gateway.portal.common import need, page_context, portal_actor
from gateway.settings import Settings
from policies.ceiling import Ceiling
from policies.vocabulary import DocumentKind
from sharing import accounts, clients, handoffs, partner_access, partnerships
from sharing.handoffs import GrantView
from sharing.partnerships import PartnershipAction, PartnershipStatus
from tenants import service
from tenants.errors import Conflict, DomainError, Invalid
from tenants.roles import Actor, Permission

__all__ = ["PortalController", "error_page"]


def error_page(
    request: Request[Any, Any, Any],
    status: int,
    title: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
) -> Response[Any]:
    if status == HTTP_401_UNAUTHORIZED:
        if request.headers.get("hx-request") == "true":
            # a polled fragment whose session ended: send the whole page to sign-in, instead
            # of letting htmx swap the sign-in form into a corner of the page
            return Response(
                b"", status_code=status, headers={**(headers or {}), "HX-Redirect": "/login"}
            )
        return Redirect("/login", headers=headers)
    # A request that never reached the session middleware (an unknown path) has no session;
    # the page then shows no flash messages instead of failing to render.
    request.scope.setdefault("session", {})
    return Template(
        "error.html",
        context={"status": status, "title": title, "detail": detail},
        status_code=status,
        headers=headers,
    )


async def _live_grants(request: Request[Any, Any, Any], actor: Actor) -> list[GrantView]:
    """The grants running now that this person works with: handed off (MSP staff) or received
    (NOC technicians); none for a role that may not open them."""
    clock = request.app.state.clock
    kind = actor.tenant_kind
    if kind is not None and kind.is_msp and actor.can(Permission.HANDOFF_CREATE):
        return await handoffs.list_grants(actor, clock, live_only=True)
    if kind is not None and kind.is_noc and actor.can(Permission.CONTENT_READ):
        return await partner_access.list_user_grants(actor, clock)
    return []


def _throttle_keys(email: str, address: str | None) -> tuple[str, str]:
    return f"login:email:{service.normalise_email(email)}", f"login:addr:{address or '-'}"


class PortalController(Controller):
    path = "/"
    include_in_schema = False

    @get("/login", name="login")
    async def login_page(self, request: Request[Any, Any, Any]) -> Template:
        return Template("login.html", context={"email": "", "error": None})

    @post("/login")
    async def login(self, request: Request[Any, Any, Any]) -> Response[Any]:
        form = await request.form()
        email = str(form.get("email", "")).strip()[:254]
        password = str(form.get("password", ""))[:1024]
        settings: Settings = request.app.state.settings
        meta = request_meta(request)
        throttle = request.app.state.throttle
        email_key, address_key = _throttle_keys(email, meta.source_address)
        if (
            await throttle.count(email_key) >= settings.login_max_failures
            or await throttle.count(address_key) >= settings.login_max_failures * 4
        ):
            await accounts.record_throttled_sign_in(email, meta)
            return Template(
                "login.html",
                context={
                    "email": email,
                    "error": "Too many failed sign-ins. Wait a few minutes and try again.",
                },
                status_code=HTTP_429_TOO_MANY_REQUESTS,
                headers={"Retry-After": str(settings.login_window_seconds)},
            )
        actor = await accounts.sign_in(email, password, meta) if email and password else None
        if actor is None:
            await throttle.hit(email_key, settings.login_window_seconds)
            await throttle.hit(address_key, settings.login_window_seconds)
            return Template(
                "login.html",
                context={"email": email, "error": "The email or the password is wrong."},
                status_code=HTTP_401_UNAUTHORIZED,
            )
        await throttle.reset(email_key)
        await remember_sign_in(request, actor)
        return Redirect("/")

    @post("/logout")
    async def logout(self, request: Request[Any, Any, Any]) -> Redirect:
        actor = await resolve_actor(request)
        if actor is not None:
            await accounts.sign_out(actor, request_meta(request))
        request.clear_session()
        return Redirect("/login")

    @post("/tenant")
    async def switch_tenant(self, request: Request[Any, Any, Any]) -> Redirect:
        actor = await portal_actor(request)
        form = await request.form()
        try:
            wanted = uuid.UUID(str(form.get("tenant_id", "")))
        except ValueError:
            flash(request, "Choose a tenant from the list.", category="error")
            return Redirect("/")
        if actor.id is not None and any(
            m.tenant.id == wanted for m in await service.memberships_of(actor.id)
        ):
            request.session[SESSION_TENANT] = str(wanted)
        else:
            flash(request, "You are not a member of that tenant.", category="error")
        return Redirect("/")

    @get("/", name="dashboard")
    async def dashboard(self, request: Request[Any, Any, Any]) -> Template:
        actor = await portal_actor(request)
        context = await page_context(actor)
        if actor.tenant_id is not None:
            context["partnerships"] = await partnerships.list_partnerships(actor)
            context["live_grants"] = await _live_grants(request, actor)
        return Template("dashboard.html", context=context)

    @get("/partnerships", name="partnerships")
    async def partnerships_page(self, request: Request[Any, Any, Any]) -> Template:
        actor = await portal_actor(request)
        return await _partnerships_template(actor)

    @post("/partnerships")
    async def invite(self, request: Request[Any, Any, Any]) -> Response[Any]:
        actor = await portal_actor(request)
        form = await request.form()
        noc = str(form.get("noc", "")).strip()
        errors: dict[str, str] = {}
        ceiling = _ceiling_from_form(form, errors)
        if not noc:
            errors["noc"] = "Enter the NOC's slug."
        if not errors and ceiling is not None:
            try:
                await partnerships.invite(
                    actor, noc_slug=noc, ceiling=ceiling, request=request_meta(request)
                )
            except DomainError as exc:
                at_noc = exc.code in {"noc_unknown", "not_noc", "self", "partnership_open"}
                errors["noc" if at_noc else "form"] = exc.detail
            else:
                flash(request, f"Invitation sent to {noc}.", category="success")
                return Redirect("/partnerships")
        return await _partnerships_template(
            actor, errors=errors, form=form, status=HTTP_422_UNPROCESSABLE_ENTITY
        )

    @post("/partnerships/{partnership_id:uuid}/ceiling")
    async def change_ceiling(
        self, request: Request[Any, Any, Any], partnership_id: FromPath[uuid.UUID]
    ) -> Response[Any]:
        """The MSP's ceiling editor: the whole new ceiling, checked before anything is written.

        Another tenant's partnership is a 404 whatever the input; the NOC side, or a partnership
        that ended meanwhile, is the domain's 409 page (no form of it is on the page to show it).
        """
        actor = await portal_actor(request)
        need(actor, Permission.PARTNERSHIP_MANAGE)
        await partnerships.get_partnership(actor, partnership_id)
        form = await request.form()
        errors: dict[str, str] = {}
        ceiling = _ceiling_from_form(form, errors)
        if errors or ceiling is None:
            return await _partnerships_template(
                actor,
                ceiling_errors=errors,
                ceiling_form=form,
                ceiling_id=partnership_id,
                status=HTTP_422_UNPROCESSABLE_ENTITY,
            )
        view = await partnerships.set_ceiling(
            actor, partnership_id, ceiling, request=request_meta(request)
        )
        flash(request, f"Ceiling for {view.noc.name} saved.", category="success")
        return Redirect("/partnerships", status_code=303)

    @post("/partnerships/{partnership_id:uuid}/{action:str}")
    async def change(
        self,
        request: Request[Any, Any, Any],
        partnership_id: FromPath[uuid.UUID],
        action: FromPath[str],
    ) -> Redirect:
        actor = await portal_actor(request)
        try:
            chosen = PartnershipAction(action)
        except ValueError:
            flash(request, "Unknown action.", category="error")
            return Redirect("/partnerships")
        try:
            view = await partnerships.act(
                actor, partnership_id, chosen, request=request_meta(request)
            )
        except (Conflict, Invalid) as exc:  # another tenant's partnership stays a 404 page
            flash(request, exc.detail, category="error")
        else:
            flash(request, f"Partnership is now {view.status.value}.", category="success")
        return Redirect("/partnerships")


async def _partnerships_template(
    actor: Actor,
    *,
    errors: dict[str, str] | None = None,
    form: FormMultiDict | None = None,
    ceiling_errors: dict[str, str] | None = None,
    ceiling_form: FormMultiDict | None = None,
    ceiling_id: uuid.UUID | None = None,
    status: int = 200,
) -> Template:
    """The partners page; a refused invitation or ceiling shows its input and errors again."""
    context = await page_context(actor)
    can_manage = actor.can(Permission.PARTNERSHIP_MANAGE)
    is_msp = bool(actor.tenant_kind and actor.tenant_kind.is_msp)
    known_clients = (
        await clients.list_clients(actor, include_archived=True) if can_manage and is_msp else []
    )
    context.update(
        partnerships=await partnerships.list_partnerships(actor),
        can_manage=can_manage,
        is_msp=is_msp,
        kinds=list(DocumentKind),
        clients=known_clients,
        client_names={client.id: client.name for client in known_clients},
        default_ceiling=Ceiling(),
        errors=errors or {},
        form=form or {},
        ceiling_errors=ceiling_errors or {},
        ceiling_form=ceiling_form,
        ceiling_id=ceiling_id,
        editable=_ceiling_editable(actor),
        actions=_actions_for(actor),
        Status=PartnershipStatus,
    )
    return Template("partnerships.html", context=context, status_code=status)


def _ceiling_editable(actor: Actor) -> Any:
    """Whether the actor may change this partnership's ceiling: its MSP, while it is open."""
    open_states = {PartnershipStatus.INVITED, PartnershipStatus.ACTIVE, PartnershipStatus.SUSPENDED}

    def editable(view: partnerships.PartnershipView) -> bool:
        return (
            actor.can(Permission.PARTNERSHIP_MANAGE)
            and view.msp.id == actor.tenant_id
            and view.status in open_states
        )

    return editable


def _actions_for(actor: Actor) -> Any:
    def actions(view: partnerships.PartnershipView) -> list[str]:
        ours_msp = view.msp.id == actor.tenant_id
        s = view.status
        result = []
        if s is PartnershipStatus.INVITED and not ours_msp:
            result += ["accept", "decline"]
        if s is PartnershipStatus.ACTIVE:
            result.append("suspend")
        if s is PartnershipStatus.SUSPENDED and view.suspended_by == actor.tenant_id:
            result.append("resume")
        if s in {PartnershipStatus.INVITED, PartnershipStatus.ACTIVE, PartnershipStatus.SUSPENDED}:
            result.append("end")
        return result

    return actions


def _ceiling_from_form(form: FormMultiDict, errors: dict[str, str]) -> Ceiling | None:
    """The ceiling of an invitation or of the ceiling editor; messages go into `errors` by
    field (`max_grant_hours`, `document_kinds`, `clients`, `form`)."""
    raw_hours = str(form.get("max_grant_hours", "16")).strip()
    kinds = (
        [str(kind) for kind in form.getall("document_kinds")] if "document_kinds" in form else []
    )
    chosen: Any = "all"
    if form.get("clients_scope") == "listed":
        chosen = [str(client) for client in form.getall("clients")] if "clients" in form else []
        if not chosen:
            errors["clients"] = "Choose at least one client, or all clients."
    try:
        hours = int(raw_hours)
    except ValueError:
        errors["max_grant_hours"] = "Enter a whole number of hours."
        return None
    if errors:
        return None
    try:
        return msgspec.convert(
            {
                "clients": chosen,
                "document_kinds": kinds,
                "max_grant_hours": hours,
                "secrets_allowed": form.get("secrets_allowed") == "on",
            },
            Ceiling,
        )
    except msgspec.ValidationError as exc:
        message = str(exc)
        if "max_grant_hours" in message:
            errors["max_grant_hours"] = "Choose between 1 and 168 hours."
        elif "document_kinds" in message:
            errors["document_kinds"] = "Choose at least one document kind."
        elif "clients" in message:
            errors["clients"] = "Choose clients from the list."
        else:
            errors["form"] = message
        return None
