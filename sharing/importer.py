"""Import a folder of Markdown files with front matter as documents, idempotently.

Front matter is a block of `key: value` lines between `---` lines at the top of the file:
`title`, `client` (short code or name; none for MSP-wide documents), `kind`, `tags` (`[a, b]`
or `a, b`), `sensitivity`, and for credentials `username`, `password`, `url`, `totp_seed`.
The file's path below the folder identifies the document: importing again updates it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from policies.vocabulary import DocumentKind, Sensitivity
from sharing import documents
from sharing.audit import AuditAction, Outcome, record
from sharing.clients import list_clients
from sharing.documents import Content, CredentialFields
from tenants.errors import DomainError, Invalid
from tenants.keyring import KeyRing
from tenants.roles import Actor, Permission

__all__ = ["ImportReport", "ParsedDocument", "import_markdown", "parse_markdown"]

_KEYS = {"title", "client", "kind", "tags", "sensitivity"}
_CREDENTIAL_KEYS = {"username", "password", "url", "totp_seed"}
_MAX_FILE_BYTES = documents.MAX_BODY_BYTES + 64 * 1024


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    kind: DocumentKind
    content: Content
    client: str | None
    tags: list[str]
    sensitivity: Sensitivity | None


@dataclass(slots=True)
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return len(self.errors)


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def parse_markdown(raw: bytes, fallback_title: str) -> ParsedDocument:
    """Parse one file; raise `Invalid` saying what is wrong and where."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Invalid(f"not valid UTF-8 (byte {exc.start})", code="encoding") from None
    text = text.removeprefix("\ufeff").replace("\r\n", "\n")
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        raise Invalid("no front matter: the file must start with a line '---'", code="front_matter")
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        raise Invalid(
            "the front matter is not closed by a line '---'", code="front_matter"
        ) from None
    meta: dict[str, str] = {}
    for number, line in enumerate(lines[1:end], start=2):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if not sep:
            raise Invalid(f"line {number}: expected 'key: value'", code="front_matter")
        if key not in _KEYS | _CREDENTIAL_KEYS:
            raise Invalid(f"line {number}: unknown front matter key {key!r}", code="front_matter")
        meta[key] = _unquote(value)
    body = "\n".join(lines[end + 1 :]).strip("\n")
    try:
        kind = DocumentKind(meta.get("kind", "").lower())
    except ValueError:
        kinds = ", ".join(k.value for k in DocumentKind)
        raise Invalid(
            f"unknown kind {meta.get('kind', '')!r}: use one of {kinds}", code="kind"
        ) from None
    sensitivity = None
    if "sensitivity" in meta:
        try:
            sensitivity = Sensitivity(meta["sensitivity"].lower())
        except ValueError:
            raise Invalid(
                f"unknown sensitivity {meta['sensitivity']!r}: standard, confidential or secret",
                code="sensitivity",
            ) from None
    raw_tags = meta.get("tags", "").strip().removeprefix("[").removesuffix("]")
    tags = [_unquote(tag) for tag in raw_tags.split(",") if tag.strip()]
    title = meta.get("title") or _first_heading(body) or fallback_title
    fields = None
    if kind is DocumentKind.CREDENTIAL:
        fields = CredentialFields(
            username=meta.get("username", ""),
            password=meta.get("password", ""),
            url=meta.get("url", ""),
            totp_seed=meta.get("totp_seed") or None,
        )
    elif _CREDENTIAL_KEYS & meta.keys():
        raise Invalid("credential fields belong to documents of kind credential", code="fields")
    return ParsedDocument(
        kind=kind,
        content=Content(title=title.strip(), body=body, fields=fields),
        client=meta.get("client") or None,
        tags=tags,
        sensitivity=sensitivity,
    )


def _markdown_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*.md") if path.is_file())


def _first_heading(body: str) -> str | None:
    for line in body.splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return None


async def import_markdown(
    actor: Actor,
    keyring: KeyRing,
    folder: Path,
    *,
    progress: Callable[[int, int, str], None] | None = None,
) -> ImportReport:
    """Import every `*.md` below `folder`; a bad file is reported and the rest go on."""
    tenant_id = actor.require(Permission.CONTENT_WRITE)
    files = await anyio.to_thread.run_sync(_markdown_files, folder)
    clients = await list_clients(actor)
    by_code = {client.short_code: client.id for client in clients}
    by_name = {client.name.casefold(): client.id for client in clients}
    report = ImportReport()
    for index, path in enumerate(files, start=1):
        source = path.relative_to(folder).as_posix()
        if progress:
            progress(index - 1, len(files), source)
        try:
            outcome = await _import_one(actor, keyring, tenant_id, path, source, by_code, by_name)
        except DomainError as exc:
            report.errors.append((source, exc.detail))
        else:
            setattr(report, outcome, getattr(report, outcome) + 1)
    if progress:
        progress(len(files), len(files), "")
    await record(
        tenant_id,
        AuditAction.DOCUMENTS_IMPORTED,
        actor=actor,
        outcome=Outcome.FAILURE if report.errors else Outcome.SUCCESS,
        target_type="folder",
        target_id=folder.name[:64],
        context={
            "created": str(report.created),
            "updated": str(report.updated),
            "unchanged": str(report.unchanged),
            "failed": str(report.failed),
        },
    )
    return report


async def _import_one(
    actor: Actor,
    keyring: KeyRing,
    tenant_id: uuid.UUID,
    path: Path,
    source: str,
    by_code: dict[str, uuid.UUID],
    by_name: dict[str, uuid.UUID],
) -> str:
    file = anyio.Path(path)
    if (await file.stat()).st_size > _MAX_FILE_BYTES:
        raise Invalid(f"larger than {documents.MAX_BODY_BYTES} bytes", code="body_too_large")
    parsed = parse_markdown(await file.read_bytes(), path.stem.replace("-", " "))
    client_id = None
    if parsed.client is not None:
        client_id = by_code.get(parsed.client.upper()) or by_name.get(parsed.client.casefold())
        if client_id is None:
            raise Invalid(f"unknown client {parsed.client!r}", code="client_unknown")
    existing = await documents.find_by_source(tenant_id, source)
    if existing is None:
        await documents.create_document(
            actor,
            keyring,
            kind=parsed.kind,
            content=parsed.content,
            client_id=client_id,
            tags=parsed.tags,
            sensitivity=parsed.sensitivity,
            source_key=source,
        )
        return "created"
    if existing["kind"] != parsed.kind.value:
        raise Invalid(
            f"kind changed from {existing['kind']} to {parsed.kind.value}: "
            "archive the old document first",
            code="kind",
        )
    summary = await documents.update_document(
        actor,
        keyring,
        existing["id"],
        title=parsed.content.title,
        body=parsed.content.body,
        fields=parsed.content.fields,
        tags=parsed.tags,
        sensitivity=parsed.sensitivity or Sensitivity(existing["sensitivity"]),
        client_id=client_id,
    )
    return "updated" if summary.updated_at != existing["updated_at"] else "unchanged"
