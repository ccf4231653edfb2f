"""`/api/v1/partner`: the API partner NOCs call with OAuth access tokens (and nothing else).

Grant-bound endpoints need a token requested with scope `grant:<id>` (see the README).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, HeaderParameter, JSONBody

from gateway.auth import request_meta
from gateway.oauth.resource import PartnerCaller
from policies.decision import MAX_BREAK_GLASS_REASON
from sharing import partner_access
from sharing.audit import AuditAppender
from sharing.clock import Clock
from sharing.handoffs import GrantView
from sharing.partner_access import Bundle, Partner, PartnerDocument, ReadCounter
from tenants import service
from tenants.errors import Forbidden
from tenants.keyring import KeyRing
from tenants.oauth_clients import PartnerScope

__all__ = ["PartnerController"]

_READ = PartnerScope.READ


class PartnerMe(msgspec.Struct, frozen=True):
    tenant_id: uuid.UUID
    tenant_slug: str
    tenant_name: str
    client_id: str
    scopes: list[str]
    grant_id: uuid.UUID | None


class NoteCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    body: Annotated[str, msgspec.Meta(min_length=1, max_length=partner_access.MAX_NOTE_CHARS)]


class ExtensionCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_BREAK_GLASS_REASON)]
    # an instant without an offset means nothing across zones (and cannot be compared)
    requested_ends_at: Annotated[datetime, msgspec.Meta(tz=True)] | None = None


class Created(msgspec.Struct, frozen=True):
    id: uuid.UUID


def _partner(caller: PartnerCaller, *needed: PartnerScope) -> Partner:
    """The caller as the core sees it, once its token carries every scope the call needs."""
    missing = [scope.value for scope in needed if scope.value not in caller.scopes]
    if missing:
        raise Forbidden(
            f"the token lacks the scope {', '.join(missing)}: request it at /oauth/token",
            code="insufficient_scope",
        )
    return Partner(
        tenant_id=caller.tenant_id,
        client_pk=caller.client_pk,
        client_id=caller.client_id,
        bound_grant_id=caller.grant_id,
        scopes=caller.scopes,
    )


class PartnerController(Controller):
    path = "/"
    tags = ["partner"]
    security = [{"partnerToken": []}]

    @get("/me", operation_id="getPartnerMe", summary="The NOC tenant and client of the token")
    async def me(self, partner: NamedDependency[PartnerCaller]) -> PartnerMe:
        tenant = await service.get_tenant(partner.tenant_id)
        return PartnerMe(
            tenant_id=tenant.id,
            tenant_slug=tenant.slug,
            tenant_name=tenant.name,
            client_id=partner.client_id,
            scopes=sorted(partner.scopes),
            grant_id=partner.grant_id,
        )

    @get("/grants", operation_id="listPartnerGrants", summary="The NOC's running grants")
    async def grants(
        self, partner: NamedDependency[PartnerCaller], clock: NamedDependency[Clock]
    ) -> list[GrantView]:
        return await partner_access.list_partner_grants(_partner(partner, _READ), clock)

    @get(
        "/grants/{grant_id:uuid}/bundle",
        operation_id="getGrantBundle",
        summary="The incident, the client and the documents in scope (no bodies)",
    )
    async def bundle(
        self,
        partner: NamedDependency[PartnerCaller],
        keyring: NamedDependency[KeyRing],
        clock: NamedDependency[Clock],
        grant_id: FromPath[uuid.UUID],
        request: Request[Any, Any, Any],
    ) -> Bundle:
        return await partner_access.partner_bundle(
            _partner(partner, _READ), keyring, clock, grant_id, request=request_meta(request)
        )

    @get(
        "/grants/{grant_id:uuid}/documents/{document_id:uuid}",
        operation_id="getGrantDocument",
        summary="A document in scope, decrypted; secrets need X-Break-Glass-Reason",
    )
    async def document(
        self,
        partner: NamedDependency[PartnerCaller],
        keyring: NamedDependency[KeyRing],
        clock: NamedDependency[Clock],
        read_counter: NamedDependency[ReadCounter],
        audit_appender: NamedDependency[AuditAppender],
        grant_id: FromPath[uuid.UUID],
        document_id: FromPath[uuid.UUID],
        request: Request[Any, Any, Any],
        break_glass_reason: Annotated[
            str | None, HeaderParameter(name="X-Break-Glass-Reason", required=False)
        ] = None,
    ) -> PartnerDocument:
        # the scopes are checked inside, so that a refused read is audited like any other
        return await partner_access.partner_read(
            _partner(partner),
            keyring,
            clock,
            read_counter,
            grant_id,
            document_id,
            break_glass_reason=break_glass_reason,
            request=request_meta(request),
            appender=audit_appender,
        )

    @post(
        "/grants/{grant_id:uuid}/notes",
        operation_id="postHandbackNote",
        summary="Post hand-back notes (Markdown) for the MSP",
    )
    async def note(
        self,
        partner: NamedDependency[PartnerCaller],
        keyring: NamedDependency[KeyRing],
        clock: NamedDependency[Clock],
        grant_id: FromPath[uuid.UUID],
        data: JSONBody[NoteCreate],
        request: Request[Any, Any, Any],
    ) -> Created:
        note_id = await partner_access.partner_note(
            _partner(partner, PartnerScope.NOTES),
            keyring,
            clock,
            grant_id,
            data.body,
            request=request_meta(request),
        )
        return Created(note_id)

    @post(
        "/grants/{grant_id:uuid}/extension-requests",
        operation_id="requestExtension",
        summary="Ask the MSP for more time, with a reason",
    )
    async def extension(
        self,
        partner: NamedDependency[PartnerCaller],
        clock: NamedDependency[Clock],
        grant_id: FromPath[uuid.UUID],
        data: JSONBody[ExtensionCreate],
        request: Request[Any, Any, Any],
    ) -> Created:
        extension_id = await partner_access.partner_extension(
            _partner(partner, PartnerScope.NOTES),
            clock,
            grant_id,
            data.reason,
            data.requested_ends_at,
            request=request_meta(request),
        )
        return Created(extension_id)
