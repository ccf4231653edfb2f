"""`/api/v1/webhooks` over HTTP: the secret shown once, problems for bad input, who may manage
endpoints, other tenants' endpoints and deliveries out of reach, deliveries and resend."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from gateway.webhook_sender import HttpxWebhookSender
from sharing import webhooks
from sharing.clock import DatabaseClock
from sharing.events import EventType, emit
from sharing.tables import WebhookDelivery, WebhookEndpoint
from tenants.roles import Role
from tenants.service import TenantInfo
from tests.helpers import (
    AppClient,
    api_token,
    audit_events,
    bearer,
    csrf_header,
    make_person,
    make_tenant,
    served,
    sign_in,
)
from tests.webhook_receiver import Receiver, receiving

EVENTS = ["grant.created", "grant.revoked"]


@pytest.fixture
async def client(settings, db) -> AsyncIterator[AppClient]:
    """The gateway as deployed: webhook URLs must be public."""
    async with served(settings) as http:
        yield http


@pytest.fixture
async def lab(settings, db) -> AsyncIterator[AppClient]:
    """The gateway with `SHIFTGATE_WEBHOOK_ALLOW_PRIVATE=true`, so receivers on 127.0.0.1 do."""
    async with served(msgspec.structs.replace(settings, webhook_allow_private=True)) as http:
        yield http


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with receiving() as running:
        yield running


async def _tenant_token(
    kind: str = "msp", scopes: tuple[str, ...] = ("write",)
) -> tuple[TenantInfo, dict[str, str]]:
    tenant = await make_tenant(kind)
    admin = await make_person(tenant)
    return tenant, bearer(await api_token(admin, scopes=scopes))


async def _create(
    http: AppClient, headers: dict[str, str], url: str, **extra: Any
) -> dict[str, Any]:
    response = await http.post(
        "/api/v1/webhooks", json={"url": url, "events": EVENTS, **extra}, headers=headers
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_an_endpoint_from_creation_to_deletion(lab, receiver) -> None:
    tenant, headers = await _tenant_token()
    created = await _create(lab, headers, receiver.url(), description="NOC pager")
    secret = created["secret"]
    endpoint = created["endpoint"]
    assert secret.startswith("whsec_")
    assert endpoint["url"] == receiver.url() and endpoint["events"] == EVENTS
    assert (endpoint["status"], endpoint["description"]) == ("active", "NOC pager")
    path = f"/api/v1/webhooks/{endpoint['id']}"

    listed = await lab.get("/api/v1/webhooks", headers=headers)
    one = await lab.get(path, headers=headers)
    for response in (listed, one):
        assert response.status_code == 200
        assert secret not in response.text and "secret" not in response.text
    assert [row["id"] for row in listed.json()] == [endpoint["id"]]
    assert one.json() == endpoint

    changed = await lab.patch(
        path, json={"events": ["notes.posted"], "status": "disabled"}, headers=headers
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["events"], changed.json()["status"]) == (["notes.posted"], "disabled")
    assert secret not in changed.text
    enabled = await lab.patch(path, json={"status": "active"}, headers=headers)
    assert enabled.json()["status"] == "active"

    rotated = await lab.post(f"{path}/rotate-secret", headers=headers)
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["secret"].startswith("whsec_") and rotated.json()["secret"] != secret
    assert rotated.json()["endpoint"]["id"] == endpoint["id"]

    deleted = await lab.delete(path, headers=headers)
    assert deleted.status_code == 204 and deleted.content == b""
    assert (await lab.get(path, headers=headers)).status_code == 404
    assert (await lab.get("/api/v1/webhooks", headers=headers)).json() == []
    actions = [
        "webhook:created",
        "webhook:updated",
        "webhook:secret_rotated",
        "webhook:deleted",
    ]
    for action in actions:
        assert await audit_events(tenant.id, action), action
    assert len(await audit_events(tenant.id, "webhook:updated")) == 2


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"url": "https://8.8.8.8/h", "events": ["grant.exploded"]}, 422, "events"),
        ({"url": "https://8.8.8.8/h", "events": []}, 422, "events"),
        ({"url": "ftp://8.8.8.8/h", "events": EVENTS}, 422, "url_scheme"),
        ({"url": "https://me:pw@8.8.8.8/h", "events": EVENTS}, 422, "url_credentials"),
        ({"url": "http://127.0.0.1:9/h", "events": EVENTS}, 422, "url_not_public"),
        ({"url": "http://169.254.169.254/", "events": EVENTS}, 422, "url_not_public"),
        (
            {"url": "https://nowhere.shiftgate-test.invalid/h", "events": EVENTS},
            422,
            "url_unresolvable",
        ),
        ({"url": "https://8.8.8.8/" + "a" * 2100, "events": EVENTS}, 422, "url_too_long"),
        ({"url": "https://8.8.8.8/h", "events": EVENTS, "secret": "mine"}, 400, None),
        ({"url": "https://8.8.8.8/h"}, 400, None),
        ({"url": 7, "events": EVENTS}, 400, None),
        ({"url": "https://8.8.8.8/h", "events": "grant.created"}, 400, None),
        ({"url": "https://8.8.8.8/h", "events": EVENTS, "description": "x" * 1001}, 400, None),
        (
            {"url": "https://8.8.8.8/h", "events": EVENTS, "description": "x" * 201},
            422,
            "description",
        ),
    ],
)
async def test_bad_input_is_a_problem_and_writes_nothing(client, body, status, code) -> None:
    _, headers = await _tenant_token()
    response = await client.post("/api/v1/webhooks", json=body, headers=headers)

    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert {"type", "title", "detail"} <= set(problem) and problem["detail"]
    if code is not None:
        assert problem["code"] == code
    if code == "events":
        assert problem["valid_events"] == [event.value for event in EventType]
    assert await WebhookEndpoint.count() == 0


async def test_bad_updates_and_bad_json_are_problems(lab, receiver) -> None:
    _, headers = await _tenant_token()
    path = f"/api/v1/webhooks/{(await _create(lab, headers, receiver.url()))['endpoint']['id']}"
    for body, status in (
        ({"status": "failing"}, 400),
        ({"status": "paused"}, 400),
        ({"events": ["nope"]}, 422),
        ({"url": "https://a:b@example.test/"}, 422),
        ({"id": str(uuid.uuid4())}, 400),
    ):
        response = await lab.patch(path, json=body, headers=headers)
        assert response.status_code == status, (body, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    broken = await lab.post(
        "/api/v1/webhooks",
        content=b'{"url": ',
        headers={**headers, "Content-Type": "application/json"},
    )
    assert broken.status_code == 400
    for bad in (
        await lab.get("/api/v1/webhooks/not-a-uuid", headers=headers),
        await lab.get(f"{path}/deliveries?limit=0", headers=headers),
        await lab.get(f"{path}/deliveries?limit=201", headers=headers),
    ):
        assert 400 <= bad.status_code < 500, bad.text
    assert (await lab.get(path, headers=headers)).json()["events"] == EVENTS


async def test_technicians_auditors_and_read_tokens_are_refused(client) -> None:
    tenant, headers = await _tenant_token(scopes=("read", "handoff", "audit"))
    some_id = uuid.uuid4()
    requests = [
        ("GET", "/api/v1/webhooks", None),
        ("POST", "/api/v1/webhooks", {"url": "https://8.8.8.8/h", "events": EVENTS}),
        ("GET", f"/api/v1/webhooks/{some_id}", None),
        ("PATCH", f"/api/v1/webhooks/{some_id}", {"status": "disabled"}),
        ("DELETE", f"/api/v1/webhooks/{some_id}", None),
        ("POST", f"/api/v1/webhooks/{some_id}/rotate-secret", None),
        ("GET", f"/api/v1/webhooks/{some_id}/deliveries", None),
        ("POST", f"/api/v1/webhooks/{some_id}/deliveries/{uuid.uuid4()}/resend", None),
    ]
    for method, path, body in requests:
        response = await client.request(method, path, json=body, headers=headers)
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["code"] == "permission_missing"
    for role in (Role.TECHNICIAN, Role.AUDITOR):
        await sign_in(client, await make_person(tenant, role))
        for method, path, body in requests:
            response = await client.request(method, path, json=body, headers=csrf_header(client))
            assert response.status_code == 403, (role, method, path, response.text)
    admin = await make_person(tenant, Role.ADMIN)
    await sign_in(client, admin)
    response = await client.get("/api/v1/webhooks", headers=csrf_header(client))
    assert response.status_code == 200 and response.json() == []
    assert await WebhookEndpoint.count() == 0


async def _deliver(http: AppClient, tenant: TenantInfo) -> webhooks.DeliveryReport:
    """An event for `tenant`, fanned out and posted as the worker would."""
    await emit((tenant.id,), EventType.GRANT_CREATED, {"grant_id": str(uuid.uuid4())})
    await webhooks.dispatch_outbox(datetime.now(UTC))
    sender = HttpxWebhookSender(timeout=5.0, allow_private=True)
    try:
        return await webhooks.deliver_due(http.app.state.keyring, sender, DatabaseClock())
    finally:
        await sender.aclose()


async def test_deliveries_are_listed_with_their_attempts_and_can_be_resent(lab, receiver) -> None:
    tenant, headers = await _tenant_token()
    created = await _create(lab, headers, receiver.url())
    path = f"/api/v1/webhooks/{created['endpoint']['id']}"
    assert (await _deliver(lab, tenant)).delivered == 1
    assert (await _deliver(lab, tenant)).delivered == 1

    response = await lab.get(f"{path}/deliveries?limit=1", headers=headers)
    assert response.status_code == 200, response.text
    [newest] = response.json()
    assert newest["event_id"] == receiver.requests[1].headers["shiftgate-event-id"]
    assert (newest["status"], newest["attempts"], newest["last_status_code"]) == (
        "delivered",
        1,
        200,
    )
    [attempt] = newest["history"]
    assert attempt["status_code"] == 200 and attempt["error"] is None
    assert set(attempt) == {"attempted_at", "status_code", "error", "duration_ms"}
    everything = (await lab.get(f"{path}/deliveries", headers=headers)).json()
    assert [row["event_id"] for row in everything] == [
        request.headers["shiftgate-event-id"] for request in reversed(receiver.requests)
    ]
    assert created["secret"] not in response.text

    resent = await lab.post(f"{path}/deliveries/{newest['id']}/resend", headers=headers)
    assert resent.status_code == 200, resent.text
    assert resent.json()["status"] == "pending" and resent.json()["delivered_at"] is None
    sender = HttpxWebhookSender(timeout=5.0, allow_private=True)
    try:
        report = await webhooks.deliver_due(lab.app.state.keyring, sender, DatabaseClock())
    finally:
        await sender.aclose()
    assert report.delivered == 1 and len(receiver.requests) == 3
    assert receiver.requests[2].body == receiver.requests[1].body
    missing = await lab.post(f"{path}/deliveries/{uuid.uuid4()}/resend", headers=headers)
    assert missing.status_code == 404
    assert len(await audit_events(tenant.id, "webhook:redelivered")) == 1


async def test_another_tenant_cannot_see_change_or_resend(lab, receiver) -> None:
    victim, victim_headers = await _tenant_token()
    created = await _create(lab, victim_headers, receiver.url())
    endpoint_id = created["endpoint"]["id"]
    await _deliver(lab, victim)
    [delivery] = await WebhookDelivery.select(WebhookDelivery.id)
    before = await WebhookEndpoint.select().where(WebhookEndpoint.id == endpoint_id).first()
    _, outsider = await _tenant_token("noc")
    own = await _create(lab, outsider, receiver.url("/outsider"))
    path = f"/api/v1/webhooks/{endpoint_id}"

    listed = await lab.get("/api/v1/webhooks", headers=outsider)
    assert [row["id"] for row in listed.json()] == [own["endpoint"]["id"]]
    for method, target, body in (
        ("GET", path, None),
        ("PATCH", path, {"status": "disabled", "url": receiver.url("/stolen")}),
        ("DELETE", path, None),
        ("POST", f"{path}/rotate-secret", None),
        ("GET", f"{path}/deliveries", None),
        ("POST", f"{path}/deliveries/{delivery['id']}/resend", None),
        # the outsider's own endpoint does not open the victim's delivery either
        (
            "POST",
            f"/api/v1/webhooks/{own['endpoint']['id']}/deliveries/{delivery['id']}/resend",
            None,
        ),
    ):
        response = await lab.request(method, target, json=body, headers=outsider)
        assert response.status_code == 404, (method, target, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert endpoint_id not in response.text and str(delivery["id"]) not in response.text

    after = await WebhookEndpoint.select().where(WebhookEndpoint.id == endpoint_id).first()
    assert after == before
    [still] = await WebhookDelivery.select().where(WebhookDelivery.id == delivery["id"])
    assert still["status"] == "delivered"
