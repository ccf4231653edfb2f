"""MSP side of incident handoffs: schedule, rules, handoffs, grants, extensions, rotation list."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.status_codes import HTTP_200_OK

from gateway.auth import request_meta
from policies.decision import GrantScope, MspRules
from policies.schedule import BusinessHours
from sharing import handoffs, rotation, schedules
from sharing.clock import Clock
from sharing.handoffs import ExtensionView, GrantView, HandoffView, Severity4
from sharing.rotation import RotationEntry
from sharing.schedules import ScheduleView
from tenants.keyring import KeyRing
from tenants.roles import Actor

__all__ = ["HandoffController", "PolicyController"]

# An instant without an offset means nothing across zones (and cannot be compared): refuse it.
_Instant = Annotated[datetime, msgspec.Meta(tz=True)]


class ScheduleUpdate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    hours: BusinessHours
    handback_buffer_minutes: Annotated[int, msgspec.Meta(ge=0, le=240)] = 0


class HandoffCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`ends_at` defaults to the next start of business hours (plus the hand-back buffer)."""

    partner: Annotated[str, msgspec.Meta(min_length=1, max_length=63, description="NOC slug")]
    client_id: uuid.UUID
    psa_reference: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    summary: Annotated[str, msgspec.Meta(min_length=1, max_length=handoffs.MAX_SUMMARY_CHARS)]
    severity: Severity4
    scope: GrantScope | None = None
    starts_at: _Instant | None = None
    ends_at: _Instant | None = None


class GrantRevoke(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=handoffs.MAX_REASON_CHARS)]


class ExtensionDecision(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    new_ends_at: _Instant | None = None


class PolicyController(Controller):
    path = "/"
    tags = ["schedule and rules"]

    @get("/schedule", operation_id="getSchedule", summary="The MSP's business hours")
    async def get_schedule(self, actor: NamedDependency[Actor]) -> ScheduleView:
        return await schedules.get_schedule(actor)

    @put("/schedule", operation_id="setSchedule", summary="Set the MSP's business hours")
    async def set_schedule(
        self,
        actor: NamedDependency[Actor],
        data: JSONBody[ScheduleUpdate],
        request: Request[Any, Any, Any],
    ) -> ScheduleView:
        return await schedules.set_schedule(
            actor,
            data.hours,
            handback_buffer_minutes=data.handback_buffer_minutes,
            request=request_meta(request),
        )

    @get("/rules", operation_id="getRules", summary="The MSP's sharing rules")
    async def get_rules(self, actor: NamedDependency[Actor]) -> MspRules:
        return await schedules.get_rules(actor)

    @put("/rules", operation_id="setRules", summary="Set the MSP's sharing rules")
    async def set_rules(
        self,
        actor: NamedDependency[Actor],
        data: JSONBody[MspRules],
        request: Request[Any, Any, Any],
    ) -> MspRules:
        return await schedules.set_rules(actor, data, request=request_meta(request))

    @get("/rotation-list", operation_id="listRotation", summary="Credentials to rotate")
    async def rotation_list(
        self, actor: NamedDependency[Actor], include_rotated: FromQuery[bool] = False
    ) -> list[RotationEntry]:
        return await rotation.list_rotation(actor, include_rotated=include_rotated)

    @post(
        "/rotation-list/{item_id:uuid}/rotated",
        operation_id="markRotated",
        summary="Mark a revealed credential rotated",
        status_code=HTTP_200_OK,
    )
    async def mark_rotated(
        self,
        actor: NamedDependency[Actor],
        item_id: FromPath[uuid.UUID],
        request: Request[Any, Any, Any],
    ) -> RotationEntry:
        return await rotation.mark_rotated(actor, item_id, request=request_meta(request))


class HandoffController(Controller):
    path = "/"
    tags = ["handoffs"]

    @post("/handoffs", operation_id="createHandoff", summary="Hand an incident to a partner")
    async def create_handoff(
        self,
        actor: NamedDependency[Actor],
        keyring: NamedDependency[KeyRing],
        clock: NamedDependency[Clock],
        data: JSONBody[HandoffCreate],
        request: Request[Any, Any, Any],
    ) -> HandoffView:
        return await handoffs.create_handoff(
            actor,
            keyring,
            clock,
            partner=data.partner,
            client_id=data.client_id,
            psa_reference=data.psa_reference,
            summary=data.summary,
            severity=data.severity,
            scope=data.scope,
            starts_at=data.starts_at,
            ends_at=data.ends_at,
            request=request_meta(request),
        )

    @get(
        "/handoffs/{handoff_id:uuid}",
        operation_id="getHandoff",
        summary="An incident with its grant, notes and extension requests",
    )
    async def get_handoff(
        self,
        actor: NamedDependency[Actor],
        keyring: NamedDependency[KeyRing],
        clock: NamedDependency[Clock],
        handoff_id: FromPath[uuid.UUID],
    ) -> HandoffView:
        return await handoffs.get_handoff(actor, keyring, clock, handoff_id)

    @get("/grants", operation_id="listGrants", summary="The MSP's grants, newest first")
    async def list_grants(
        self,
        actor: NamedDependency[Actor],
        clock: NamedDependency[Clock],
        live_only: FromQuery[bool] = False,
    ) -> list[GrantView]:
        return await handoffs.list_grants(actor, clock, live_only=live_only)

    @post(
        "/grants/{grant_id:uuid}/revoke",
        operation_id="revokeGrant",
        summary="End a grant now (a reason is required); its tokens stop working",
        status_code=HTTP_200_OK,
    )
    async def revoke_grant(
        self,
        actor: NamedDependency[Actor],
        clock: NamedDependency[Clock],
        grant_id: FromPath[uuid.UUID],
        data: JSONBody[GrantRevoke],
        request: Request[Any, Any, Any],
    ) -> GrantView:
        return await handoffs.revoke_grant(
            actor, clock, grant_id, data.reason, request=request_meta(request)
        )

    @post(
        "/grants/{grant_id:uuid}/complete",
        operation_id="completeGrant",
        summary="The incident is closed: end the grant now",
        status_code=HTTP_200_OK,
    )
    async def complete_grant(
        self,
        actor: NamedDependency[Actor],
        clock: NamedDependency[Clock],
        grant_id: FromPath[uuid.UUID],
        request: Request[Any, Any, Any],
    ) -> GrantView:
        return await handoffs.complete_grant(actor, clock, grant_id, request=request_meta(request))

    @post(
        "/extension-requests/{extension_id:uuid}/approve",
        operation_id="approveExtension",
        summary="Approve a partner's extension request",
        status_code=HTTP_200_OK,
    )
    async def approve(
        self,
        actor: NamedDependency[Actor],
        clock: NamedDependency[Clock],
        extension_id: FromPath[uuid.UUID],
        data: JSONBody[ExtensionDecision],
        request: Request[Any, Any, Any],
    ) -> ExtensionView:
        return await handoffs.decide_extension(
            actor,
            clock,
            extension_id,
            approve=True,
            new_ends_at=data.new_ends_at,
            request=request_meta(request),
        )

    @post(
        "/extension-requests/{extension_id:uuid}/decline",
        operation_id="declineExtension",
        summary="Decline a partner's extension request",
        status_code=HTTP_200_OK,
    )
    async def decline(
        self,
        actor: NamedDependency[Actor],
        clock: NamedDependency[Clock],
        extension_id: FromPath[uuid.UUID],
        request: Request[Any, Any, Any],
    ) -> ExtensionView:
        return await handoffs.decide_extension(
            actor, clock, extension_id, approve=False, request=request_meta(request)
        )
