"""`/api/v1/clients` and `/api/v1/documents`: the MSP's client documentation, with revisions."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK

from gateway.auth import request_meta
from policies.vocabulary import DocumentKind, Sensitivity
from sharing import clients, documents
from sharing.clients import ClientView
from sharing.documents import (
    Content,
    CredentialFields,
    DocumentFilters,
    DocumentPage,
    DocumentRead,
    DocumentSummary,
    RevisionSummary,
)
from tenants.keyring import KeyRing
from tenants.roles import Actor

__all__ = ["ClientController", "DocumentController"]

_Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
_Code = Annotated[str, msgspec.Meta(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]
_Notes = Annotated[str, msgspec.Meta(max_length=10_000)]
_Psa = Annotated[str, msgspec.Meta(max_length=100)]
_Title = Annotated[str, msgspec.Meta(min_length=1, max_length=documents.MAX_TITLE_CHARS)]
_Tags = Annotated[list[str], msgspec.Meta(max_length=documents.MAX_TAGS)]


class ClientCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: _Name
    short_code: _Code
    notes: _Notes = ""
    psa_reference: _Psa | None = None


class ClientUpdate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: _Name | msgspec.UnsetType = msgspec.UNSET
    short_code: _Code | msgspec.UnsetType = msgspec.UNSET
    notes: _Notes | msgspec.UnsetType = msgspec.UNSET
    psa_reference: _Psa | msgspec.UnsetType | None = msgspec.UNSET


class DocumentCreate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    kind: DocumentKind
    title: _Title
    client_id: uuid.UUID | None = None
    tags: _Tags = msgspec.field(default_factory=list)
    sensitivity: Sensitivity | None = None
    body: str = ""
    fields: CredentialFields | None = None


class DocumentUpdate(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Only what is given changes; new content makes a new revision."""

    title: _Title | msgspec.UnsetType = msgspec.UNSET
    body: str | msgspec.UnsetType = msgspec.UNSET
    fields: CredentialFields | msgspec.UnsetType | None = msgspec.UNSET
    tags: _Tags | msgspec.UnsetType = msgspec.UNSET
    sensitivity: Sensitivity | msgspec.UnsetType = msgspec.UNSET
    client_id: uuid.UUID | msgspec.UnsetType | None = msgspec.UNSET


def _given(value: Any) -> Any:
    return None if value is msgspec.UNSET else value


class ClientController(Controller):
    path = "/clients"
    tags = ["clients"]

    @get("/", operation_id="listClients", summary="The MSP's clients")
    async def list_clients(
        self, actor: NamedDependency[Actor], include_archived: FromQuery[bool] = False
    ) -> list[ClientView]:
        return await clients.list_clients(actor, include_archived=include_archived)

    @post("/", operation_id="createClient", summary="Add a client")
    async def create_client(
        self,
        actor: NamedDependency[Actor],
        data: JSONBody[ClientCreate],
        request: Request[Any, Any, Any],
    ) -> ClientView:
        return await clients.create_client(
            actor,
            name=data.name,
            short_code=data.short_code,
            notes=data.notes,
            psa_reference=data.psa_reference,
            request=request_meta(request),
        )

    @get("/{client_id:uuid}", operation_id="getClient", summary="One client")
    async def get_client(
        self, actor: NamedDependency[Actor], client_id: FromPath[uuid.UUID]
    ) -> ClientView:
        return await clients.get_client(actor, client_id)

    @patch("/{client_id:uuid}", operation_id="updateClient", summary="Change a client")
    async def update_client(
        self,
        actor: NamedDependency[Actor],
        client_id: FromPath[uuid.UUID],
        data: JSONBody[ClientUpdate],
        request: Request[Any, Any, Any],
    ) -> ClientView:
        return await clients.update_client(
            actor,
            client_id,
            name=_given(data.name),
            short_code=_given(data.short_code),
            notes=_given(data.notes),
            psa_reference=data.psa_reference,
            request=request_meta(request),
        )

    @post(
        "/{client_id:uuid}/archive",
        operation_id="archiveClient",
        summary="Archive a client (nothing is deleted)",
        status_code=HTTP_200_OK,
    )
    async def archive_client(
        self,
        actor: NamedDependency[Actor],
        client_id: FromPath[uuid.UUID],
        request: Request[Any, Any, Any],
    ) -> ClientView:
        return await clients.archive_client(actor, client_id, request=request_meta(request))


class DocumentController(Controller):
    path = "/documents"
    tags = ["documents"]

    @get("/", operation_id="listDocuments", summary="Documents, newest first (no bodies)")
    async def list_documents(
        self,
        actor: NamedDependency[Actor],
        keyring: NamedDependency[KeyRing],
        client_id: FromQuery[uuid.UUID | None] = None,
        kind: FromQuery[DocumentKind | None] = None,
        tag: FromQuery[str | None] = None,
        sensitivity: FromQuery[Sensitivity | None] = None,
        include_archived: FromQuery[bool] = False,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
        cursor: FromQuery[str | None] = None,
    ) -> DocumentPage:
        return await documents.list_documents(
            actor,
            keyring,
            DocumentFilters(
                client_id=client_id,
                kind=kind,
                tag=tag,
                sensitivity=sensitivity,
                include_archived=include_archived,
                limit=limit,
                cursor=cursor,
            ),
        )

    @post("/", operation_id="createDocument", summary="Create a document (revision 1)")
    async def create_document(
        self,
        actor: NamedDependency[Actor],
        keyring: NamedDependency[KeyRing],
        data: JSONBody[DocumentCreate],
        request: Request[Any, Any, Any],
    ) -> DocumentSummary:
        return await documents.create_document(
            actor,
            keyring,
            kind=data.kind,
            content=Content(title=data.title, body=data.body, fields=data.fields),
            client_id=data.client_id,
            tags=data.tags,
            sensitivity=data.sensitivity,
            request=request_meta(request),
        )

    @get(
        "/{document_id:uuid}",
        operation_id="getDocument",
        summary="The current revision, decrypted (audited)",
    )
    async def get_document(
        self,
        actor: NamedDependency[Actor],
        keyring: NamedDependency[KeyRing],
        document_id: FromPath[uuid.UUID],
        request: Request[Any, Any, Any],
    ) -> DocumentRead:
        return await documents.get_document(
            actor, keyring, document_id, request=request_meta(request)
        )

    @patch("/{document_id:uuid}", operation_id="updateDocument", summary="Edit a document")
    async def update_document(
        self,
        actor: NamedDependency[Actor],
        keyring: NamedDependency[KeyRing],
        document_id: FromPath[uuid.UUID],
        data: JSONBody[DocumentUpdate],
        request: Request[Any, Any, Any],
    ) -> DocumentSummary:
        return await documents.update_document(
            actor,
            keyring,
            document_id,
            title=data.title,
            body=data.body,
            fields=data.fields,
            tags=data.tags,
            sensitivity=data.sensitivity,
            client_id=data.client_id,
            request=request_meta(request),
        )

    @post(
        "/{document_id:uuid}/archive",
        operation_id="archiveDocument",
        summary="Archive a document (its revisions remain)",
        status_code=HTTP_200_OK,
    )
    async def archive_document(
        self,
        actor: NamedDependency[Actor],
        keyring: NamedDependency[KeyRing],
        document_id: FromPath[uuid.UUID],
        request: Request[Any, Any, Any],
    ) -> DocumentSummary:
        return await documents.archive_document(
            actor, keyring, document_id, request=request_meta(request)
        )

    @get(
        "/{document_id:uuid}/revisions",
        operation_id="listRevisions",
        summary="A document's revisions, newest first",
    )
    async def list_revisions(
        self, actor: NamedDependency[Actor], document_id: FromPath[uuid.UUID]
    ) -> list[RevisionSummary]:
        return await documents.list_revisions(actor, document_id)

    @get(
        "/{document_id:uuid}/revisions/{revision:int}",
        operation_id="getRevision",
        summary="One revision, decrypted (audited)",
    )
    async def get_revision(
        self,
        actor: NamedDependency[Actor],
        keyring: NamedDependency[KeyRing],
        document_id: FromPath[uuid.UUID],
        revision: FromPath[int],
        request: Request[Any, Any, Any],
    ) -> DocumentRead:
        return await documents.get_document(
            actor, keyring, document_id, revision=revision, request=request_meta(request)
        )
