"""`/api/v1/audit/export`: the caller's tenant's audit chain as a verifiable JSON Lines file."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import FromQuery
from litestar.response import Stream

from gateway.auth import request_meta
from sharing import audit_export
from sharing.clock import Clock
from tenants.errors import Invalid
from tenants.keyring import KeyRing
from tenants.roles import Actor

__all__ = ["AuditExportController"]

_PARAMETERS = frozenset({"since", "until"})


class AuditExportController(Controller):
    path = "/audit/export"
    tags = ["audit"]

    @get(
        "/",
        operation_id="exportAuditChain",
        summary="The tenant's audit events with their signed checkpoints, verifiable offline",
        description=(
            "JSON Lines in the `shiftgate-audit-export/1` format (docs/audit-format.md): a header, "
            "the events of `since <= occurred_at < until` widened to the nearest signed "
            "checkpoints, the checkpoints, the tenant's public keys and an end record. Check it "
            "with `shiftgate audit verify-export FILE`. The export itself is audited."
        ),
        media_type="application/x-ndjson",
    )
    async def export(
        self,
        actor: NamedDependency[Actor],
        keyring: NamedDependency[KeyRing],
        clock: NamedDependency[Clock],
        request: Request[Any, Any, Any],
        since: FromQuery[datetime | None] = None,
        until: FromQuery[datetime | None] = None,
    ) -> Stream:
        # A misspelt `since` must not silently export everything.
        unknown = sorted(set(request.query_params) - _PARAMETERS)
        if unknown:
            raise Invalid(
                f"unknown query parameter {unknown[0]!r}; the export takes `since` and `until`",
                code="unknown_parameter",
            )
        # Planned and audited before the first byte goes out: a failure here is a problem
        # response, not a truncated file.
        plan = await audit_export.start_export(
            actor,
            keyring,
            since=since,
            until=until,
            now=await clock.now(),
            request=request_meta(request),
        )
        name = f"shiftgate-audit-{plan.tenant_id}-{plan.from_seq}-{plan.to_seq}.jsonl"
        return Stream(
            audit_export.export_chunks(plan),
            media_type="application/x-ndjson",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
