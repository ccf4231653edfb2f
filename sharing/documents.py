"""Client documentation and SOPs: documents with revisions, their content sealed at rest.

Kind, tags, sensitivity, client and times stay in clear for scoping; title, body and credential
fields are encrypted per revision (see `tenants.keyring`). Every change and every read of content
is audited.
"""

from __future__ import annotations

import base64
import re
import struct
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec

from policies.vocabulary import DocumentKind, Sensitivity
from sharing.audit import AuditAction, Outcome, RequestMeta, Severity, record
from sharing.tables import Client, Document, DocumentRevision
from tenants.db import write_transaction
from tenants.errors import Forbidden, Invalid, NotFound
from tenants.keyring import IntegrityFailure, KeyRing, open_with, seal_with
from tenants.roles import Actor, Permission

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_TAGS",
    "MAX_TITLE_CHARS",
    "Content",
    "CredentialFields",
    "DocumentFilters",
    "DocumentPage",
    "DocumentRead",
    "DocumentSummary",
    "RevisionSummary",
    "archive_document",
    "create_document",
    "current_content",
    "current_title",
    "find_by_source",
    "get_document",
    "get_summary",
    "list_documents",
    "list_revisions",
    "normalise_tags",
    "open_revision",
    "reveal_credential",
    "revision_context",
    "update_document",
]

MAX_BODY_BYTES = 1024 * 1024
"""A body (Markdown plus credential fields) is at most 1 MiB of UTF-8."""
MAX_TITLE_CHARS = 200
MAX_TAGS = 20
_TAG = re.compile(r"^[a-z0-9][a-z0-9.:/-]{0,39}$")
_FORMAT = 1
_NO_REQUEST = RequestMeta()


class CredentialFields(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The structured part of a `credential` document."""

    username: Annotated[str, msgspec.Meta(max_length=500)] = ""
    password: Annotated[str, msgspec.Meta(max_length=10_000)] = ""
    url: Annotated[str, msgspec.Meta(max_length=2_000)] = ""
    notes: Annotated[str, msgspec.Meta(max_length=100_000)] = ""
    totp_seed: Annotated[str, msgspec.Meta(max_length=200)] | None = None


class Content(msgspec.Struct, frozen=True):
    """What one revision seals: the title separately from the rest."""

    title: str
    body: str = ""
    fields: CredentialFields | None = None


class DocumentSummary(msgspec.Struct, frozen=True):
    """Metadata and title: what lists show, never the body."""

    id: uuid.UUID
    client_id: uuid.UUID | None
    kind: DocumentKind
    title: str
    tags: list[str]
    sensitivity: Sensitivity
    current_revision: int
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None


class DocumentRead(msgspec.Struct, frozen=True):
    id: uuid.UUID
    client_id: uuid.UUID | None
    kind: DocumentKind
    tags: list[str]
    sensitivity: Sensitivity
    revision: int
    current_revision: int
    title: str
    body: str
    fields: CredentialFields | None
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None
    revised_by: str
    revised_at: datetime


class RevisionSummary(msgspec.Struct, frozen=True):
    revision: int
    body_bytes: int
    created_by: str
    created_at: datetime


class DocumentPage(msgspec.Struct, frozen=True):
    items: list[DocumentSummary]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class DocumentFilters:
    client_id: uuid.UUID | None = None
    kind: DocumentKind | None = None
    tag: str | None = None
    sensitivity: Sensitivity | None = None
    include_archived: bool = False
    limit: int = 50
    cursor: str | None = None


@dataclass(frozen=True, slots=True)
class _Sealed:
    revision_id: uuid.UUID
    wrapped_dek: bytes
    kek_version: int
    title: bytes
    body: bytes
    body_bytes: int


def _now() -> datetime:
    return datetime.now(UTC)


# -- sealing ------------------------------------------------------------------------------


def revision_context(tenant_id: uuid.UUID, document_id: uuid.UUID, revision: int) -> bytes:
    """What a revision's data key and content are bound to: tenant, document, revision."""
    return tenant_id.bytes + document_id.bytes + struct.pack(">I", revision)


def _header(revision_id: uuid.UUID) -> bytes:
    return bytes([_FORMAT]) + revision_id.bytes


async def _seal(
    keyring: KeyRing,
    tenant_id: uuid.UUID,
    document_id: uuid.UUID,
    revision: int,
    content: Content,
) -> _Sealed:
    context = revision_context(tenant_id, document_id, revision)
    data_key = await keyring.new_data_key(tenant_id, context)
    revision_id = uuid.uuid4()
    body = msgspec.json.encode({"body": content.body, "fields": content.fields})
    return _Sealed(
        revision_id=revision_id,
        wrapped_dek=data_key.wrapped,
        kek_version=data_key.kek_version,
        title=seal_with(
            data_key.key,
            content.title.encode(),
            header=_header(revision_id),
            context=b"title|" + context,
        ),
        body=seal_with(data_key.key, body, header=_header(revision_id), context=b"body|" + context),
        body_bytes=len(body),
    )


async def _data_key(keyring: KeyRing, row: dict[str, Any]) -> bytes:
    context = revision_context(row["tenant_id"], row["document_id"], row["revision"])
    return await keyring.unwrap_dek(row["tenant_id"], bytes(row["wrapped_dek"]), context)


def _open_part(key: bytes, row: dict[str, Any], part: str) -> bytes:
    context = revision_context(row["tenant_id"], row["document_id"], row["revision"])
    what = f"the {part} of document {row['document_id']} revision {row['revision']}"
    return open_with(
        key,
        bytes(row[f"{part}_sealed"]),
        header_size=17,
        context=part.encode() + b"|" + context,
        what=what,
    )


async def _open_title(keyring: KeyRing, row: dict[str, Any]) -> str:
    return _open_part(await _data_key(keyring, row), row, "title").decode()


async def _open_content(keyring: KeyRing, row: dict[str, Any]) -> Content:
    key = await _data_key(keyring, row)
    body = msgspec.json.decode(_open_part(key, row, "body"))
    fields = body.get("fields")
    return Content(
        title=_open_part(key, row, "title").decode(),
        body=body.get("body", ""),
        fields=msgspec.convert(fields, CredentialFields) if fields is not None else None,
    )


# -- validation ---------------------------------------------------------------------------


def normalise_tags(tags: list[str]) -> list[str]:
    cleaned = sorted({tag.strip().lower() for tag in tags if tag.strip()})
    if len(cleaned) > MAX_TAGS:
        raise Invalid(f"a document has at most {MAX_TAGS} tags", code="tags")
    for tag in cleaned:
        if not _TAG.match(tag):
            raise Invalid(
                f"tag {tag!r}: use 1-40 lower-case letters, digits and . : / -", code="tags"
            )
    return cleaned


def _tag_text(tags: list[str]) -> str:
    return "|" + "".join(f"{tag}|" for tag in tags)


def _tags_of(text: str) -> list[str]:
    return [tag for tag in text.split("|") if tag]


def _check_content(kind: DocumentKind, content: Content) -> None:
    title = content.title.strip()
    if not 1 <= len(title) <= MAX_TITLE_CHARS:
        raise Invalid(f"the title needs 1 to {MAX_TITLE_CHARS} characters", code="title")
    if content.fields is not None and kind is not DocumentKind.CREDENTIAL:
        raise Invalid("only credential documents carry credential fields", code="fields")
    size = len(content.body.encode()) + len(msgspec.json.encode(content.fields))
    if size > MAX_BODY_BYTES:
        raise Invalid(
            f"the body is {size} bytes; the limit is {MAX_BODY_BYTES} bytes (1 MiB)",
            code="body_too_large",
        )


def _sensitivity_for(kind: DocumentKind, wanted: Sensitivity | None) -> Sensitivity:
    if kind is DocumentKind.CREDENTIAL:
        if wanted not in (None, Sensitivity.SECRET):
            raise Invalid("credential documents are always secret", code="sensitivity")
        return Sensitivity.SECRET
    return wanted or Sensitivity.STANDARD


async def _check_client(tenant_id: uuid.UUID, client_id: uuid.UUID | None) -> None:
    if client_id is None:
        return
    exists = await Client.exists().where(
        (Client.id == client_id) & (Client.tenant_id == tenant_id) & Client.archived_at.is_null()
    )
    if not exists:
        raise Invalid("no such client (or it is archived)", code="client_unknown")


_NOT_MSP = "only an MSP tenant keeps client documentation"


# -- reads --------------------------------------------------------------------------------


async def _document_row(tenant_id: uuid.UUID, document_id: uuid.UUID) -> dict[str, Any]:
    row: dict[str, Any] | None = (
        await Document.select()
        .where((Document.id == document_id) & (Document.tenant_id == tenant_id))
        .first()
    )
    if row is None:
        raise NotFound("no such document")
    return row


async def _revision_row(
    tenant_id: uuid.UUID, document_id: uuid.UUID, revision: int
) -> dict[str, Any]:
    row: dict[str, Any] | None = (
        await DocumentRevision.select()
        .where(
            (DocumentRevision.tenant_id == tenant_id)
            & (DocumentRevision.document_id == document_id)
            & (DocumentRevision.revision == revision)
        )
        .first()
    )
    if row is None:
        raise NotFound("no such revision")
    return row


def _encode_cursor(row: dict[str, Any]) -> str:
    raw = f"{row['created_at'].astimezone(UTC).isoformat()}|{row['id']}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, _, ident = raw.partition("|")
        return datetime.fromisoformat(moment), uuid.UUID(ident)
    except (ValueError, UnicodeDecodeError):
        raise Invalid("the cursor is not one this API gave out", code="cursor") from None


async def list_documents(actor: Actor, keyring: KeyRing, filters: DocumentFilters) -> DocumentPage:
    """Newest first, `filters.limit` at a time; titles decrypted, bodies never."""
    tenant_id = actor.require(Permission.TENANT_READ)
    if not 1 <= filters.limit <= 200:
        raise Invalid("limit is between 1 and 200", code="limit")
    where: Any = Document.tenant_id == tenant_id
    if filters.client_id is not None:
        where &= Document.client_id == filters.client_id
    if filters.kind is not None:
        where &= Document.kind == filters.kind.value
    if filters.sensitivity is not None:
        where &= Document.sensitivity == filters.sensitivity.value
    if filters.tag is not None:
        (tag,) = normalise_tags([filters.tag]) or [""]
        where &= Document.tags.like(f"%|{tag}|%")
    if not filters.include_archived:
        where &= Document.archived_at.is_null()
    if filters.cursor:
        moment, ident = _decode_cursor(filters.cursor)
        where &= (Document.created_at < moment) | (
            (Document.created_at == moment) & (Document.id < ident)
        )
    rows = (
        await Document.select()
        .where(where)
        .order_by(Document.created_at, Document.id, ascending=False)
        .limit(filters.limit + 1)
    )
    more = len(rows) > filters.limit
    rows = rows[: filters.limit]
    revisions = await _current_revisions(tenant_id, rows)
    items = []
    for row in rows:
        title = await _open_title(keyring, revisions[(row["id"], row["current_revision"])])
        items.append(_summary(row, title))
    return DocumentPage(items, _encode_cursor(rows[-1]) if more and rows else None)


async def _current_revisions(
    tenant_id: uuid.UUID, rows: list[dict[str, Any]]
) -> dict[tuple[uuid.UUID, int], dict[str, Any]]:
    if not rows:
        return {}
    found = await DocumentRevision.select(
        DocumentRevision.tenant_id,
        DocumentRevision.document_id,
        DocumentRevision.revision,
        DocumentRevision.wrapped_dek,
        DocumentRevision.title_sealed,
    ).where(
        (DocumentRevision.tenant_id == tenant_id)
        & DocumentRevision.document_id.is_in([row["id"] for row in rows])
    )
    return {(r["document_id"], r["revision"]): r for r in found}


def _summary(row: dict[str, Any], title: str) -> DocumentSummary:
    return DocumentSummary(
        id=row["id"],
        client_id=row["client_id"],
        kind=DocumentKind(row["kind"]),
        title=title,
        tags=_tags_of(row["tags"]),
        sensitivity=Sensitivity(row["sensitivity"]),
        current_revision=row["current_revision"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        archived_at=row["archived_at"],
    )


async def get_document(
    actor: Actor,
    keyring: KeyRing,
    document_id: uuid.UUID,
    *,
    revision: int | None = None,
    request: RequestMeta = _NO_REQUEST,
    reveal: bool = False,
) -> DocumentRead:
    """A revision's decrypted content (the current one by default); the read is audited.

    `reveal` is a person's explicit "show the credential" (see `reveal_credential`): audited as
    `document:revealed` at high severity instead of a plain read.
    """
    tenant_id = actor.require(Permission.TENANT_READ)
    document = await _document_row(tenant_id, document_id)
    if not actor.can(Permission.CONTENT_READ):
        raise Forbidden("your role may see document metadata, not bodies", code="no_body_access")
    if reveal and document["kind"] != DocumentKind.CREDENTIAL:
        raise Invalid("only credential documents have fields to reveal", code="not_credential")
    number = document["current_revision"] if revision is None else revision
    row = await _revision_row(tenant_id, document_id, number)
    try:
        content = await _open_content(keyring, row)
    except IntegrityFailure as failure:
        await record(
            tenant_id,
            AuditAction.DOCUMENT_INTEGRITY_FAILED,
            actor=actor,
            outcome=Outcome.FAILURE,
            severity=Severity.HIGH,
            target_type="document",
            target_id=document_id,
            reason=failure.detail,
            request=request,
            context={"revision": str(number)},
        )
        raise
    if reveal:
        shown = [name for name in CredentialFields.__struct_fields__ if _field(content, name)]
        action, severity = AuditAction.DOCUMENT_REVEALED, Severity.HIGH
        context = {"revision": str(number), "fields": ",".join(shown)}
    else:
        action, context = (
            AuditAction.DOCUMENT_READ,
            {"revision": str(number), "kind": document["kind"]},
        )
        is_credential = document["kind"] == DocumentKind.CREDENTIAL
        severity = Severity.WARNING if is_credential else Severity.INFO
    await record(
        tenant_id,
        action,
        actor=actor,
        target_type="document",
        target_id=document_id,
        severity=severity,
        request=request,
        context=context,
    )
    return DocumentRead(
        id=document["id"],
        client_id=document["client_id"],
        kind=DocumentKind(document["kind"]),
        tags=_tags_of(document["tags"]),
        sensitivity=Sensitivity(document["sensitivity"]),
        revision=number,
        current_revision=document["current_revision"],
        title=content.title,
        body=content.body,
        fields=content.fields,
        created_at=document["created_at"],
        updated_at=document["updated_at"],
        archived_at=document["archived_at"],
        revised_by=row["created_by"],
        revised_at=row["created_at"],
    )


def _field(content: Content, name: str) -> bool:
    return content.fields is not None and bool(getattr(content.fields, name))


async def list_revisions(actor: Actor, document_id: uuid.UUID) -> list[RevisionSummary]:
    tenant_id = actor.require(Permission.TENANT_READ)
    await _document_row(tenant_id, document_id)
    rows = (
        await DocumentRevision.select(
            DocumentRevision.revision,
            DocumentRevision.body_bytes,
            DocumentRevision.created_by,
            DocumentRevision.created_at,
        )
        .where(
            (DocumentRevision.tenant_id == tenant_id)
            & (DocumentRevision.document_id == document_id)
        )
        .order_by(DocumentRevision.revision, ascending=False)
    )
    return [msgspec.convert(row, RevisionSummary) for row in rows]


# -- writes -------------------------------------------------------------------------------


async def _insert_revision(
    keyring: KeyRing,
    tenant_id: uuid.UUID,
    document_id: uuid.UUID,
    revision: int,
    content: Content,
    author: str,
    now: datetime,
) -> None:
    sealed = await _seal(keyring, tenant_id, document_id, revision, content)
    await DocumentRevision.insert(
        DocumentRevision(
            id=sealed.revision_id,
            tenant_id=tenant_id,
            document_id=document_id,
            revision=revision,
            kek_version=sealed.kek_version,
            wrapped_dek=sealed.wrapped_dek,
            title_sealed=sealed.title,
            body_sealed=sealed.body,
            body_bytes=sealed.body_bytes,
            created_by=author,
            created_at=now,
        )
    )


async def create_document(
    actor: Actor,
    keyring: KeyRing,
    *,
    kind: DocumentKind,
    content: Content,
    client_id: uuid.UUID | None = None,
    tags: list[str] | None = None,
    sensitivity: Sensitivity | None = None,
    source_key: str | None = None,
    request: RequestMeta = _NO_REQUEST,
) -> DocumentSummary:
    tenant_id = actor.require_msp(Permission.CONTENT_WRITE, _NOT_MSP)
    content = Content(content.title.strip(), content.body, content.fields)
    _check_content(kind, content)
    level = _sensitivity_for(kind, sensitivity)
    tag_list = normalise_tags(tags or [])
    now = _now()
    document_id = uuid.uuid4()
    async with write_transaction():
        await _check_client(tenant_id, client_id)
        await Document.insert(
            Document(
                id=document_id,
                tenant_id=tenant_id,
                client_id=client_id,
                kind=kind.value,
                sensitivity=level.value,
                tags=_tag_text(tag_list),
                current_revision=1,
                source_key=source_key,
                created_by=actor.label,
                created_at=now,
                updated_at=now,
            )
        )
        await _insert_revision(keyring, tenant_id, document_id, 1, content, actor.label, now)
        await record(
            tenant_id,
            AuditAction.DOCUMENT_CREATED,
            actor=actor,
            target_type="document",
            target_id=document_id,
            request=request,
            context=_metadata_context(kind, level, client_id, source_key),
        )
    return _summary(await _document_row(tenant_id, document_id), content.title)


def _metadata_context(
    kind: DocumentKind,
    level: Sensitivity,
    client_id: uuid.UUID | None,
    source_key: str | None = None,
) -> dict[str, str]:
    context = {"kind": kind.value, "sensitivity": level.value}
    if client_id is not None:
        context["client_id"] = str(client_id)
    if source_key is not None:
        context["source"] = source_key
    return context


_UNSET: Any = msgspec.UNSET


async def update_document(
    actor: Actor,
    keyring: KeyRing,
    document_id: uuid.UUID,
    *,
    title: str | msgspec.UnsetType = _UNSET,
    body: str | msgspec.UnsetType = _UNSET,
    fields: CredentialFields | msgspec.UnsetType | None = _UNSET,
    tags: list[str] | msgspec.UnsetType = _UNSET,
    sensitivity: Sensitivity | msgspec.UnsetType = _UNSET,
    client_id: uuid.UUID | msgspec.UnsetType | None = _UNSET,
    request: RequestMeta = _NO_REQUEST,
) -> DocumentSummary:
    """Change what is given. New content makes a new revision; metadata changes do not."""
    tenant_id = actor.require(Permission.CONTENT_WRITE)
    now = _now()
    async with write_transaction():
        document = await _document_row(tenant_id, document_id)
        if document["archived_at"] is not None:
            raise Invalid("the document is archived", code="archived")
        kind = DocumentKind(document["kind"])
        current_row = await _revision_row(tenant_id, document_id, document["current_revision"])
        current = await _open_content(keyring, current_row)
        content = Content(
            title=current.title if title is _UNSET else str(title).strip(),
            body=current.body if body is _UNSET else str(body),
            fields=current.fields if fields is _UNSET else fields,  # type: ignore[arg-type]
        )
        _check_content(kind, content)
        changes: dict[Any, Any] = {}
        changed: list[str] = []
        if content != current:
            changes[Document.current_revision] = document["current_revision"] + 1
            changed.append("content")
        if tags is not _UNSET:
            tag_text = _tag_text(normalise_tags(list(tags)))  # type: ignore[arg-type]
            if tag_text != document["tags"]:
                changes[Document.tags] = tag_text
                changed.append("tags")
        if sensitivity is not _UNSET:
            level = _sensitivity_for(kind, sensitivity)  # type: ignore[arg-type]
            if level.value != document["sensitivity"]:
                changes[Document.sensitivity] = level.value
                changed.append("sensitivity")
        if client_id is not _UNSET and client_id != document["client_id"]:
            await _check_client(tenant_id, client_id)  # type: ignore[arg-type]
            changes[Document.client_id] = client_id
            changed.append("client")
        if changed:
            if "content" in changed:
                await _insert_revision(
                    keyring,
                    tenant_id,
                    document_id,
                    document["current_revision"] + 1,
                    content,
                    actor.label,
                    now,
                )
            changes[Document.updated_at] = now
            await Document.update(changes).where(
                (Document.id == document_id) & (Document.tenant_id == tenant_id)
            )
            await record(
                tenant_id,
                AuditAction.DOCUMENT_UPDATED,
                actor=actor,
                target_type="document",
                target_id=document_id,
                request=request,
                context={
                    "changed": ",".join(changed),
                    "revision": str(changes.get(Document.current_revision, "unchanged")),
                },
            )
    return _summary(await _document_row(tenant_id, document_id), content.title)


async def archive_document(
    actor: Actor, keyring: KeyRing, document_id: uuid.UUID, *, request: RequestMeta = _NO_REQUEST
) -> DocumentSummary:
    """Archived documents leave lists and can no longer be shared; their revisions remain."""
    tenant_id = actor.require(Permission.CONTENT_WRITE)
    now = _now()
    async with write_transaction():
        document = await _document_row(tenant_id, document_id)
        if document["archived_at"] is None:
            await Document.update({Document.archived_at: now, Document.updated_at: now}).where(
                (Document.id == document_id) & (Document.tenant_id == tenant_id)
            )
            await record(
                tenant_id,
                AuditAction.DOCUMENT_ARCHIVED,
                actor=actor,
                target_type="document",
                target_id=document_id,
                request=request,
            )
    row = await _document_row(tenant_id, document_id)
    revision = await _revision_row(tenant_id, document_id, row["current_revision"])
    return _summary(row, await _open_title(keyring, revision))


async def find_by_source(tenant_id: uuid.UUID, source_key: str) -> dict[str, Any] | None:
    """The document an import made from `source_key`, for idempotent re-imports."""
    row: dict[str, Any] | None = (
        await Document.select()
        .where((Document.tenant_id == tenant_id) & (Document.source_key == source_key))
        .first()
    )
    return row


async def open_revision(keyring: KeyRing, revision: dict[str, Any]) -> Content:
    """The content of a revision row already loaded (tenant_id, document_id, revision, and
    the sealed columns)."""
    return await _open_content(keyring, revision)


async def current_title(keyring: KeyRing, tenant_id: uuid.UUID, row: dict[str, Any]) -> str:
    revision = await _revision_row(tenant_id, row["id"], row["current_revision"])
    return await _open_title(keyring, revision)


async def current_content(keyring: KeyRing, tenant_id: uuid.UUID, row: dict[str, Any]) -> Content:
    revision = await _revision_row(tenant_id, row["id"], row["current_revision"])
    return await _open_content(keyring, revision)


# -- portal helpers -----------------------------------------------------------------------


async def get_summary(actor: Actor, keyring: KeyRing, document_id: uuid.UUID) -> DocumentSummary:
    """One document's metadata and current title, as lists show it (no body, so not audited)."""
    tenant_id = actor.require(Permission.TENANT_READ)
    row = await _document_row(tenant_id, document_id)
    return _summary(row, await current_title(keyring, tenant_id, row))


async def reveal_credential(
    actor: Actor,
    keyring: KeyRing,
    document_id: uuid.UUID,
    *,
    revision: int | None = None,
    request: RequestMeta = _NO_REQUEST,
) -> DocumentRead:
    """A credential document with its fields in clear, for the MSP's own staff.

    The reveal is its own event (`document:revealed`, high severity), written before anything is
    returned; it stands in for the read event, so one reveal is exactly one event.
    """
    return await get_document(
        actor, keyring, document_id, revision=revision, request=request, reveal=True
    )
