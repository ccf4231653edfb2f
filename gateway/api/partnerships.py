"""`/api/v1/partnerships`: invite, accept, decline, suspend, resume, end, and the ceiling."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK

from gateway.auth import request_meta
from policies.ceiling import MAX_GRANT_HOURS_LIMIT, Ceiling
from policies.vocabulary import DocumentKind
from sharing import partnerships
from sharing.partnerships import PartnershipAction, PartnershipView
from tenants.errors import Invalid
from tenants.roles import Actor

__all__ = ["PartnershipController"]


class PartnershipCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    noc: Annotated[str, msgspec.Meta(min_length=1, max_length=63, description="the NOC's slug")]
    ceiling: Ceiling = msgspec.field(default_factory=Ceiling)


class CeilingReplace(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The whole new ceiling: every field is required, so that nothing widens by omission."""

    clients: Literal["all"] | list[uuid.UUID]
    document_kinds: Annotated[list[DocumentKind], msgspec.Meta(min_length=1)]
    max_grant_hours: Annotated[int, msgspec.Meta(ge=1, le=MAX_GRANT_HOURS_LIMIT)]
    secrets_allowed: bool


class PartnershipController(Controller):
    path = "/partnerships"
    tags = ["partnerships"]

    @get("/", operation_id="listPartnerships", summary="Partnerships of the caller's tenant")
    async def list_partnerships(self, actor: NamedDependency[Actor]) -> list[PartnershipView]:
        return await partnerships.list_partnerships(actor)

    @post("/", operation_id="invitePartner", summary="The MSP invites a NOC")
    async def invite(
        self,
        actor: NamedDependency[Actor],
        data: JSONBody[PartnershipCreate],
        request: Request[Any, Any, Any],
    ) -> PartnershipView:
        return await partnerships.invite(
            actor, noc_slug=data.noc, ceiling=data.ceiling, request=request_meta(request)
        )

    @get("/{partnership_id:uuid}", operation_id="getPartnership", summary="One partnership")
    async def get_partnership(
        self, actor: NamedDependency[Actor], partnership_id: FromPath[uuid.UUID]
    ) -> PartnershipView:
        return await partnerships.get_partnership(actor, partnership_id)

    @put(
        "/{partnership_id:uuid}/ceiling",
        operation_id="setPartnershipCeiling",
        summary="The MSP changes what may ever be shared",
    )
    async def set_ceiling(
        self,
        actor: NamedDependency[Actor],
        partnership_id: FromPath[uuid.UUID],
        data: JSONBody[CeilingReplace],
        request: Request[Any, Any, Any],
    ) -> PartnershipView:
        try:
            ceiling = msgspec.convert(msgspec.to_builtins(data), Ceiling)
        except msgspec.ValidationError as exc:
            raise Invalid(str(exc), code="ceiling") from None
        return await partnerships.set_ceiling(
            actor, partnership_id, ceiling, request=request_meta(request)
        )

    @post(
        "/{partnership_id:uuid}/{action:str}",
        operation_id="changePartnershipState",
        summary="accept, decline, suspend, resume or end",
        status_code=HTTP_200_OK,
    )
    async def change_state(
        self,
        actor: NamedDependency[Actor],
        partnership_id: FromPath[uuid.UUID],
        action: FromPath[PartnershipAction],
        request: Request[Any, Any, Any],
    ) -> PartnershipView:
        return await partnerships.act(actor, partnership_id, action, request=request_meta(request))
