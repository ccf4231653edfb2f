"""MSP clients and documents: lists with filters, the Markdown editor with preview, revision
history and diff, audited reveal of credentials.
"""

from __future__ import annotations

import difflib
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import FormMultiDict
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.plugins.flash import flash
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_422_UNPROCESSABLE_ENTITY

from gateway.auth import request_meta
from gateway.portal.common import (
    form_text,
    fragment,
    need,
    need_msp,
    page,
    portal_actor,
    render_markdown,
)
from policies.vocabulary import DocumentKind, Sensitivity
from sharing import clients, documents
from sharing.documents import (
    MAX_BODY_BYTES,
    Content,
    CredentialFields,
    DocumentFilters,
    DocumentRead,
    DocumentSummary,
)
from tenants.errors import Conflict, Invalid
from tenants.keyring import KeyRing
from tenants.roles import Actor, Permission

__all__ = ["ContentPages", "DiffLine", "line_diff"]

_Request = Request[Any, Any, Any]
_Choice = TypeVar("_Choice", bound=StrEnum)
_PAGE_SIZE = 50
_MAX_PSA_CHARS = 100  # as the API's `ClientCreate.psa_reference`

# Which form field a domain refusal belongs next to (by its `code`); anything else: the form.
_CLIENT_FIELD = {
    "name": "name",
    "short_code": "short_code",
    "taken": "short_code",
    "notes": "notes",
}
_DOCUMENT_FIELD = {
    "title": "title",
    "tags": "tags",
    "sensitivity": "sensitivity",
    "client_unknown": "client",
    "fields": "fields",
    "body_too_large": "body",
}
_CREDENTIAL_INPUTS = ("username", "password", "url", "notes", "totp_seed")
_SECRET_INPUTS = frozenset({"password", "totp_seed"})
"""Never written back into a page: an edit leaves them empty, meaning "keep the current one"."""
_TEXT_INPUTS = ("title", "kind", "client", "tags", "sensitivity", "username", "url", "totp_seed")


def _keyring(request: _Request) -> KeyRing:
    keyring: KeyRing = request.app.state.keyring
    return keyring


def _when(moment: datetime | None) -> str:
    """A moment for people: UTC, to the minute."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if moment else ""


def _lf(text: str) -> str:
    """Browsers send textarea lines ending in CRLF; stored text uses LF."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


# -- diff -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DiffLine:
    """One line of a line diff: `op` is "+" (added), "-" (removed) or " " (unchanged)."""

    op: str
    text: str


def line_diff(before: str, after: str) -> list[DiffLine]:
    """Every line of `before` and `after`, in order, marked as kept, removed or added."""
    old, new = before.splitlines(), after.splitlines()
    lines: list[DiffLine] = []
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            lines += [DiffLine(" ", text) for text in old[i1:i2]]
            continue
        lines += [DiffLine("-", text) for text in old[i1:i2]]
        lines += [DiffLine("+", text) for text in new[j1:j2]]
    return lines


# -- forms ----------------------------------------------------------------------------------


def _choice(
    kind: type[_Choice], text: str, field: str, errors: dict[str, str], message: str
) -> _Choice | None:
    """The enum member named by a select's value; "" is none; anything else is an error."""
    if not text:
        return None
    try:
        return kind(text)
    except ValueError:
        errors[field] = message
        return None


def _client_choice(text: str, field: str, errors: dict[str, str]) -> uuid.UUID | None:
    if not text:
        return None
    try:
        return uuid.UUID(text)
    except ValueError:
        errors[field] = "Choose a client from the list."
        return None


def _tag_list(text: str) -> list[str]:
    """Tags as typed: separated by commas or spaces (the domain normalises and checks them)."""
    return [tag for tag in re.split(r"[,\s]+", text) if tag]


def _entered(form: FormMultiDict) -> dict[str, str]:
    """The editor's inputs as text: one-line inputs stripped, long text with LF line ends."""
    entered = {name: form_text(form, name) for name in _TEXT_INPUTS}
    entered["body"] = _lf(str(form.get("body", "")))
    entered["notes"] = _lf(str(form.get("notes", "")))
    entered["password"] = str(form.get("password", ""))
    return entered


def _credential_fields(
    entered: dict[str, str], errors: dict[str, str], current: CredentialFields | None = None
) -> CredentialFields | None:
    """The credential inputs as fields; an empty secret input keeps `current`'s value."""
    values: dict[str, Any] = {name: entered[name] for name in _CREDENTIAL_INPUTS}
    for name in _SECRET_INPUTS:
        if not values[name] and current is not None:
            values[name] = getattr(current, name)
    values["totp_seed"] = values["totp_seed"] or None
    try:
        return msgspec.convert(values, CredentialFields)
    except msgspec.ValidationError as exc:
        where = re.search(r"\$\.(\w+)", str(exc))
        name = where.group(1).replace("_", " ") if where else "a field"
        errors["fields"] = f"The credential's {name} is too long."
        return None


def _any_credential_input(entered: dict[str, str]) -> bool:
    return any(entered[name] for name in _CREDENTIAL_INPUTS)


def _public(entered: dict[str, str]) -> dict[str, str]:
    """What may be written back into the editor: everything but the secrets."""
    return {name: value for name, value in entered.items() if name not in _SECRET_INPUTS}


def _document_form(read: DocumentRead) -> dict[str, str]:
    """The editor's inputs for the current revision (secrets left empty)."""
    fields = read.fields or CredentialFields()
    return {
        "title": read.title,
        "kind": read.kind.value,
        "client": str(read.client_id or ""),
        "tags": ", ".join(read.tags),
        "sensitivity": read.sensitivity.value,
        "body": read.body,
        "username": fields.username,
        "url": fields.url,
        "notes": fields.notes,
    }


def _preview(body: str) -> Any:
    """The body as the reader will see it, or None when it is too large to render."""
    return render_markdown(body) if len(body.encode()) <= MAX_BODY_BYTES else None


# -- page builders --------------------------------------------------------------------------


async def _clients_page(
    actor: Actor,
    *,
    include_archived: bool = False,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> Template:
    return await page(
        actor,
        "clients.html",
        status=status,
        errors=errors or {},
        form=form or {},
        clients=await clients.list_clients(actor, include_archived=include_archived),
        include_archived=include_archived,
        can_write=actor.can(Permission.CONTENT_WRITE),
        when=_when,
    )


async def _editor(
    actor: Actor,
    *,
    document: DocumentSummary | DocumentRead | None,
    entered: dict[str, str],
    errors: dict[str, str] | None = None,
    status: int = 200,
    secrets_set: frozenset[str] = frozenset(),
    resubmitted: bool = False,
) -> Template:
    """The new-document or edit form, filled with `entered` (secrets never written back)."""
    every_client = await clients.list_clients(actor, include_archived=True)
    options = [c for c in every_client if c.archived_at is None or str(c.id) == entered["client"]]
    kind = document.kind.value if document else entered["kind"]
    return await page(
        actor,
        "document_form.html",
        status=status,
        errors=errors or {},
        form=_public(entered),
        document=document,
        action=f"/documents/{document.id}" if document else "/documents",
        clients=options,
        kinds=list(DocumentKind),
        sensitivities=list(Sensitivity),
        show_credential=document is None or kind == DocumentKind.CREDENTIAL.value,
        secrets_set=secrets_set,
        resubmitted=resubmitted or bool(errors),
        preview=_preview(entered["body"]),
    )


async def _document_page(actor: Actor, read: DocumentRead, *, revealed: bool) -> Template:
    client = await clients.get_client(actor, read.client_id) if read.client_id else None
    return await page(
        actor,
        "document.html",
        doc=read,
        client=client,
        body_html=render_markdown(read.body),
        revealed=revealed,
        can_write=actor.can(Permission.CONTENT_WRITE),
        when=_when,
    )


def _filter_inputs(request: _Request) -> dict[str, str]:
    query = request.query_params
    names = ("client", "kind", "tag", "sensitivity", "archived", "cursor")
    return {name: str(query.get(name) or "").strip() for name in names}


def _filters(entered: dict[str, str], errors: dict[str, str]) -> DocumentFilters:
    tag = entered["tag"].lower() or None
    if tag is not None:
        try:
            documents.normalise_tags([tag])
        except Invalid as exc:
            errors["tag"] = exc.detail
            tag = None
    return DocumentFilters(
        client_id=_client_choice(entered["client"], "client", errors),
        kind=_choice(DocumentKind, entered["kind"], "kind", errors, "Choose a kind from the list."),
        tag=tag,
        sensitivity=_choice(
            Sensitivity, entered["sensitivity"], "sensitivity", errors, "Choose a level."
        ),
        include_archived=entered["archived"] in {"on", "true", "1"},
        limit=_PAGE_SIZE,
        cursor=entered["cursor"] or None,
    )


class ContentPages(Controller):
    path = "/"
    include_in_schema = False

    # -- clients ----------------------------------------------------------------------------

    @get("/clients", name="clients")
    async def clients_page(self, request: _Request, archived: FromQuery[bool] = False) -> Template:
        actor = await portal_actor(request)
        need_msp(actor, Permission.TENANT_READ)
        return await _clients_page(actor, include_archived=archived)

    @post("/clients")
    async def add_client(self, request: _Request) -> Response[Any]:
        actor = await portal_actor(request)
        need_msp(actor, Permission.CONTENT_WRITE)
        form = await request.form()
        entered = {name: form_text(form, name) for name in ("name", "short_code", "psa_reference")}
        entered["notes"] = _lf(str(form.get("notes", "")))
        errors: dict[str, str] = {}
        if len(entered["psa_reference"]) > _MAX_PSA_CHARS:
            errors["psa_reference"] = f"The PSA reference has at most {_MAX_PSA_CHARS} characters."
        else:
            try:
                added = await clients.create_client(
                    actor,
                    name=entered["name"],
                    short_code=entered["short_code"],
                    notes=entered["notes"],
                    psa_reference=entered["psa_reference"] or None,
                    request=request_meta(request),
                )
            except (Invalid, Conflict) as exc:
                errors[_CLIENT_FIELD.get(exc.code or "", "form")] = exc.detail
            else:
                flash(request, f"Client {added.name} added.", category="success")
                return Redirect("/clients", status_code=303)
        return await _clients_page(
            actor, errors=errors, form=entered, status=HTTP_422_UNPROCESSABLE_ENTITY
        )

    @post("/clients/{client_id:uuid}/archive")
    async def archive_client(self, request: _Request, client_id: FromPath[uuid.UUID]) -> Redirect:
        actor = await portal_actor(request)
        archived = await clients.archive_client(actor, client_id, request=request_meta(request))
        flash(request, f"Client {archived.name} archived.", category="success")
        return Redirect("/clients", status_code=303)

    # -- document lists and the editor ------------------------------------------------------

    @get("/documents", name="documents")
    async def documents_page(self, request: _Request) -> Template:
        actor = await portal_actor(request)
        need_msp(actor, Permission.TENANT_READ)
        entered = _filter_inputs(request)
        errors: dict[str, str] = {}
        filters = _filters(entered, errors)
        client = await clients.get_client(actor, filters.client_id) if filters.client_id else None
        listing = None
        if not errors:
            listing = await documents.list_documents(actor, _keyring(request), filters)
        every_client = await clients.list_clients(actor, include_archived=True)
        next_query = None
        if listing is not None and listing.next_cursor:
            kept = {name: value for name, value in entered.items() if value and name != "cursor"}
            next_query = urlencode({**kept, "cursor": listing.next_cursor})
        return await page(
            actor,
            "documents.html",
            status=HTTP_422_UNPROCESSABLE_ENTITY if errors else 200,
            errors=errors,
            form=entered,
            client=client,
            documents=listing.items if listing else [],
            next_query=next_query,
            clients=every_client,
            client_names={c.id: c.name for c in every_client},
            kinds=list(DocumentKind),
            sensitivities=list(Sensitivity),
            can_write=actor.can(Permission.CONTENT_WRITE),
            when=_when,
        )

    @get("/documents/new")
    async def new_document(self, request: _Request) -> Template:
        actor = await portal_actor(request)
        need_msp(actor, Permission.CONTENT_WRITE)
        entered = _entered(FormMultiDict({}))
        query = request.query_params
        entered["client"] = str(query.get("client") or "")
        entered["kind"] = str(query.get("kind") or "")
        return await _editor(actor, document=None, entered=entered)

    @post("/documents/preview")
    async def preview(self, request: _Request) -> Template:
        """The body as Markdown, for the editor's live preview (htmx)."""
        actor = await portal_actor(request)
        need_msp(actor, Permission.CONTENT_WRITE)
        form = await request.form()
        return fragment("_markdown_preview.html", preview=_preview(_lf(str(form.get("body", "")))))

    @post("/documents")
    async def create_document(self, request: _Request) -> Response[Any]:
        actor = await portal_actor(request)
        need_msp(actor, Permission.CONTENT_WRITE)
        form = await request.form()
        entered = _entered(form)
        if form.get("intent") == "preview":  # the Preview button without JavaScript
            return await _editor(actor, document=None, entered=entered, resubmitted=True)
        errors: dict[str, str] = {}
        kind = _choice(DocumentKind, entered["kind"], "kind", errors, "Choose a kind.")
        if kind is None and "kind" not in errors:
            errors["kind"] = "Choose a kind."
        client_id = _client_choice(entered["client"], "client", errors)
        sensitivity = _choice(
            Sensitivity, entered["sensitivity"], "sensitivity", errors, "Choose a level."
        )
        fields = None
        if kind is DocumentKind.CREDENTIAL or _any_credential_input(entered):
            fields = _credential_fields(entered, errors)
        if kind is not None and not errors:
            try:
                created = await documents.create_document(
                    actor,
                    _keyring(request),
                    kind=kind,
                    content=Content(title=entered["title"], body=entered["body"], fields=fields),
                    client_id=client_id,
                    tags=_tag_list(entered["tags"]),
                    sensitivity=sensitivity,
                    request=request_meta(request),
                )
            except Invalid as exc:
                errors[_DOCUMENT_FIELD.get(exc.code or "", "form")] = exc.detail
            else:
                # Titles are sealed at rest: none goes into the session store with a flash message.
                flash(request, "Document created.", category="success")
                return Redirect(f"/documents/{created.id}", status_code=303)
        return await _editor(
            actor,
            document=None,
            entered=entered,
            errors=errors,
            status=HTTP_422_UNPROCESSABLE_ENTITY,
        )

    @get("/documents/{document_id:uuid}/edit")
    async def edit_document(self, request: _Request, document_id: FromPath[uuid.UUID]) -> Template:
        actor = await portal_actor(request)
        need(actor, Permission.CONTENT_WRITE)
        read = await documents.get_document(
            actor, _keyring(request), document_id, request=request_meta(request)
        )
        return await _editor(
            actor,
            document=read,
            entered=_document_form(read),
            secrets_set=_secrets_set(read.fields),
        )

    @post("/documents/{document_id:uuid}")
    async def save_document(
        self, request: _Request, document_id: FromPath[uuid.UUID]
    ) -> Response[Any]:
        """Save the editor: changed content becomes a new revision (the domain decides)."""
        actor = await portal_actor(request)
        need(actor, Permission.CONTENT_WRITE)
        keyring = _keyring(request)
        summary = await documents.get_summary(actor, keyring, document_id)
        form = await request.form()
        entered = _entered(form)
        if form.get("intent") == "preview":
            return await _editor(actor, document=summary, entered=entered, resubmitted=True)
        errors: dict[str, str] = {}
        client_id = _client_choice(entered["client"], "client", errors)
        sensitivity = _choice(
            Sensitivity, entered["sensitivity"], "sensitivity", errors, "Choose a level."
        )
        fields: CredentialFields | msgspec.UnsetType = msgspec.UNSET
        if summary.kind is DocumentKind.CREDENTIAL:
            current = await _current_fields(actor, keyring, document_id, entered, request)
            fields = _credential_fields(entered, errors, current) or msgspec.UNSET
        if not errors:
            try:
                saved = await documents.update_document(
                    actor,
                    keyring,
                    document_id,
                    title=entered["title"],
                    body=entered["body"],
                    fields=fields,
                    tags=_tag_list(entered["tags"]),
                    sensitivity=sensitivity or msgspec.UNSET,
                    client_id=client_id,
                    request=request_meta(request),
                )
            except Invalid as exc:
                errors[_DOCUMENT_FIELD.get(exc.code or "", "form")] = exc.detail
            else:
                if saved.current_revision > summary.current_revision:
                    message = f"Saved as revision {saved.current_revision}."
                else:
                    message = "Saved; the content did not change, so there is no new revision."
                flash(request, message, category="success")
                return Redirect(f"/documents/{document_id}", status_code=303)
        return await _editor(
            actor,
            document=summary,
            entered=entered,
            errors=errors,
            status=HTTP_422_UNPROCESSABLE_ENTITY,
        )

    # -- one document -----------------------------------------------------------------------

    @get("/documents/{document_id:uuid}")
    async def document_page(
        self,
        request: _Request,
        document_id: FromPath[uuid.UUID],
        revision: Annotated[int | None, QueryParameter(name="revision", ge=1)] = None,
    ) -> Template:
        """A revision rendered; credential secrets masked (they are shown only after a POST)."""
        actor = await portal_actor(request)
        read = await documents.get_document(
            actor, _keyring(request), document_id, revision=revision, request=request_meta(request)
        )
        return await _document_page(actor, read, revealed=False)

    @post("/documents/{document_id:uuid}/reveal")
    async def reveal(self, request: _Request, document_id: FromPath[uuid.UUID]) -> Template:
        """The page again with the credential in clear; the reveal is its own audit event."""
        actor = await portal_actor(request)
        form = await request.form()
        wanted = form_text(form, "revision")
        read = await documents.reveal_credential(
            actor,
            _keyring(request),
            document_id,
            revision=int(wanted) if wanted.isdigit() and int(wanted) > 0 else None,
            request=request_meta(request),
        )
        return await _document_page(actor, read, revealed=True)

    @post("/documents/{document_id:uuid}/archive")
    async def archive_document(
        self, request: _Request, document_id: FromPath[uuid.UUID]
    ) -> Redirect:
        actor = await portal_actor(request)
        await documents.archive_document(
            actor, _keyring(request), document_id, request=request_meta(request)
        )
        flash(request, "Document archived.", category="success")
        return Redirect(f"/documents/{document_id}", status_code=303)

    @get("/documents/{document_id:uuid}/history")
    async def history(self, request: _Request, document_id: FromPath[uuid.UUID]) -> Template:
        actor = await portal_actor(request)
        summary = await documents.get_summary(actor, _keyring(request), document_id)
        return await page(
            actor,
            "document_history.html",
            document=summary,
            revisions=await documents.list_revisions(actor, document_id),
            can_read=actor.can(Permission.CONTENT_READ),
            when=_when,
        )

    @get("/documents/{document_id:uuid}/diff")
    async def diff(
        self,
        request: _Request,
        document_id: FromPath[uuid.UUID],
        from_revision: Annotated[int | None, QueryParameter(name="from", ge=1)] = None,
        to_revision: Annotated[int | None, QueryParameter(name="to", ge=1)] = None,
    ) -> Template:
        """A line diff of two revisions' bodies (each revision read is audited)."""
        actor = await portal_actor(request)
        keyring = _keyring(request)
        summary = await documents.get_summary(actor, keyring, document_id)
        newer = to_revision or summary.current_revision
        older = from_revision or max(1, newer - 1)
        meta = request_meta(request)
        before = await documents.get_document(
            actor, keyring, document_id, revision=older, request=meta
        )
        after = await documents.get_document(
            actor, keyring, document_id, revision=newer, request=meta
        )
        lines = line_diff(before.body, after.body)
        return await page(
            actor,
            "document_diff.html",
            document=summary,
            before=before,
            after=after,
            lines=lines,
            added=sum(line.op == "+" for line in lines),
            removed=sum(line.op == "-" for line in lines),
            revisions=range(summary.current_revision, 0, -1),
            when=_when,
        )


def _secrets_set(fields: CredentialFields | None) -> frozenset[str]:
    """Which secret fields hold a value (the editor says so instead of showing it)."""
    if fields is None:
        return frozenset()
    return frozenset(name for name in _SECRET_INPUTS if getattr(fields, name))


async def _current_fields(
    actor: Actor,
    keyring: KeyRing,
    document_id: uuid.UUID,
    entered: dict[str, str],
    request: _Request,
) -> CredentialFields | None:
    """The stored credential fields when an empty secret input means "keep" (an audited read)."""
    if all(entered[name] for name in _SECRET_INPUTS):
        return None
    read = await documents.get_document(actor, keyring, document_id, request=request_meta(request))
    return read.fields
