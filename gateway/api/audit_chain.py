"""The audit chain's integrity and lifetime: the public keys of each tenant's checkpoint signer
(published for anyone; retired keys stay listed), the tenant's checkpoints, its retention."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from gateway.auth import request_meta
from sharing import audit_storage, checkpoints
from tenants import service
from tenants.roles import Actor, Permission

__all__ = ["AuditRetentionController", "audit_checkpoints", "audit_keys"]


class AuditKeys(msgspec.Struct, frozen=True):
    tenant_id: uuid.UUID
    keys: list[checkpoints.PublicKeyView]


@get(
    "/.well-known/shiftgate-audit-keys/{tenant_id:uuid}",
    operation_id="getAuditKeys",
    tags=["audit"],
    summary="A tenant's audit signing keys (public)",
    security=[],
)
async def audit_keys(tenant_id: FromPath[uuid.UUID]) -> AuditKeys:
    keys = await checkpoints.public_keys(tenant_id)
    if not keys:
        await service.get_tenant(tenant_id)  # NotFound for a tenant that does not exist
    return AuditKeys(tenant_id=tenant_id, keys=keys)


@get(
    "/audit/checkpoints",
    operation_id="listAuditCheckpoints",
    tags=["audit"],
    summary="The tenant's latest signed checkpoints, newest first",
)
async def audit_checkpoints(
    actor: NamedDependency[Actor], limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50
) -> list[checkpoints.CheckpointView]:
    return await checkpoints.recent_checkpoints(actor.require(Permission.AUDIT_READ), limit)


class Retention(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Months of audit events kept in the database; null keeps them forever."""

    months: Annotated[int, msgspec.Meta(ge=1, le=audit_storage.MAX_RETENTION_MONTHS)] | None


class AuditRetentionController(Controller):
    path = "/audit/retention"
    tags = ["audit"]

    @get(operation_id="getAuditRetention", summary="How long the tenant keeps audit events")
    async def show(self, actor: NamedDependency[Actor]) -> Retention:
        return Retention(months=await audit_storage.get_retention(actor))

    @put(operation_id="setAuditRetention", summary="Set how long audit events are kept")
    async def change(
        self,
        actor: NamedDependency[Actor],
        data: JSONBody[Retention],
        request: Request[Any, Any, Any],
    ) -> Retention:
        months = await audit_storage.set_retention(
            actor, data.months, request=request_meta(request)
        )
        return Retention(months=months)
