"""`/api/v1/audit/events` (JSON pages and CSV) and the incident report of a handoff.

Auditors read their own tenant's chain here. Reading is not itself written to the chain: every
page would append to the very log being read (see `sharing.audit_search.search`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from litestar import Controller, Request, get
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Stream, Template

from sharing import audit_search, incident_report
from sharing.audit import AuditAction, Outcome, Severity
from sharing.audit_search import AuditPage, AuditQuery, Order
from sharing.clock import Clock
from tenants.errors import Invalid
from tenants.keyring import KeyRing
from tenants.roles import Actor

__all__ = ["AuditController"]

_FILTERS = frozenset(AuditQuery.__struct_fields__)
_PAGING = frozenset({"cursor", "limit"})


async def _audit_query(
    request: Request[Any, Any, Any],
    since: FromQuery[datetime | None] = None,
    until: FromQuery[datetime | None] = None,
    actor_filter: Annotated[
        str | None,
        QueryParameter(
            name="actor", description="an actor id, or an email or OAuth client id (any case)"
        ),
    ] = None,
    partner: Annotated[str | None, QueryParameter(description="the other tenant's slug")] = None,
    client_id: FromQuery[uuid.UUID | None] = None,
    psa_reference: Annotated[
        str | None, QueryParameter(description="the incident's reference in the PSA")
    ] = None,
    grant_id: FromQuery[uuid.UUID | None] = None,
    document_id: FromQuery[uuid.UUID | None] = None,
    action: Annotated[
        list[AuditAction] | None, QueryParameter(description="one or several; repeat it")
    ] = None,
    outcome: FromQuery[Outcome | None] = None,
    severity: FromQuery[Severity | None] = None,
    order: Annotated[Order, QueryParameter(description="`desc`: newest first")] = Order.DESC,
) -> AuditQuery:
    """The filters of the query string. A misspelt filter is refused rather than ignored: an
    auditor must never read "no events" where the filter simply did not apply."""
    unknown = sorted(set(request.query_params) - _FILTERS - _PAGING)
    if unknown:
        raise Invalid(
            f"unknown query parameter {unknown[0]!r}; the filters are "
            + ", ".join(sorted(_FILTERS)),
            code="unknown_parameter",
        )
    return audit_search.checked(
        AuditQuery(
            since=since,
            until=until,
            actor=actor_filter,
            partner=partner,
            client_id=client_id,
            psa_reference=psa_reference,
            grant_id=grant_id,
            document_id=document_id,
            action=tuple(action or ()),
            outcome=outcome,
            severity=severity,
            order=order,
        )
    )


def _moment(zone: ZoneInfo) -> Callable[[datetime | None], str]:
    """A formatter for the report: the MSP's local time, then UTC."""

    def when(moment: datetime | None) -> str:
        if moment is None:
            return ""
        local = moment.astimezone(zone)
        utc = moment.astimezone(UTC)
        return f"{local:%Y-%m-%d %H:%M:%S %Z} ({utc:%Y-%m-%d %H:%M:%S} UTC)"

    return when


class AuditController(Controller):
    path = "/"
    tags = ["audit"]
    dependencies = {"filters": Provide(_audit_query)}

    @get(
        "/audit/events",
        operation_id="searchAuditEvents",
        summary="Search the tenant's audit chain, newest first (every field, hashes included)",
    )
    async def search_events(
        self,
        actor: NamedDependency[Actor],
        filters: NamedDependency[AuditQuery],
        cursor: Annotated[
            str | None, QueryParameter(description="`next_cursor` of the page before")
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=audit_search.MAX_LIMIT)] = (
            audit_search.DEFAULT_LIMIT
        ),
    ) -> AuditPage:
        return await audit_search.search(actor, filters, cursor=cursor, limit=limit)

    @get(
        "/audit/events.csv",
        operation_id="exportAuditEventsCsv",
        summary="The matching events as CSV, for spreadsheets (no chain fields)",
        media_type="text/csv",
    )
    async def events_csv(
        self,
        actor: NamedDependency[Actor],
        filters: NamedDependency[AuditQuery],
        request: Request[Any, Any, Any],
    ) -> Stream:
        if _PAGING & set(request.query_params):
            raise Invalid(
                "the CSV holds every matching event: it takes no cursor or limit",
                code="unknown_parameter",
            )
        events = audit_search.matching_events(actor, filters)  # refuses before anything is sent
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        return Stream(
            audit_search.csv_chunks(events),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="audit-events-{stamp}.csv"',
            },
        )

    @get(
        "/handoffs/{handoff_id:uuid}/report",
        operation_id="getIncidentReport",
        summary="A printable report of one handoff: grant, accesses, notes, chain status",
        media_type="text/html",
    )
    async def report(
        self,
        actor: NamedDependency[Actor],
        keyring: NamedDependency[KeyRing],
        clock: NamedDependency[Clock],
        handoff_id: FromPath[uuid.UUID],
    ) -> Template:
        report = await incident_report.incident_report(actor, keyring, clock, handoff_id)
        return Template(
            "incident_report.html",
            context={"report": report, "when": _moment(ZoneInfo(report.time_zone))},
        )
