"""`/api/v1/me`, `/api/v1/tenants` and tenant API tokens."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK

from gateway.auth import request_meta
from sharing import accounts
from tenants import service
from tenants.errors import Forbidden
from tenants.roles import Actor, ActorKind, Permission, Role, TenantKind, TokenScope
from tenants.service import ApiTokenInfo, TenantInfo

__all__ = ["AccountController", "TokenController"]


class MembershipRead(msgspec.Struct, frozen=True):
    tenant: TenantInfo
    role: Role
    current: bool


class MeRead(msgspec.Struct, frozen=True):
    kind: ActorKind
    id: uuid.UUID | None
    label: str
    tenant_id: uuid.UUID | None
    tenant_kind: TenantKind | None
    role: Role | None
    scopes: list[TokenScope]
    permissions: list[Permission]


class TokenCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    scopes: Annotated[list[TokenScope], msgspec.Meta(min_length=1)]
    expires_in_days: Annotated[int, msgspec.Meta(ge=1, le=366)] = 90


class TokenIssued(msgspec.Struct, frozen=True):
    """`token` is shown here once; Shiftgate keeps only its hash."""

    token: str
    info: ApiTokenInfo


class AccountController(Controller):
    path = "/"
    tags = ["account"]

    @get("/me", operation_id="getMe", summary="The caller and its permissions")
    async def me(self, actor: NamedDependency[Actor]) -> MeRead:
        return MeRead(
            kind=actor.kind,
            id=actor.id,
            label=actor.label,
            tenant_id=actor.tenant_id,
            tenant_kind=actor.tenant_kind,
            role=actor.role,
            scopes=sorted(actor.scopes),
            permissions=sorted(actor.permissions),
        )

    @get("/tenants", operation_id="listMyTenants", summary="The tenants the caller belongs to")
    async def my_tenants(self, actor: NamedDependency[Actor]) -> list[MembershipRead]:
        if actor.kind is ActorKind.USER and actor.id is not None:
            return [
                MembershipRead(m.tenant, m.role, m.tenant.id == actor.tenant_id)
                for m in await service.memberships_of(actor.id)
            ]
        if actor.tenant_id is None:
            return []
        tenant = await service.get_tenant(actor.tenant_id)
        raise Forbidden(
            f"an API token acts for its own tenant only ({tenant.slug})", code="token_tenant"
        )


class TokenController(Controller):
    path = "/tokens"
    tags = ["api tokens"]

    @get("/", operation_id="listApiTokens", summary="The tenant's API tokens (never the secret)")
    async def list_tokens(self, actor: NamedDependency[Actor]) -> list[ApiTokenInfo]:
        return await service.list_api_tokens(actor.require(Permission.TOKEN_MANAGE))

    @post("/", operation_id="createApiToken", summary="Issue a token; the secret is shown once")
    async def create_token(
        self,
        actor: NamedDependency[Actor],
        data: JSONBody[TokenCreate],
        request: Request[Any, Any, Any],
    ) -> TokenIssued:
        issued = await accounts.issue_api_token(
            actor,
            name=data.name,
            scopes=data.scopes,
            expires_in_days=data.expires_in_days,
            request=request_meta(request),
        )
        return TokenIssued(token=issued.secret, info=issued.info)

    @delete(
        "/{token_id:uuid}",
        operation_id="revokeApiToken",
        summary="Revoke a token at once",
        status_code=HTTP_200_OK,
    )
    async def revoke_token(
        self,
        actor: NamedDependency[Actor],
        token_id: FromPath[uuid.UUID],
        request: Request[Any, Any, Any],
    ) -> ApiTokenInfo:
        return await accounts.revoke_api_token(actor, token_id, request_meta(request))
