"""`/api/v1/webhooks`: a tenant's webhook endpoints, their signing secrets and deliveries."""

from __future__ import annotations

import enum
import uuid
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_204_NO_CONTENT

from gateway.auth import request_meta
from gateway.settings import Settings
from sharing import webhooks
from sharing.clock import Clock
from sharing.webhooks import DeliveryView, EndpointStatus, WebhookIssued, WebhookView
from tenants.keyring import KeyRing
from tenants.roles import Actor

__all__ = ["WebhookController"]

# Lengths and names are checked by the service, which answers 422 with the reason (and, for
# events, the valid names); these bounds only keep absurd bodies out.
_Url = Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]
_Events = Annotated[
    list[Annotated[str, msgspec.Meta(max_length=100)]], msgspec.Meta(max_length=100)
]
_Description = Annotated[str, msgspec.Meta(max_length=1000)]


class SettableStatus(enum.StrEnum):
    """`failing` is the deliveries' verdict, not something to set."""

    ACTIVE = "active"
    DISABLED = "disabled"


class WebhookCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    url: _Url
    events: _Events
    description: _Description = ""


class WebhookUpdate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Only what is given changes. `status: active` also clears a failing streak."""

    url: _Url | msgspec.UnsetType = msgspec.UNSET
    events: _Events | msgspec.UnsetType = msgspec.UNSET
    description: _Description | msgspec.UnsetType = msgspec.UNSET
    status: SettableStatus | msgspec.UnsetType = msgspec.UNSET


def _allow_private(request: Request[Any, Any, Any]) -> bool:
    settings: Settings = request.app.state.settings
    return settings.webhook_allow_private


def _given(value: Any) -> Any:
    return None if value is msgspec.UNSET else value


class WebhookController(Controller):
    path = "/webhooks"
    tags = ["webhooks"]

    @post("/", operation_id="createWebhook", summary="Register a webhook endpoint")
    async def create(
        self,
        actor: NamedDependency[Actor],
        keyring: NamedDependency[KeyRing],
        data: JSONBody[WebhookCreate],
        request: Request[Any, Any, Any],
    ) -> WebhookIssued:
        """The answer holds the signing secret: it is shown this once."""
        return await webhooks.create_endpoint(
            actor,
            keyring,
            url=data.url,
            events=data.events,
            description=data.description,
            allow_private=_allow_private(request),
            request=request_meta(request),
        )

    @get("/", operation_id="listWebhooks", summary="The tenant's webhook endpoints")
    async def list_endpoints(self, actor: NamedDependency[Actor]) -> list[WebhookView]:
        return await webhooks.list_endpoints(actor)

    @get("/{endpoint_id:uuid}", operation_id="getWebhook", summary="One webhook endpoint")
    async def get_endpoint(
        self, actor: NamedDependency[Actor], endpoint_id: FromPath[uuid.UUID]
    ) -> WebhookView:
        return await webhooks.get_endpoint(actor, endpoint_id)

    @patch(
        "/{endpoint_id:uuid}",
        operation_id="updateWebhook",
        summary="Change a webhook endpoint: URL, events, description, enabled or disabled",
    )
    async def update_endpoint(
        self,
        actor: NamedDependency[Actor],
        endpoint_id: FromPath[uuid.UUID],
        data: JSONBody[WebhookUpdate],
        request: Request[Any, Any, Any],
    ) -> WebhookView:
        status = _given(data.status)
        return await webhooks.update_endpoint(
            actor,
            endpoint_id,
            url=_given(data.url),
            events=_given(data.events),
            description=_given(data.description),
            status=None if status is None else EndpointStatus(status.value),
            allow_private=_allow_private(request),
            request=request_meta(request),
        )

    @delete(
        "/{endpoint_id:uuid}",
        operation_id="deleteWebhook",
        summary="Delete a webhook endpoint with its delivery history",
        status_code=HTTP_204_NO_CONTENT,
    )
    async def delete_endpoint(
        self,
        actor: NamedDependency[Actor],
        endpoint_id: FromPath[uuid.UUID],
        request: Request[Any, Any, Any],
    ) -> None:
        await webhooks.delete_endpoint(actor, endpoint_id, request=request_meta(request))

    @post(
        "/{endpoint_id:uuid}/rotate-secret",
        operation_id="rotateWebhookSecret",
        summary="A new signing secret, shown once; the old one stops at once",
        status_code=HTTP_200_OK,
    )
    async def rotate_secret(
        self,
        actor: NamedDependency[Actor],
        keyring: NamedDependency[KeyRing],
        endpoint_id: FromPath[uuid.UUID],
        request: Request[Any, Any, Any],
    ) -> WebhookIssued:
        return await webhooks.rotate_secret(
            actor, keyring, endpoint_id, request=request_meta(request)
        )

    @get(
        "/{endpoint_id:uuid}/deliveries",
        operation_id="listWebhookDeliveries",
        summary="The endpoint's recent deliveries, newest first, with their attempts",
    )
    async def list_deliveries(
        self,
        actor: NamedDependency[Actor],
        endpoint_id: FromPath[uuid.UUID],
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
    ) -> list[DeliveryView]:
        return await webhooks.list_deliveries(actor, endpoint_id, limit=limit)

    @post(
        "/{endpoint_id:uuid}/deliveries/{delivery_id:uuid}/resend",
        operation_id="resendWebhookDelivery",
        summary="Post a delivery again (delivered or not) on the worker's next run",
        status_code=HTTP_200_OK,
    )
    async def resend(
        self,
        actor: NamedDependency[Actor],
        clock: NamedDependency[Clock],
        endpoint_id: FromPath[uuid.UUID],
        delivery_id: FromPath[uuid.UUID],
        request: Request[Any, Any, Any],
    ) -> DeliveryView:
        return await webhooks.resend(
            actor, clock, delivery_id, endpoint_id=endpoint_id, request=request_meta(request)
        )
