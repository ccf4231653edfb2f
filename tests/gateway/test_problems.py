"""Errors as RFC 9457 problems, failing closed when the audit log cannot be written, readiness."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import msgspec
import pytest
from redis.asyncio import Redis

from gateway.app import create_app
from gateway.database import bind_database, engine_for
from policies.ceiling import Ceiling
from sharing import partnerships
from sharing.tables import AuditEvent, Partnership
from tenants.roles import Role
from tests.helpers import (
    AppClient,
    _lifespan,
    api_token,
    bearer,
    csrf_token,
    make_person,
    make_tenant,
    served,
    sign_in,
)

UNREACHABLE_POSTGRES = "postgresql://shiftgate@127.0.0.1:1/shiftgate"


@pytest.fixture
async def client(settings, db) -> AsyncIterator[AppClient]:
    # conftest's `client` runs the app on another event loop: see `tests.helpers.served`.
    async with served(settings) as http:
        yield http


# --- Problems ----------------------------------------------------------------------------------


async def _setup(client: AppClient) -> dict[str, Any]:
    msp_admin = await make_person(await make_tenant("msp"))
    noc_admin = await make_person(await make_tenant("noc"))
    return {
        "msp": bearer(await api_token(msp_admin)),
        "reader": bearer(await api_token(msp_admin, scopes=["read"])),
        "noc": bearer(await api_token(noc_admin)),
        "noc_slug": noc_admin.tenant.slug,
    }


ERRORS: dict[str, tuple[int, Callable[[AppClient, dict[str, Any]], Awaitable[httpx.Response]]]] = {
    "no credentials": (401, lambda c, s: c.get("/api/v1/me")),
    "bad token": (401, lambda c, s: c.get("/api/v1/me", headers=bearer("sgt_nope"))),
    "missing permission": (
        403,
        lambda c, s: c.post(
            "/api/v1/partnerships", json={"noc": s["noc_slug"]}, headers=s["reader"]
        ),
    ),
    "unknown object": (
        404,
        lambda c, s: c.get(f"/api/v1/partnerships/{uuid.uuid4()}", headers=s["msp"]),
    ),
    "unknown path": (404, lambda c, s: c.get("/api/v1/no-such-thing", headers=s["msp"])),
    "wrong method": (405, lambda c, s: c.patch("/api/v1/me", headers=s["msp"])),
    "unknown field": (
        400,
        lambda c, s: c.post("/api/v1/partnerships", json={"noc": "x", "y": 1}, headers=s["msp"]),
    ),
    "not json": (
        400,
        lambda c, s: c.post(
            "/api/v1/partnerships",
            content=b"{not json",
            headers={**s["msp"], "content-type": "application/json"},
        ),
    ),
    "conflict": (
        409,
        lambda c, s: c.post("/api/v1/partnerships", json={"noc": s["noc_slug"]}, headers=s["noc"]),
    ),
    "invalid": (
        422,
        lambda c, s: c.post("/api/v1/partnerships", json={"noc": "nobody"}, headers=s["msp"]),
    ),
}


@pytest.mark.parametrize("name", ERRORS)
async def test_api_errors_are_problem_documents(client, name) -> None:
    status, send = ERRORS[name]

    response = await send(client, await _setup(client))

    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == status
    assert re.fullmatch(r"urn:shiftgate:problem:[a-z0-9_-]+", problem["type"])
    assert isinstance(problem["title"], str) and problem["title"]
    assert isinstance(problem["detail"], str) and problem["detail"]
    assert problem["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text and 'File "' not in response.text


@pytest.mark.parametrize("path", ["/api/v1/me", "/api/v1/no-such-thing"])
@pytest.mark.parametrize(
    ("sent", "kept"), [("ticket-4411.retry_2", True), ("x", False), ("a b c d e f g h", False)]
)
async def test_a_sane_request_id_is_carried_through_and_an_odd_one_replaced(
    client, path, sent, kept
) -> None:
    response = await client.get(path, headers={"X-Request-ID": sent})

    assert response.status_code in (401, 404)
    assert response.json()["request_id"] == response.headers["x-request-id"]
    assert (response.headers["x-request-id"] == sent) is kept


# --- Fail closed -------------------------------------------------------------------------------


class AuditSink:
    """Switches the audit log between taking writes and refusing every insert, as a full disk."""

    def __init__(self, db: Any) -> None:
        self._db = db
        if db.engine_type == "sqlite":
            self._refuse = [
                "CREATE TRIGGER audit_full BEFORE INSERT ON audit_events "
                "BEGIN SELECT RAISE(ABORT, 'disk full'); END;"
            ]
            self._lift = ["DROP TRIGGER IF EXISTS audit_full"]
        else:
            self._refuse = [
                "CREATE OR REPLACE FUNCTION shiftgate_test_audit_full() RETURNS trigger AS $$ "
                "BEGIN RAISE EXCEPTION 'disk full' USING ERRCODE = 'disk_full'; END $$ "
                "LANGUAGE plpgsql",
                "CREATE TRIGGER audit_full BEFORE INSERT ON audit_events "
                "FOR EACH ROW EXECUTE FUNCTION shiftgate_test_audit_full()",
            ]
            self._lift = [
                "DROP TRIGGER IF EXISTS audit_full ON audit_events",
                "DROP FUNCTION IF EXISTS shiftgate_test_audit_full()",
            ]

    async def refuse(self) -> None:
        for statement in self._refuse:
            await self._db.run_ddl(statement)

    async def lift(self) -> None:
        for statement in self._lift:
            await self._db.run_ddl(statement)


@pytest.fixture
async def audit_sink(db) -> AsyncIterator[AuditSink]:
    sink = AuditSink(db)
    try:
        yield sink
    finally:
        await sink.lift()


def _assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "5"
    assert "Traceback" not in response.text and "disk full" not in response.text


async def test_an_invitation_that_cannot_be_audited_is_a_503_and_not_made(
    client, audit_sink
) -> None:
    msp_admin = await make_person(await make_tenant("msp"))
    noc = await make_tenant("noc")
    token = bearer(await api_token(msp_admin))
    events = await AuditEvent.count()
    await audit_sink.refuse()

    response = await client.post("/api/v1/partnerships", json={"noc": noc.slug}, headers=token)

    _assert_unavailable(response)
    problem = response.json()
    assert problem["type"] == "urn:shiftgate:problem:unavailable"
    assert problem["request_id"] == response.headers["x-request-id"]
    assert await Partnership.count() == 0
    assert await AuditEvent.count() == events
    # Once the audit log takes writes again, the same request goes through.
    await audit_sink.lift()
    again = await client.post("/api/v1/partnerships", json={"noc": noc.slug}, headers=token)
    assert again.status_code == 201, again.text
    assert await Partnership.count() == 1


async def test_an_acceptance_that_cannot_be_audited_leaves_the_invitation_open(
    client, audit_sink
) -> None:
    msp_admin = await make_person(await make_tenant("msp"))
    noc_admin = await make_person(await make_tenant("noc"))
    view = await partnerships.invite(
        msp_admin.actor, noc_slug=noc_admin.tenant.slug, ceiling=Ceiling()
    )
    token = bearer(await api_token(noc_admin))
    events = await AuditEvent.count()
    await audit_sink.refuse()

    response = await client.post(f"/api/v1/partnerships/{view.id}/accept", headers=token)

    _assert_unavailable(response)
    row = await Partnership.select().where(Partnership.id == view.id).first()
    assert row["status"] == "invited"
    assert await AuditEvent.count() == events


async def test_a_portal_invitation_that_cannot_be_audited_is_a_503_page(client, audit_sink) -> None:
    msp_admin = await make_person(await make_tenant("msp"))
    noc = await make_tenant("noc")
    await sign_in(client, msp_admin)
    await audit_sink.refuse()

    response = await client.post(
        "/partnerships",
        data={
            "noc": noc.slug,
            "document_kinds": ["sop"],
            "max_grant_hours": "8",
            "_csrf_token": csrf_token(client),
        },
    )

    _assert_unavailable(response)
    assert response.headers["content-type"].startswith("text/html")
    assert "Service unavailable" in response.text
    assert await Partnership.count() == 0


async def test_a_sign_in_that_cannot_be_audited_does_not_sign_in(client, audit_sink) -> None:
    person = await make_person(await make_tenant("msp"), Role.TECHNICIAN)
    assert (await client.get("/login")).status_code == 200
    await audit_sink.refuse()

    response = await client.post(
        "/login",
        data={
            "email": person.email,
            "password": person.password,
            "_csrf_token": csrf_token(client),
        },
    )

    _assert_unavailable(response)
    assert "shiftgate_session" not in client.cookies
    await audit_sink.lift()
    assert (await client.get("/api/v1/me")).status_code == 401


# --- Readiness ---------------------------------------------------------------------------------


async def test_ready_when_the_database_and_redis_answer(client, settings) -> None:
    response = await client.get("/readyz")

    assert response.status_code == 200, response.text
    expected = {"database": "ok"}
    if settings.redis_url:
        expected["redis"] = "ok"
    assert response.json() == {"status": "ok", "checks": expected}


async def test_not_ready_when_the_database_does_not_answer(client, settings) -> None:
    app = client.app
    working = app.state.engine
    app.state.engine = engine_for(
        msgspec.structs.replace(settings, database_url=UNREACHABLE_POSTGRES)
    )
    try:
        response = await client.get("/readyz")
    finally:
        app.state.engine = working

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"].startswith("unavailable: ")
    assert (await client.get("/readyz")).status_code == 200


@pytest.mark.redis
async def test_not_ready_when_redis_does_not_answer(client) -> None:
    app = client.app
    working = app.state.redis
    app.state.redis = Redis.from_url("redis://127.0.0.1:1/0")
    try:
        response = await client.get("/readyz")
    finally:
        await app.state.redis.aclose()
        app.state.redis = working

    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "redis": "unavailable: ConnectionError"}


async def test_the_app_does_not_start_against_an_unreachable_database(settings, db) -> None:
    app = create_app(msgspec.structs.replace(settings, database_url=UNREACHABLE_POSTGRES))
    try:
        with pytest.raises(Exception, match=r"cannot (open|connect to) the database"):
            async with _lifespan(app):
                pass
    finally:
        bind_database(settings)  # create_app pointed every table at the unreachable database
