"""Search of a tenant's own audit chain: filters, keyset pages, a stream in batches, and CSV.

Every search runs in the caller's tenant and reads that tenant's chain only. Nothing is lost to
either side by that: a partner's read is written to the MSP's chain (the owner) and to the NOC's
(the actor), so each auditor finds in its own chain every event that concerns its tenant, and
nothing of another tenant's that does not.
"""

from __future__ import annotations

import base64
import csv
import enum
import io
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from piccolo.columns.combination import WhereRaw
from piccolo.engine.postgres import PostgresEngine
from piccolo.querystring import QueryString

from sharing.audit import AuditAction, Outcome, Severity
from sharing.tables import AuditEvent
from tenants.errors import Invalid
from tenants.roles import Actor, Permission
from tenants.tables import Tenant

__all__ = [
    "CSV_COLUMNS",
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "AuditEventView",
    "AuditPage",
    "AuditQuery",
    "Order",
    "checked",
    "context_member",
    "csv_chunks",
    "iter_matching",
    "matching_events",
    "neutralise",
    "search",
]

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
_BATCH = 500
_MAX_SEQ = 2**63 - 1  # a BIGINT


class Order(enum.StrEnum):
    DESC = "desc"
    ASC = "asc"


# An instant without an offset means nothing across zones: refuse it rather than guess.
_Instant = Annotated[datetime, msgspec.Meta(tz=True)]


class AuditQuery(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What to look for; every filter given must hold (they narrow together).

    `since` is inclusive and `until` exclusive. `actor` is an actor id, or a label (a user's
    email, an OAuth client id) in any case. `partner` is the other tenant's slug: the events
    about grants and the partnership between the two tenants, and the acts of its OAuth clients.
    `psa_reference` finds the incident's events, including those that name only its grant (an
    extension request, a token); `client_id` likewise takes in the client's grants and
    documents.
    """

    since: _Instant | None = None
    until: _Instant | None = None
    actor: Annotated[str, msgspec.Meta(min_length=1, max_length=254)] | None = None
    partner: Annotated[str, msgspec.Meta(min_length=1, max_length=63)] | None = None
    client_id: uuid.UUID | None = None
    psa_reference: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] | None = None
    grant_id: uuid.UUID | None = None
    document_id: uuid.UUID | None = None
    action: Annotated[tuple[AuditAction, ...], msgspec.Meta(max_length=100)] = ()
    outcome: Outcome | None = None
    severity: Severity | None = None
    order: Order = Order.DESC


class AuditEventView(msgspec.Struct, frozen=True):
    """One event with every stored field: enough to recompute its hash and link."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    seq: int
    occurred_at: datetime
    actor_type: str
    actor_id: str | None
    actor_label: str
    action: str
    target_type: str | None
    target_id: str | None
    outcome: str
    severity: str
    reason: str | None
    request_id: str | None
    source_address: str | None
    context: dict[str, str]
    prev_hash: str
    hash: str


class AuditPage(msgspec.Struct, frozen=True):
    events: list[AuditEventView]
    next_cursor: str | None


def checked(query: AuditQuery) -> AuditQuery:
    """`query` with every constraint of its type enforced (a Struct built in code skips them)."""
    try:
        query = msgspec.convert(msgspec.structs.asdict(query), AuditQuery)
    except msgspec.ValidationError as error:
        raise Invalid(f"the search is not valid: {error}", code="query") from None
    if query.since is not None and query.until is not None and query.since >= query.until:
        raise Invalid("`since` must be earlier than `until`", code="since")
    return query


def _encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    refused = Invalid("the cursor is not one this API gave out", code="cursor")
    if len(cursor) > 64:
        raise refused
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        label, _, number = raw.partition(":")
        seq = int(number)
    except (ValueError, UnicodeDecodeError):
        raise refused from None
    if label != "seq" or not number.isdigit() or not 0 <= seq <= _MAX_SEQ:
        raise refused
    return seq


# --- SQL --------------------------------------------------------------------------------------
#
# Members of `context` are read with each engine's JSON operator. The keys are the constants
# below, never a caller's input; every value a caller gives is a bound parameter. Expression
# indexes led by `tenant_id` make the filters fast; they must repeat these expressions exactly
# (`(context->>'grant_id')`, `json_extract(context, '$.grant_id')`) for the planner to use them.

_CONTEXT_KEYS = (
    "grant_id",
    "psa_reference",
    "document_id",
    "client_id",
    "msp_tenant_id",
    "noc_tenant_id",
)
_POSTGRES_MEMBER = {key: f"(context->>'{key}')" for key in _CONTEXT_KEYS}
_SQLITE_MEMBER = {key: f"json_extract(context, '$.{key}')" for key in _CONTEXT_KEYS}


def context_member(key: str) -> QueryString:
    """`context`'s member `key` as SQL of the bound engine."""
    postgres = isinstance(AuditEvent._meta.db, PostgresEngine)
    return QueryString((_POSTGRES_MEMBER if postgres else _SQLITE_MEMBER)[key])


def _raw(sql: str, *args: Any) -> WhereRaw:
    """A raw condition, parenthesised so that its ORs never bind to the conditions beside it
    (the tenant's among them)."""
    return WhereRaw("({})", QueryString(sql, *args))


# Subqueries, tenant-scoped like everything here: the grants of an incident or of a client that
# this tenant holds as the MSP or as the NOC, the documents of its client, the grants between it
# and a partner, and the OAuth clients of that partner.
_GRANTS_OF_INCIDENT = """
SELECT CAST(g.id AS TEXT) FROM grants g JOIN handoffs h ON h.id = g.handoff_id
WHERE (g.tenant_id = {} OR g.noc_tenant_id = {}) AND h.psa_reference = {}"""
_GRANTS_OF_CLIENT = """
SELECT CAST(g.id AS TEXT) FROM grants g
WHERE (g.tenant_id = {} OR g.noc_tenant_id = {}) AND g.client_id = {}"""
_DOCUMENTS_OF_CLIENT = """
SELECT CAST(d.id AS TEXT) FROM documents d WHERE d.tenant_id = {} AND d.client_id = {}"""
_GRANTS_BETWEEN = """
SELECT CAST(g.id AS TEXT) FROM grants g
WHERE (g.tenant_id = {} AND g.noc_tenant_id = {}) OR (g.tenant_id = {} AND g.noc_tenant_id = {})"""
_CLIENTS_OF = """SELECT CAST(c.id AS TEXT) FROM oauth_clients c WHERE c.tenant_id = {}"""


def _about(target_type: str, key: str, value: str) -> WhereRaw:
    """Events whose target is `value`, or whose context names it under `key`."""
    return _raw(
        "(target_type = {} AND target_id = {}) OR {} = {}",
        target_type,
        value,
        context_member(key),
        value,
    )


async def _where(tenant_id: uuid.UUID, query: AuditQuery) -> Any | None:
    """The query's conditions on `tenant_id`'s chain; None when nothing can match."""
    where: Any = AuditEvent.tenant_id == tenant_id
    if query.since is not None:
        where &= AuditEvent.occurred_at >= query.since.astimezone(UTC)
    if query.until is not None:
        where &= AuditEvent.occurred_at < query.until.astimezone(UTC)
    if query.actor is not None:
        where &= _raw(
            "actor_id = {} OR lower(actor_label) = lower(CAST({} AS TEXT))",
            query.actor,
            query.actor,
        )
    if query.grant_id is not None:
        where &= _about("grant", "grant_id", str(query.grant_id))
    if query.document_id is not None:
        where &= _about("document", "document_id", str(query.document_id))
    if query.psa_reference is not None:
        incident_grants = QueryString(
            _GRANTS_OF_INCIDENT, tenant_id, tenant_id, query.psa_reference
        )
        where &= _raw(
            "{} = {} OR {} IN ({})",
            context_member("psa_reference"),
            query.psa_reference,
            context_member("grant_id"),
            incident_grants,
        )
    if query.client_id is not None:
        client = str(query.client_id)
        client_grants = QueryString(_GRANTS_OF_CLIENT, tenant_id, tenant_id, query.client_id)
        client_documents = QueryString(_DOCUMENTS_OF_CLIENT, tenant_id, query.client_id)
        where &= _raw(
            "{} = {} OR (target_type = 'client' AND target_id = {}) OR {} IN ({})"
            " OR (target_type = 'document' AND target_id IN ({}))",
            context_member("client_id"),
            client,
            client,
            context_member("grant_id"),
            client_grants,
            client_documents,
        )
    if query.partner is not None:
        partner = await Tenant.select(Tenant.id).where(Tenant.slug == query.partner).first()
        # A stranger (or no tenant at all) answers like a partner without events: no error
        # tells the caller whether the slug exists.
        if partner is None or partner["id"] == tenant_id:
            return None
        other: uuid.UUID = partner["id"]
        shared_grants = QueryString(_GRANTS_BETWEEN, tenant_id, other, other, tenant_id)
        where &= _raw(
            "{} IN ({}) OR {} = {} OR {} = {}"
            " OR (actor_type = 'oauth_client' AND actor_id IN ({}))",
            context_member("grant_id"),
            shared_grants,
            context_member("msp_tenant_id"),
            str(other),
            context_member("noc_tenant_id"),
            str(other),
            QueryString(_CLIENTS_OF, other),
        )
    if query.action:
        where &= AuditEvent.action.is_in([action.value for action in query.action])
    if query.outcome is not None:
        where &= AuditEvent.outcome == query.outcome.value
    if query.severity is not None:
        where &= AuditEvent.severity == query.severity.value
    return where


async def _rows(where: Any, order: Order, after: int | None, limit: int) -> list[dict[str, Any]]:
    ascending = order is Order.ASC
    if after is not None:
        where &= (AuditEvent.seq > after) if ascending else (AuditEvent.seq < after)
    rows: list[dict[str, Any]] = (
        await AuditEvent.select()
        .where(where)
        .order_by(AuditEvent.seq, ascending=ascending)
        .limit(limit)
        .output(load_json=True)
    )
    return rows


def _view(row: dict[str, Any]) -> AuditEventView:
    return msgspec.convert(row, AuditEventView, strict=False)


async def search(
    actor: Actor,
    query: AuditQuery,
    *,
    cursor: str | None = None,
    limit: int = DEFAULT_LIMIT,
) -> AuditPage:
    """One page of the caller's chain, newest first unless `query.order` is `asc`.

    `cursor` is the `next_cursor` of the page before (keyset on the chain's sequence number:
    events appended meanwhile never shift or repeat a page).

    A search is not itself written to the chain. Each page would append an event to the very
    chain being read: an auditor paging through would flood it with records of its own reading,
    and every newest-first page would move under its feet. Searching reveals nothing beyond what
    the auditor's role already may see, and the sign-in that gave it the role is audited.
    """
    tenant_id = actor.require(Permission.AUDIT_READ)
    query = checked(query)
    if not 1 <= limit <= MAX_LIMIT:
        raise Invalid(f"limit is between 1 and {MAX_LIMIT}", code="limit")
    after = _decode_cursor(cursor) if cursor else None
    where = await _where(tenant_id, query)
    if where is None:
        return AuditPage([], None)
    rows = await _rows(where, query.order, after, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return AuditPage(
        [_view(row) for row in rows], _encode_cursor(rows[-1]["seq"]) if more else None
    )


async def iter_matching(
    tenant_id: uuid.UUID, query: AuditQuery, *, batch: int = _BATCH
) -> AsyncIterator[AuditEventView]:
    """Every event of `tenant_id`'s chain that matches, in `query.order`, `batch` at a time.

    The caller has checked that whoever asks may read this chain (see `matching_events`).
    """
    query = checked(query)
    where = await _where(tenant_id, query)
    if where is None:
        return
    after: int | None = None
    while True:
        rows = await _rows(where, query.order, after, batch)
        for row in rows:
            yield _view(row)
        if len(rows) < batch:
            return
        after = rows[-1]["seq"]


def matching_events(actor: Actor, query: AuditQuery) -> AsyncIterator[AuditEventView]:
    """`iter_matching` on the caller's chain. Permission and query are checked now, before a
    response that streams the events has sent anything."""
    tenant_id = actor.require(Permission.AUDIT_READ)
    return iter_matching(tenant_id, checked(query))


# --- CSV --------------------------------------------------------------------------------------

_CSV_CONTEXT = ("grant_id", "psa_reference", "document_id", "client_id")
CSV_COLUMNS = (
    "seq",
    "occurred_at",
    "actor_type",
    "actor_id",
    "actor_label",
    "action",
    "target_type",
    "target_id",
    "outcome",
    "severity",
    "reason",
    "request_id",
    "source_address",
    *_CSV_CONTEXT,
    "context",
    "id",
)
"""The CSV's columns: no chain fields (`prev_hash`, `hash`): a spreadsheet cannot verify them,
and the JSON API and the export carry them for those who can."""

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(cell: str) -> str:
    """A cell a spreadsheet would run as a formula, made plain text with a leading `'`."""
    return "'" + cell if cell.startswith(_FORMULA_START) else cell


def _csv_row(event: AuditEventView) -> list[str]:
    rest = {key: value for key, value in event.context.items() if key not in _CSV_CONTEXT}
    cells: list[str | None] = [
        str(event.seq),
        event.occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        event.actor_type,
        event.actor_id,
        event.actor_label,
        event.action,
        event.target_type,
        event.target_id,
        event.outcome,
        event.severity,
        event.reason,
        event.request_id,
        event.source_address,
        *(event.context.get(key) for key in _CSV_CONTEXT),
        msgspec.json.encode(rest, order="sorted").decode() if rest else "",
        str(event.id),
    ]
    return [neutralise(cell or "") for cell in cells]


async def csv_chunks(
    events: AsyncIterable[AuditEventView], *, rows_per_chunk: int = 200
) -> AsyncIterator[str]:
    """The events as CSV (RFC 4180, a header row first), a chunk of rows at a time."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    pending = 0
    async for event in events:
        writer.writerow(_csv_row(event))
        pending += 1
        if pending >= rows_per_chunk:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            pending = 0
    yield buffer.getvalue()
