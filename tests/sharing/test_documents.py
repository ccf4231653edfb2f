"""Client documents: encrypted at rest, bound to their row, revised, audited, tenant-isolated."""

from __future__ import annotations

import io
import uuid
from pathlib import Path
from typing import Any

import pytest

from sharing.audit import verify_chain
from sharing.tables import AuditEvent, Document, DocumentRevision
from tenants.roles import Role, TokenScope
from tests.helpers import make_person, make_tenant

MARKERS = ("ZEBRA-TITLE-4411", "QUOKKA-BODY-7731", "WOMBAT-PASSWORD-0017", "NARWHAL-TOTP-9921")


async def _token(tenant, scopes=("read", "write")) -> dict[str, str]:
    from sharing import accounts

    admin = await make_person(tenant, Role.ADMIN)
    issued = await accounts.issue_api_token(
        admin.actor, name="test", scopes=list(scopes), expires_in_days=1
    )
    return {"Authorization": f"Bearer {issued.secret}"}


@pytest.fixture
async def msp(client) -> dict[str, Any]:
    tenant = await make_tenant("msp")
    headers = await _token(tenant)
    made = await client.post(
        "/api/v1/clients", json={"name": "Contoso Ltd", "short_code": "contoso"}, headers=headers
    )
    assert made.status_code == 201, made.text
    return {"tenant": tenant, "headers": headers, "client_id": made.json()["id"]}


async def _create(client, msp, **fields) -> dict[str, Any]:
    body = {"kind": "sop", "title": "Core switch outage", "body": "# Steps", **fields}
    response = await client.post("/api/v1/documents", json=body, headers=msp["headers"])
    assert response.status_code == 201, response.text
    return response.json()


async def _events(tenant_id: uuid.UUID, action: str) -> list[dict[str, Any]]:
    return await AuditEvent.select().where(
        (AuditEvent.tenant_id == tenant_id) & (AuditEvent.action == action)
    )


async def test_create_read_update_keeps_revisions_and_audits(client, msp) -> None:
    doc = await _create(client, msp, client_id=msp["client_id"], tags=["Network", "switch"])
    assert doc["current_revision"] == 1
    assert doc["tags"] == ["network", "switch"]
    changed = await client.patch(
        f"/api/v1/documents/{doc['id']}",
        json={"body": "# Steps, revised", "tags": ["network"]},
        headers=msp["headers"],
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["current_revision"] == 2
    current = (await client.get(f"/api/v1/documents/{doc['id']}", headers=msp["headers"])).json()
    assert (current["revision"], current["body"], current["tags"]) == (
        2,
        "# Steps, revised",
        ["network"],
    )
    first = await client.get(f"/api/v1/documents/{doc['id']}/revisions/1", headers=msp["headers"])
    assert first.json()["body"] == "# Steps"
    revisions = await client.get(f"/api/v1/documents/{doc['id']}/revisions", headers=msp["headers"])
    assert [r["revision"] for r in revisions.json()] == [2, 1]
    # a metadata-only change makes no revision
    same = await client.patch(
        f"/api/v1/documents/{doc['id']}",
        json={"sensitivity": "confidential"},
        headers=msp["headers"],
    )
    assert same.json()["current_revision"] == 2
    archived = await client.post(f"/api/v1/documents/{doc['id']}/archive", headers=msp["headers"])
    assert archived.json()["archived_at"] is not None
    listed = await client.get("/api/v1/documents", headers=msp["headers"])
    assert listed.json()["items"] == []
    tenant_id = msp["tenant"].id
    assert len(await _events(tenant_id, "document:created")) == 1
    assert len(await _events(tenant_id, "document:updated")) == 2
    assert len(await _events(tenant_id, "document:archived")) == 1
    assert len(await _events(tenant_id, "document:read")) == 2
    assert (await verify_chain(tenant_id)).ok


async def test_credentials_are_secret_and_carry_fields(client, msp) -> None:
    made = await client.post(
        "/api/v1/documents",
        json={
            "kind": "credential",
            "title": "Core switch admin",
            "fields": {"username": "netadmin", "password": "s3cret!", "totp_seed": "JBSWY3DP"},
        },
        headers=msp["headers"],
    )
    assert made.status_code == 201, made.text
    assert made.json()["sensitivity"] == "secret"
    read = await client.get(f"/api/v1/documents/{made.json()['id']}", headers=msp["headers"])
    assert read.json()["fields"]["password"] == "s3cret!"
    event = (await _events(msp["tenant"].id, "document:read"))[0]
    assert event["severity"] == "warning"


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"kind": "passwords", "title": "x"}, 400, "kind"),
        ({"kind": "credential", "title": "x", "sensitivity": "standard"}, 422, "always secret"),
        ({"kind": "sop", "title": "x", "fields": {"password": "p"}}, 422, "credential fields"),
        ({"kind": "sop", "title": ""}, 400, "title"),
        ({"kind": "sop", "title": "x", "tags": ["has space"]}, 422, "tag"),
        ({"kind": "sop", "title": "x", "tags": [f"t{i}" for i in range(21)]}, 400, "tags"),
        ({"kind": "sop", "title": "x", "body": "a" * (1024 * 1024 + 1)}, 422, "1 MiB"),
        ({"kind": "sop", "title": "x", "client_id": str(uuid.uuid4())}, 422, "client"),
        ({"kind": "sop", "title": "x", "colour": "red"}, 400, "colour"),
    ],
)
async def test_bad_documents_are_refused_and_nothing_is_written(
    client, msp, body, status, needle
) -> None:
    response = await client.post("/api/v1/documents", json=body, headers=msp["headers"])
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert needle in response.text
    assert await Document.count().where(Document.tenant_id == msp["tenant"].id) == 0
    assert await DocumentRevision.count().where(DocumentRevision.tenant_id == msp["tenant"].id) == 0


async def test_a_body_over_the_request_limit_is_413(client, msp) -> None:
    response = await client.post(
        "/api/v1/documents",
        json={"kind": "sop", "title": "x", "body": "a" * (3 * 1024 * 1024)},
        headers=msp["headers"],
    )
    assert response.status_code == 413


async def test_list_filters_and_cursor_pagination(client, msp) -> None:
    for index in range(5):
        await _create(client, msp, title=f"Doc {index}", tags=["even" if index % 2 == 0 else "odd"])
    await _create(client, msp, kind="network", title="Net", client_id=msp["client_id"])
    seen, cursor = [], None
    while True:
        query = "/api/v1/documents?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (await client.get(query, headers=msp["headers"])).json()
        seen += [item["title"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["Net", "Doc 4", "Doc 3", "Doc 2", "Doc 1", "Doc 0"]

    async def titles(query: str) -> list[str]:
        response = await client.get(f"/api/v1/documents?{query}", headers=msp["headers"])
        assert response.status_code == 200, response.text
        return sorted(item["title"] for item in response.json()["items"])

    assert await titles("tag=even") == ["Doc 0", "Doc 2", "Doc 4"]
    assert await titles("kind=network") == ["Net"]
    assert await titles(f"client_id={msp['client_id']}") == ["Net"]
    assert await titles("sensitivity=secret") == []
    bad = await client.get("/api/v1/documents?cursor=garbage", headers=msp["headers"])
    assert bad.status_code == 422


async def test_auditors_list_but_never_read_bodies_and_technicians_edit(client, msp) -> None:
    from sharing import accounts

    doc = await _create(client, msp)
    auditor = await make_person(msp["tenant"], Role.AUDITOR)
    technician = await make_person(msp["tenant"], Role.TECHNICIAN)
    admin = await make_person(msp["tenant"], Role.ADMIN)
    audit_token = await accounts.issue_api_token(
        admin.actor, name="audit", scopes=[TokenScope.AUDIT], expires_in_days=1
    )
    from sharing import documents
    from tenants.keyring import KeyRing
    from tenants.root_key import EnvRootKey

    keyring = KeyRing(EnvRootKey(client.app.state.settings.root_key))
    page = await documents.list_documents(auditor.actor, keyring, documents.DocumentFilters())
    assert [item.title for item in page.items] == ["Core switch outage"]
    from tenants.errors import Forbidden

    with pytest.raises(Forbidden):
        await documents.get_document(auditor.actor, keyring, uuid.UUID(doc["id"]))
    headers = {"Authorization": f"Bearer {audit_token.secret}"}
    response = await client.get(f"/api/v1/documents/{doc['id']}", headers=headers)
    assert response.status_code == 403
    assert "Core switch" not in response.text
    edited = await documents.update_document(
        technician.actor, keyring, uuid.UUID(doc["id"]), body="technician edit"
    )
    assert edited.current_revision == 2
    with pytest.raises(Forbidden):
        await documents.update_document(auditor.actor, keyring, uuid.UUID(doc["id"]), body="x")


async def test_other_tenants_get_404_for_every_content_endpoint(client, msp) -> None:
    doc = await _create(client, msp, client_id=msp["client_id"])
    stranger = await _token(await make_tenant("msp"))
    noc = await _token(await make_tenant("noc"))
    before = await Document.select().where(Document.id == doc["id"])
    paths = [
        ("get", f"/api/v1/documents/{doc['id']}", None),
        ("get", f"/api/v1/documents/{doc['id']}/revisions", None),
        ("get", f"/api/v1/documents/{doc['id']}/revisions/1", None),
        ("patch", f"/api/v1/documents/{doc['id']}", {"body": "pwned"}),
        ("post", f"/api/v1/documents/{doc['id']}/archive", None),
        ("get", f"/api/v1/clients/{msp['client_id']}", None),
        ("patch", f"/api/v1/clients/{msp['client_id']}", {"name": "pwned"}),
        ("post", f"/api/v1/clients/{msp['client_id']}/archive", None),
    ]
    for headers in (stranger, noc):
        for method, path, body in paths:
            response = await getattr(client, method)(
                path, headers=headers, **({"json": body} if body else {})
            )
            assert response.status_code == 404, (method, path, response.text)
            assert "Core switch" not in response.text
        listed = await client.get("/api/v1/documents", headers=headers)
        assert listed.json()["items"] == []
        assert (await client.get("/api/v1/clients", headers=headers)).json() == []
    assert await Document.select().where(Document.id == doc["id"]) == before
    created = await client.post(
        "/api/v1/documents", json={"kind": "sop", "title": "x"}, headers=noc
    )
    assert created.status_code == 403  # a NOC keeps no client documentation


async def _raw_bytes(db, settings) -> bytes:
    """Everything the database holds, as stored: the SQLite files, or PostgreSQL's tables."""
    if db.engine_type == "sqlite":
        path = Path(settings.sqlite_path)
        return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    import asyncpg

    connection = await asyncpg.connect(settings.database_url)
    try:
        dump = io.BytesIO()
        for table in ("documents", "document_revisions", "audit_events", "tenant_keys", "clients"):
            # a query, not the table: COPY cannot read a partitioned table (audit_events) directly
            await connection.copy_from_query(f"SELECT * FROM {table}", output=dump, format="binary")
        return dump.getvalue()
    finally:
        await connection.close()


async def test_markers_never_reach_the_database_in_clear(client, msp, db, settings) -> None:
    doc = await _create(client, msp, title=f"Runbook {MARKERS[0]}", body=f"Step: {MARKERS[1]}")
    await client.post(
        "/api/v1/documents",
        json={
            "kind": "credential",
            "title": "admin",
            "fields": {"password": MARKERS[2], "totp_seed": MARKERS[3]},
        },
        headers=msp["headers"],
    )
    read = await client.get(f"/api/v1/documents/{doc['id']}", headers=msp["headers"])
    assert MARKERS[1] in read.json()["body"]  # the markers are really there, and readable
    raw = await _raw_bytes(db, settings)
    assert b"Contoso Ltd" in raw  # proves the dump sees stored text
    for marker in MARKERS:
        assert marker.encode() not in raw, marker


async def test_swapped_or_flipped_ciphertexts_fail_with_an_integrity_error(client, msp, db) -> None:
    first = await _create(client, msp, title="First", body="first body")
    second = await _create(client, msp, title="Second", body="second body")
    rows = {
        row["document_id"]: row
        for row in await DocumentRevision.select().where(
            DocumentRevision.tenant_id == msp["tenant"].id
        )
    }
    a, b = rows[uuid.UUID(first["id"])], rows[uuid.UUID(second["id"])]
    await DocumentRevision.update({DocumentRevision.body_sealed: b["body_sealed"]}).where(
        DocumentRevision.id == a["id"]
    )
    await DocumentRevision.update({DocumentRevision.body_sealed: a["body_sealed"]}).where(
        DocumentRevision.id == b["id"]
    )
    for doc in (first, second):
        response = await client.get(f"/api/v1/documents/{doc['id']}", headers=msp["headers"])
        assert response.status_code == 500
        problem = response.json()
        assert problem["title"] == "Integrity check failed"
        assert "altered or moved" in problem["detail"]
        assert "body" not in {"first body", "second body"} & set(response.text.split('"'))
    failures = await _events(msp["tenant"].id, "document:integrity_failed")
    assert len(failures) == 2
    assert {event["severity"] for event in failures} == {"high"}

    # swapping the wrapped data keys (the keys, not the content) fails the same way
    third = await _create(client, msp, title="Third", body="third body")
    fourth = await _create(client, msp, title="Fourth", body="fourth body")
    rows = {
        row["document_id"]: row
        for row in await DocumentRevision.select().where(
            DocumentRevision.tenant_id == msp["tenant"].id
        )
    }
    c, d = rows[uuid.UUID(third["id"])], rows[uuid.UUID(fourth["id"])]
    await DocumentRevision.update({DocumentRevision.wrapped_dek: d["wrapped_dek"]}).where(
        DocumentRevision.id == c["id"]
    )
    response = await client.get(f"/api/v1/documents/{third['id']}", headers=msp["headers"])
    assert response.status_code == 500
    assert "third body" not in response.text

    # one flipped byte in a title breaks even the list
    flipped = bytearray(d["title_sealed"])
    flipped[-3] ^= 0x40
    await DocumentRevision.update({DocumentRevision.title_sealed: bytes(flipped)}).where(
        DocumentRevision.id == d["id"]
    )
    listed = await client.get("/api/v1/documents", headers=msp["headers"])
    assert listed.status_code == 500
    assert "Fourth" not in listed.text
