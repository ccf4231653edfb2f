"""`/api/v1/oauth-clients`: a NOC admin registers, rotates, disables its partner clients."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK

from gateway.auth import request_meta
from sharing import partner_clients
from tenants.oauth_clients import AuthMethod, OAuthClientView, PartnerScope
from tenants.roles import Actor

__all__ = ["OAuthClientController"]


class OAuthClientCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    auth_method: AuthMethod
    scopes: Annotated[list[PartnerScope], msgspec.Meta(min_length=1)] = msgspec.field(
        default_factory=lambda: [PartnerScope.READ]
    )
    networks: Annotated[list[str], msgspec.Meta(max_length=20)] = msgspec.field(
        default_factory=list
    )
    jwks: dict[str, Any] | None = None


class CredentialRotation(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    overlap_hours: Annotated[int, msgspec.Meta(ge=0, le=partner_clients.MAX_OVERLAP_HOURS)] = 24
    jwks: dict[str, Any] | None = None


class OAuthClientIssued(msgspec.Struct, frozen=True):
    """`client_secret` is shown here once (client_secret_basic only); only its hash is kept."""

    client: OAuthClientView
    client_secret: str | None


class OAuthClientController(Controller):
    path = "/oauth-clients"
    tags = ["oauth clients"]

    @get("/", operation_id="listOAuthClients", summary="The NOC's partner clients")
    async def list_clients(self, actor: NamedDependency[Actor]) -> list[OAuthClientView]:
        return await partner_clients.list_clients(actor)

    @post("/", operation_id="registerOAuthClient", summary="Register a partner client")
    async def register(
        self,
        actor: NamedDependency[Actor],
        data: JSONBody[OAuthClientCreate],
        request: Request[Any, Any, Any],
    ) -> OAuthClientIssued:
        view, secret = await partner_clients.register_client(
            actor,
            name=data.name,
            auth_method=data.auth_method,
            scopes=data.scopes,
            networks=data.networks,
            jwks=data.jwks,
            request=request_meta(request),
        )
        return OAuthClientIssued(client=view, client_secret=secret)

    @post(
        "/{client_pk:uuid}/rotate",
        operation_id="rotateOAuthClientCredentials",
        summary="New secret or keys; the old ones work for the overlap",
        status_code=HTTP_200_OK,
    )
    async def rotate(
        self,
        actor: NamedDependency[Actor],
        client_pk: FromPath[uuid.UUID],
        data: JSONBody[CredentialRotation],
        request: Request[Any, Any, Any],
    ) -> OAuthClientIssued:
        view, secret = await partner_clients.rotate_credentials(
            actor,
            client_pk,
            jwks=data.jwks,
            overlap_hours=data.overlap_hours,
            request=request_meta(request),
        )
        return OAuthClientIssued(client=view, client_secret=secret)

    @post(
        "/{client_pk:uuid}/disable",
        operation_id="disableOAuthClient",
        summary="Disable a client: no new tokens, live tokens refused",
        status_code=HTTP_200_OK,
    )
    async def disable(
        self,
        actor: NamedDependency[Actor],
        client_pk: FromPath[uuid.UUID],
        request: Request[Any, Any, Any],
    ) -> OAuthClientView:
        return await partner_clients.set_client_disabled(
            actor, client_pk, True, request=request_meta(request)
        )

    @post(
        "/{client_pk:uuid}/enable",
        operation_id="enableOAuthClient",
        summary="Enable a disabled client",
        status_code=HTTP_200_OK,
    )
    async def enable(
        self,
        actor: NamedDependency[Actor],
        client_pk: FromPath[uuid.UUID],
        request: Request[Any, Any, Any],
    ) -> OAuthClientView:
        return await partner_clients.set_client_disabled(
            actor, client_pk, False, request=request_meta(request)
        )
