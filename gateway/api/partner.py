"""`/api/v1/partner`: the API partner NOCs call with OAuth access tokens (and nothing else)."""

from __future__ import annotations

import uuid

import msgspec
from litestar import Controller, get

from gateway.oauth.resource import PartnerCaller
from tenants import service

__all__ = ["PartnerController"]


class PartnerMe(msgspec.Struct, frozen=True):
    tenant_id: uuid.UUID
    tenant_slug: str
    tenant_name: str
    client_id: str
    scopes: list[str]


class PartnerController(Controller):
    path = "/"
    tags = ["partner"]
    security = [{"partnerToken": []}]

    @get("/me", operation_id="getPartnerMe", summary="The NOC tenant and client of the token")
    async def me(self, partner: PartnerCaller) -> PartnerMe:
        tenant = await service.get_tenant(partner.tenant_id)
        return PartnerMe(
            tenant_id=tenant.id,
            tenant_slug=tenant.slug,
            tenant_name=tenant.name,
            client_id=partner.client_id,
            scopes=sorted(partner.scopes),
        )
