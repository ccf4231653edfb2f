"""What every portal page shares: the signed-in actor, the page frame, forms, Markdown.

Pages are server-rendered. A page handler gets the actor with `portal_actor`, checks what the
page needs with `need`, and renders with `page`, which adds the frame every template expects
(`actor`, `memberships`, `current`, `nav`). Domain errors raised inside become the error page
(see `gateway.problems`), so a handler does not catch them unless it shows them next to a field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.datastructures import FormMultiDict
from litestar.exceptions import NotAuthorizedException
from litestar.response import Template
from markdown_it import MarkdownIt
from markupsafe import Markup

from gateway.auth import resolve_actor
from tenants import service
from tenants.errors import Forbidden
from tenants.roles import Actor, Permission

__all__ = [
    "NavItem",
    "form_text",
    "fragment",
    "need",
    "need_msp",
    "need_noc",
    "page",
    "page_context",
    "portal_actor",
    "render_markdown",
]

# Raw HTML in a document is shown as text, never rendered; links to `javascript:` and the like
# are dropped by markdown-it's own link validation.
_MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def render_markdown(text: str) -> Markup:
    """Markdown as safe HTML for a template (raw HTML in the source is escaped).

    Its headings move one level down (`#` becomes `<h2>`): the page around it has the `<h1>`.
    """
    tokens = _MARKDOWN.parse(text)
    for token in tokens:
        if token.type in {"heading_open", "heading_close"}:
            token.tag = f"h{min(int(token.tag[1]) + 1, 6)}"
    html = _MARKDOWN.renderer.render(tokens, _MARKDOWN.options, {})
    return Markup(html)  # noqa: S704 - markdown-it escapes raw HTML


async def portal_actor(request: Request[Any, Any, Any]) -> Actor:
    """The signed-in user, or a redirect to the sign-in page (401 becomes a redirect)."""
    actor = await resolve_actor(request)
    if actor is None:
        raise NotAuthorizedException("sign in to continue")
    return actor


def need(actor: Actor, permission: Permission) -> None:
    """403 (the error page) unless the actor holds `permission` in the current tenant."""
    actor.require(permission)


def need_msp(actor: Actor, permission: Permission) -> None:
    actor.require_msp(permission, "only an MSP tenant has this page")


def need_noc(actor: Actor, permission: Permission = Permission.TENANT_READ) -> None:
    actor.require(permission)
    if actor.tenant_kind is None or not actor.tenant_kind.is_noc:
        raise Forbidden("only a NOC tenant has this page", code="not_noc")


@dataclass(frozen=True, slots=True)
class NavItem:
    href: str
    label: str


def _nav(actor: Actor) -> list[NavItem]:
    """The main menu for this actor: only pages their tenant kind and role can open."""
    if actor.tenant_id is None or actor.tenant_kind is None:
        return [NavItem("/", "Dashboard"), NavItem("/account", "Account")]
    items = [NavItem("/", "Dashboard")]
    if actor.tenant_kind.is_msp:
        if actor.can(Permission.CONTENT_READ):
            items.append(NavItem("/clients", "Clients"))
        if actor.can(Permission.HANDOFF_CREATE):
            items += [NavItem("/handoffs/new", "Hand off"), NavItem("/grants", "Grants")]
            items.append(NavItem("/rotation", "Rotation"))
        if actor.can(Permission.PARTNERSHIP_MANAGE):
            items += [NavItem("/partnerships", "Partners"), NavItem("/schedule", "Schedule")]
        if actor.can(Permission.WEBHOOK_MANAGE):
            items.append(NavItem("/webhooks", "Webhooks"))
    if actor.tenant_kind.is_noc:
        if actor.can(Permission.CONTENT_READ):
            items.append(NavItem("/noc/grants", "My grants"))
        if actor.can(Permission.PARTNERSHIP_MANAGE) and not actor.tenant_kind.is_msp:
            items.append(NavItem("/partnerships", "Partners"))
        if actor.can(Permission.MEMBER_MANAGE):
            items.append(NavItem("/noc/clients", "OAuth clients"))
    if actor.can(Permission.AUDIT_READ):
        items.append(NavItem("/audit", "Audit"))
    items.append(NavItem("/account", "Account"))
    return items


async def page_context(actor: Actor) -> dict[str, Any]:
    """What the frame of every page needs: who is signed in, their tenants, the menu."""
    memberships = await service.memberships_of(actor.id) if actor.id else []
    current = next((m for m in memberships if m.tenant.id == actor.tenant_id), None)
    return {"actor": actor, "memberships": memberships, "current": current, "nav": _nav(actor)}


async def page(
    actor: Actor,
    template: str,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> Template:
    """Render `template` inside the frame. Pass `errors` (field -> message) and `form` to show
    a refused form again with each message next to its field."""
    full = await page_context(actor)
    full.setdefault("errors", {})
    full.setdefault("form", {})
    full.update(context)
    return Template(template, context=full, status_code=status, headers=headers)


def fragment(template: str, *, status: int = 200, **context: Any) -> Template:
    """A piece of a page for htmx (no frame)."""
    return Template(template, context=context, status_code=status)


def form_text(form: FormMultiDict, name: str) -> str:
    """A form field as stripped text with LF line ends; the domain checks its length and says
    what is wrong. (Browsers send a textarea's line breaks as CRLF, while its `maxlength`
    counts each as one character.)"""
    return str(form.get(name, "")).strip().replace("\r\n", "\n")
