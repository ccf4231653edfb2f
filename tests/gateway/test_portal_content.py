"""Portal pages for MSP clients and documents: lists and filters, the editor and its preview,
revisions and their diff, the audited reveal of credentials, roles and tenant isolation."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from policies.vocabulary import DocumentKind
from sharing import clients, documents
from sharing.documents import Content, CredentialFields
from sharing.tables import AuditEvent, Client, Document, DocumentRevision
from tenants.roles import Role
from tests.helpers import (
    AppClient,
    Person,
    audit_events,
    csrf_header,
    csrf_token,
    make_person,
    make_tenant,
    served,
    session_for,
    sign_in,
)


@pytest.fixture
async def client(settings, db) -> AsyncIterator[AppClient]:
    # conftest's `client` runs the app on another event loop: see `tests.helpers.served`.
    async with served(settings) as http:
        yield http


@pytest.fixture
async def admin(client) -> Person:
    person = await make_person(await make_tenant("msp"))
    await sign_in(client, person)
    return person


async def post_form(client: AppClient, url: str, data: dict[str, Any]) -> httpx.Response:
    return await client.post(url, data={**data, "_csrf_token": csrf_token(client)})


def field_error(page: str, field: str) -> str | None:
    match = re.search(rf'<p class="error" id="{field}-error">([^<]*)<', page)
    return html.unescape(match.group(1)) if match else None


def urls_in(response: httpx.Response) -> list[str]:
    """Every URL a user could follow or submit to from this response, and the one it came from."""
    found = [str(response.request.url), response.headers.get("location", "")]
    found += re.findall(r'(?:href|action|src|hx-get|hx-post)="([^"]*)"', response.text)
    return found


async def event_count(tenant_id: uuid.UUID) -> int:
    return int(await AuditEvent.count().where(AuditEvent.tenant_id == tenant_id))


async def add_document(
    client: AppClient,
    person: Person,
    *,
    title: str,
    kind: DocumentKind = DocumentKind.NOTE,
    client_id: uuid.UUID | None = None,
    tags: list[str] | None = None,
    body: str = "",
    fields: CredentialFields | None = None,
) -> uuid.UUID:
    created = await documents.create_document(
        person.actor,
        client.app.state.keyring,
        kind=kind,
        content=Content(title=title, body=body, fields=fields),
        client_id=client_id,
        tags=tags,
    )
    return created.id


def titles_listed(page: str) -> list[str]:
    return [
        html.unescape(title)
        for title in re.findall(r'<th scope="row"><a href="/documents/[^"]+">([^<]*)</a>', page)
    ]


# --- Clients -----------------------------------------------------------------------------------


async def test_clients_are_added_listed_linked_to_their_documents_and_archived(
    client, admin
) -> None:
    added = await post_form(client, "/clients", {"name": "Contoso Ltd", "short_code": "contoso"})

    assert (added.status_code, added.headers["location"]) == (303, "/clients")
    listing = await client.get("/clients")
    assert listing.status_code == 200
    assert "Client Contoso Ltd added." in listing.text
    [row] = await Client.select().where(Client.tenant_id == admin.tenant.id)
    assert row["short_code"] == "CONTOSO"
    assert f'href="/documents?client={row["id"]}"' in listing.text

    archived = await post_form(client, f"/clients/{row['id']}/archive", {})

    assert (archived.status_code, archived.headers["location"]) == (303, "/clients")
    listing = await client.get("/clients")
    assert "Contoso Ltd</a>" not in listing.text
    assert "Contoso Ltd</a>" in (await client.get("/clients?archived=true")).text
    assert len(await audit_events(admin.tenant.id, "client:archived")) == 1


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        ({"name": "", "short_code": "NEW"}, "name", "the client name needs 1 to 200 characters"),
        ({"name": "New", "short_code": "no spaces"}, "short_code", "the short code is 1-32"),
        ({"name": "Twin", "short_code": "TAKEN"}, "short_code", "exists already"),
    ],
)
async def test_a_bad_client_is_refused_next_to_its_field_and_nothing_is_written(
    client, admin, form, field, message
) -> None:
    await clients.create_client(admin.actor, name="First", short_code="TAKEN")

    response = await post_form(client, "/clients", form)

    assert response.status_code == 422
    assert message in (field_error(response.text, field) or "")
    assert f'aria-invalid="true" aria-describedby="{field}' in response.text
    assert f'value="{form["name"]}"' in response.text  # the input is kept
    assert await Client.count().where(Client.tenant_id == admin.tenant.id) == 1


# --- Lists and filters -------------------------------------------------------------------------


async def test_the_document_list_filters_by_client_kind_tag_and_archived(client, admin) -> None:
    contoso = await clients.create_client(admin.actor, name="Contoso", short_code="CONTOSO")
    fabrikam = await clients.create_client(admin.actor, name="Fabrikam", short_code="FABRIKAM")
    await add_document(client, admin, title="Core SOP", kind=DocumentKind.SOP, client_id=contoso.id)
    await add_document(
        client,
        admin,
        title="Core net",
        kind=DocumentKind.NETWORK,
        client_id=contoso.id,
        tags=["core"],
    )
    await add_document(
        client, admin, title="Fab net", kind=DocumentKind.NETWORK, client_id=fabrikam.id
    )
    old = await add_document(client, admin, title="Old note")
    await documents.archive_document(admin.actor, client.app.state.keyring, old)

    everything = await client.get("/documents")
    by_client = await client.get(f"/documents?client={contoso.id}")
    by_kind = await client.get("/documents?kind=network")
    by_tag = await client.get("/documents?tag=core")
    with_archived = await client.get("/documents?archived=on")

    assert everything.status_code == 200
    assert sorted(titles_listed(everything.text)) == ["Core SOP", "Core net", "Fab net"]
    assert sorted(titles_listed(by_client.text)) == ["Core SOP", "Core net"]
    assert "<h1>Documents of Contoso</h1>" in by_client.text
    assert sorted(titles_listed(by_kind.text)) == ["Core net", "Fab net"]
    assert titles_listed(by_tag.text) == ["Core net"]
    assert "Old note" in titles_listed(with_archived.text)


async def test_a_bad_filter_is_shown_next_to_it(client, admin) -> None:
    response = await client.get("/documents?kind=recipe&tag=Not%20A%20Tag!")

    assert response.status_code == 422
    assert field_error(response.text, "kind") == "Choose a kind from the list."
    assert "tag" in (field_error(response.text, "tag") or "")


async def test_the_document_list_pages_with_a_cursor(client, admin) -> None:
    for number in range(51):
        await add_document(client, admin, title=f"Note {number:02d}")

    first = await client.get("/documents?kind=note")
    [next_link] = re.findall(r'href="(/documents\?[^"]*cursor=[^"]*)"', first.text)
    second = await client.get(html.unescape(next_link))

    assert len(titles_listed(first.text)) == 50
    assert "kind=note" in next_link
    assert titles_listed(second.text) == ["Note 00"]  # newest first: the oldest comes last
    assert 'rel="next"' not in second.text


async def test_archiving_a_document_takes_it_out_of_the_list(client, admin) -> None:
    document_id = await add_document(client, admin, title="Old runbook")
    shown = await client.get(f"/documents/{document_id}")
    assert 'data-confirm="Archive Old runbook?' in shown.text

    archived = await post_form(client, f"/documents/{document_id}/archive", {})

    assert (archived.status_code, archived.headers["location"]) == (
        303,
        f"/documents/{document_id}",
    )
    assert "Archived on" in (await client.get(archived.headers["location"])).text
    assert titles_listed((await client.get("/documents")).text) == []
    assert len(await audit_events(admin.tenant.id, "document:archived")) == 1


# --- Creating, editing, preview -----------------------------------------------------------------


async def test_creating_a_document_from_the_editor_shows_it(client, admin) -> None:
    contoso = await clients.create_client(admin.actor, name="Contoso", short_code="CONTOSO")

    form = await client.get(f"/documents/new?client={contoso.id}&kind=sop")
    created = await post_form(
        client,
        "/documents",
        {
            "title": "Core switch outage",
            "kind": "sop",
            "client": str(contoso.id),
            "tags": "core, Switch",
            "sensitivity": "",
            "body": "# Steps\r\n\r\n1. check power\r\n",
        },
    )

    assert form.status_code == 200
    assert '<label for="body">Body (Markdown)</label>' in form.text
    assert f'<option value="{contoso.id}" selected>' in form.text
    assert created.status_code == 303
    [row] = await Document.select().where(Document.tenant_id == admin.tenant.id)
    assert created.headers["location"] == f"/documents/{row['id']}"
    shown = await client.get(created.headers["location"])
    assert shown.status_code == 200
    assert "<h1>Core switch outage</h1>" in shown.text
    assert "<h2>Steps</h2>" in shown.text and "<li>check power</li>" in shown.text
    assert "core, switch" in shown.text
    assert len(await audit_events(admin.tenant.id, "document:created")) == 1


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"title": "   "}, "title", "the title needs 1 to 200 characters"),
        ({"kind": ""}, "kind", "Choose a kind."),
        ({"tags": "core, Site#1"}, "tags", "tag 'site#1': use 1-40 lower-case letters"),
        ({"password": "hunter2"}, "fields", "only credential documents carry credential fields"),
        ({"kind": "credential", "sensitivity": "standard"}, "sensitivity", "always secret"),
        ({"kind": "credential", "password": "x" * 10_001}, "fields", "password is too long"),
        ({"client": str(uuid.uuid4())}, "client", "no such client"),
    ],
)
async def test_a_bad_document_is_refused_next_to_its_field_and_nothing_is_written(
    client, admin, changes, field, message
) -> None:
    before = await event_count(admin.tenant.id)
    form = {"title": "Runbook", "kind": "runbook", "body": "keep <this> body", **changes}

    response = await post_form(client, "/documents", form)

    assert response.status_code == 422
    assert message in (field_error(response.text, field) or "")
    if field != "fields":
        assert f'aria-invalid="true" aria-describedby="{field}' in response.text
    assert "keep &lt;this&gt; body</textarea>" in response.text  # the input is kept
    assert "hunter2" not in response.text  # secrets are never sent back
    assert await Document.count() == 0 and await DocumentRevision.count() == 0
    assert await event_count(admin.tenant.id) == before


async def test_an_edit_makes_revision_2_and_the_diff_shows_the_change(client, admin) -> None:
    document_id = await add_document(
        client, admin, title="Runbook", kind=DocumentKind.RUNBOOK, body="step one\nstep two\n"
    )

    editor = await client.get(f"/documents/{document_id}/edit")
    saved = await post_form(
        client,
        f"/documents/{document_id}",
        {
            "title": "Runbook",
            "tags": "",
            "sensitivity": "standard",
            "client": "",
            "body": "step one\r\nstep 2, now with care\r\n",
        },
    )

    assert editor.status_code == 200
    assert "step one\nstep two\n</textarea>" in editor.text
    assert (saved.status_code, saved.headers["location"]) == (303, f"/documents/{document_id}")
    shown = await client.get(f"/documents/{document_id}")
    assert "Saved as revision 2." in shown.text
    assert "2 of 2" in shown.text
    history = await client.get(f"/documents/{document_id}/history")
    assert history.status_code == 200
    assert re.findall(r'<th scope="row">(\d+)', history.text) == ["2", "1"]
    assert history.text.count(admin.email) >= 2
    diff = await client.get(f"/documents/{document_id}/diff?from=1&to=2")
    assert diff.status_code == 200
    assert "<del>- step two</del>" in diff.text
    assert "<ins>+ step 2, now with care</ins>" in diff.text
    assert "  step one\n" in diff.text
    assert "1 line added, 1 line removed" in diff.text


async def test_saving_unchanged_content_makes_no_revision(client, admin) -> None:
    document_id = await add_document(client, admin, title="Note", body="same\n")

    saved = await post_form(
        client,
        f"/documents/{document_id}",
        {"title": "Note", "body": "same\r\n", "sensitivity": "standard", "client": "", "tags": ""},
    )

    assert saved.status_code == 303
    assert (
        await documents.get_summary(admin.actor, client.app.state.keyring, document_id)
    ).current_revision == 1
    assert "there is no new revision" in (await client.get(saved.headers["location"])).text


async def test_a_bad_edit_is_refused_and_makes_no_revision(client, admin) -> None:
    document_id = await add_document(client, admin, title="Note", body="before")

    response = await post_form(
        client,
        f"/documents/{document_id}",
        {"title": "", "body": "after", "sensitivity": "standard", "client": "", "tags": ""},
    )

    assert response.status_code == 422
    assert "title needs" in (field_error(response.text, "title") or "")
    assert await DocumentRevision.count().where(DocumentRevision.document_id == document_id) == 1


async def test_the_preview_renders_markdown_and_escapes_raw_html(client, admin) -> None:
    await client.get("/documents/new")

    response = await client.post(
        "/documents/preview",
        data={"body": "<script>alert(1)</script>\n\n**bold** <img src=x onerror=alert(2)>"},
        headers={**csrf_header(client), "HX-Request": "true"},
    )

    assert response.status_code == 200
    assert "<strong>bold</strong>" in response.text
    assert "<script>" not in response.text and "<img" not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text
    assert "<html" not in response.text  # a fragment, not a page


async def test_the_preview_button_works_without_javascript_and_writes_nothing(
    client, admin
) -> None:
    response = await post_form(
        client,
        "/documents",
        {"intent": "preview", "title": "Draft", "kind": "note", "body": "*draft* <b>x</b>"},
    )

    assert response.status_code == 200
    assert "<em>draft</em> &lt;b&gt;x&lt;/b&gt;" in response.text
    assert await Document.count() == 0


async def test_the_preview_needs_the_csrf_header(client, admin) -> None:
    response = await client.post("/documents/preview", data={"body": "x"})

    assert response.status_code == 403


# --- Credentials: masked, revealed only by POST, audited -----------------------------------------


async def test_a_credential_is_masked_until_revealed_and_the_reveal_is_one_audit_event(
    client, admin
) -> None:
    secret = f"pw-{uuid.uuid4().hex}"
    seed = f"seed{uuid.uuid4().hex[:12]}"
    created = await post_form(
        client,
        "/documents",
        {
            "title": "HH-CORE-1 admin",
            "kind": "credential",
            "body": "Switch admin account",
            "username": "admin",
            "password": secret,
            "totp_seed": seed,
        },
    )
    assert created.status_code == 303
    location = created.headers["location"]
    document_id = location.rsplit("/", 1)[-1]
    seen = [created]
    for url in (
        location,
        f"{location}/edit",
        f"{location}/history",
        "/documents",
        "/documents?kind=credential",
    ):
        response = await client.get(url)
        assert response.status_code == 200, url
        seen.append(response)

    shown = seen[1]
    assert "••••••••" in shown.text and "<code>admin</code>" in shown.text
    assert 'action="/documents/' + document_id + '/reveal"' in shown.text
    for response in seen:
        assert secret not in response.text and seed not in response.text
    before = await event_count(admin.tenant.id)

    revealed = await post_form(client, f"{location}/reveal", {"revision": "1"})

    assert revealed.status_code == 200
    assert f"<code>{secret}</code>" in revealed.text and f"<code>{seed}</code>" in revealed.text
    assert await event_count(admin.tenant.id) == before + 1
    [event] = await audit_events(admin.tenant.id, "document:revealed")
    assert (event["severity"], event["target_id"], event["actor_id"]) == (
        "high",
        document_id,
        str(admin.user_id),
    )
    assert event["context"]["revision"] == "1"
    seen.append(revealed)
    for response in seen:
        assert not [url for url in urls_in(response) if secret in url or seed in url]
    again = await client.get(location)
    assert secret not in again.text


async def test_an_edit_that_leaves_the_password_empty_keeps_it(client, admin) -> None:
    document_id = await add_document(
        client,
        admin,
        title="VPN",
        kind=DocumentKind.CREDENTIAL,
        fields=CredentialFields(username="ops", password="keep-me-123"),
    )

    saved = await post_form(
        client,
        f"/documents/{document_id}",
        {
            "title": "VPN",
            "body": "",
            "sensitivity": "secret",
            "client": "",
            "tags": "",
            "username": "ops2",
            "password": "",
            "url": "",
            "notes": "",
            "totp_seed": "",
        },
    )

    assert saved.status_code == 303
    read = await documents.get_document(
        admin.actor, client.app.state.keyring, uuid.UUID(str(document_id))
    )
    assert read.revision == 2
    assert read.fields == CredentialFields(username="ops2", password="keep-me-123")


async def test_revealing_a_document_without_credential_fields_is_refused(client, admin) -> None:
    document_id = await add_document(client, admin, title="Plain note", body="x")

    response = await post_form(client, f"/documents/{document_id}/reveal", {})

    assert response.status_code == 422
    assert await audit_events(admin.tenant.id, "document:revealed") == []


# --- Roles and tenants ---------------------------------------------------------------------------


async def test_an_auditor_sees_lists_but_gets_a_403_page_on_bodies_and_secrets(client) -> None:
    tenant = await make_tenant("msp")
    owner = await make_person(tenant)
    auditor = await make_person(tenant, Role.AUDITOR)
    secret = f"pw-{uuid.uuid4().hex}"
    document_id = await add_document(
        client,
        owner,
        title="Firewall admin",
        kind=DocumentKind.CREDENTIAL,
        fields=CredentialFields(username="root", password=secret),
    )
    await session_for(client, auditor)

    listing = await client.get("/documents")
    pages = [
        await client.get(f"/documents/{document_id}"),
        await client.get(f"/documents/{document_id}/edit"),
        await client.get(f"/documents/{document_id}/diff?from=1&to=1"),
        await post_form(client, f"/documents/{document_id}/reveal", {}),
        await post_form(client, "/documents", {"title": "x", "kind": "note"}),
    ]

    assert listing.status_code == 200 and "Firewall admin" in listing.text
    assert [response.status_code for response in pages] == [403] * len(pages)
    for response in pages:
        assert "<h1>Forbidden</h1>" in response.text
        assert secret not in response.text
    assert await audit_events(tenant.id, "document:revealed") == []
    assert await audit_events(tenant.id, "document:read") == []
    assert await Document.count() == 1


async def test_another_msps_clients_and_documents_are_404(client, admin) -> None:
    other = await make_person(await make_tenant("msp"))
    theirs = await clients.create_client(other.actor, name="Their client", short_code="THEIRS")
    secret = f"pw-{uuid.uuid4().hex}"
    document_id = await add_document(
        client,
        other,
        title="Their credential",
        kind=DocumentKind.CREDENTIAL,
        client_id=theirs.id,
        fields=CredentialFields(password=secret),
    )
    body = {"title": "taken over", "body": "x", "sensitivity": "secret", "client": "", "tags": ""}

    responses = [
        await client.get(f"/documents/{document_id}"),
        await client.get(f"/documents/{document_id}/edit"),
        await client.get(f"/documents/{document_id}/history"),
        await client.get(f"/documents/{document_id}/diff"),
        await client.get(f"/documents?client={theirs.id}"),
        await post_form(client, f"/documents/{document_id}", body),
        await post_form(client, f"/documents/{document_id}/reveal", {}),
        await post_form(client, f"/documents/{document_id}/archive", {}),
        await post_form(client, f"/clients/{theirs.id}/archive", {}),
    ]

    assert [response.status_code for response in responses] == [404] * len(responses)
    for response in responses:
        assert secret not in response.text and "Their credential" not in response.text
    listing = await client.get("/documents")
    assert "Their credential" not in listing.text and "Their client" not in listing.text
    [row] = await Document.select().where(Document.id == document_id)
    assert (row["archived_at"], row["current_revision"]) == (None, 1)
    assert (await clients.get_client(other.actor, theirs.id)).archived_at is None
    assert await audit_events(other.tenant.id, "document:revealed") == []


async def test_a_noc_tenant_has_no_client_pages(client) -> None:
    await sign_in(client, await make_person(await make_tenant("noc")))

    assert (await client.get("/clients")).status_code == 403
    assert (await client.get("/documents")).status_code == 403
    assert (await client.get("/documents/new")).status_code == 403
