"""Webhooks on the real database, posted over real HTTP to a receiver on 127.0.0.1: endpoints and
their sealed secrets, the address guard, fan-out, signatures, retries and giving up, leases."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import secrets
import ssl
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.webhook_sender import HttpxWebhookSender
from sharing import keys, webhooks
from sharing.clock import ManualClock
from sharing.events import EventType, emit
from sharing.sealed import open_text
from sharing.tables import OutboxEvent, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from sharing.webhooks import DeliveryStatus, EndpointStatus
from tenants.errors import Conflict, Forbidden, Invalid, NotFound
from tenants.keyring import KeyRing
from tenants.roles import Actor, ActorKind, Role, TokenScope
from tenants.root_key import EnvRootKey
from tenants.service import TenantInfo
from tests.helpers import audit_events, make_tenant
from tests.webhook_receiver import HANG, Receiver, receiving

START = datetime.now(UTC).replace(microsecond=0)
VECTOR_SECRET = "whsec_test-vector-secret-not-for-production-use"
VECTOR_TIMESTAMP = 1795842197  # 2026-11-28T05:03:17Z
VECTOR_BODY = b'{"hello":"world"}'
VECTOR_SIGNATURE = (
    "t=1795842197,v1=d66bb389642dbedc159a323ae5c613c30e30257429507330275200ff4e33e85c"
)


def admin_of(tenant: TenantInfo, role: Role = Role.ADMIN) -> Actor:
    return Actor(
        kind=ActorKind.USER,
        id=uuid.uuid4(),
        label=f"{role.value}@{tenant.slug}",
        tenant_id=tenant.id,
        tenant_kind=tenant.kind,
        role=role,
    )


@pytest.fixture
def keyring() -> KeyRing:
    return KeyRing(EnvRootKey(base64.b64encode(secrets.token_bytes(32)).decode()))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with receiving() as running:
        yield running


@pytest.fixture
async def sender() -> AsyncIterator[HttpxWebhookSender]:
    made = HttpxWebhookSender(timeout=2.0, allow_private=True)
    yield made
    await made.aclose()


async def _endpoint(
    keyring: KeyRing,
    actor: Actor,
    url: str,
    events: tuple[str, ...] = ("grant.created",),
) -> webhooks.WebhookIssued:
    return await webhooks.create_endpoint(
        actor, keyring, url=url, events=events, description="NOC pager", allow_private=True
    )


async def _emit(tenants: tuple[TenantInfo, ...], event: EventType = EventType.GRANT_CREATED) -> str:
    """Emit `event` for `tenants`; its event id."""
    await emit(tuple(tenant.id for tenant in tenants), event, {"grant_id": str(uuid.uuid4())})
    row = (
        await OutboxEvent.select()
        .order_by(OutboxEvent.created_at, ascending=False)
        .first()
        .output(load_json=True)
    )
    return str(row["payload"]["event_id"])


async def _deliveries(endpoint_id: uuid.UUID) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = await WebhookDelivery.select().where(
        WebhookDelivery.endpoint_id == endpoint_id
    )
    return rows


async def _one_delivery(endpoint_id: uuid.UUID) -> dict[str, Any]:
    rows = await _deliveries(endpoint_id)
    assert len(rows) == 1
    return rows[0]


# --- Secrets, views, permissions --------------------------------------------------------------


async def test_the_secret_is_shown_once_and_stored_sealed(db, keyring, receiver) -> None:
    tenant = await make_tenant()
    actor = admin_of(tenant)
    issued = await _endpoint(keyring, actor, receiver.url(), ("grant.revoked", "grant.created"))

    assert issued.secret.startswith("whsec_") and len(issued.secret) >= 6 + 43
    assert issued.endpoint.events == ["grant.created", "grant.revoked"]
    assert issued.endpoint.status is EndpointStatus.ACTIVE
    for view in (
        *await webhooks.list_endpoints(actor),
        await webhooks.get_endpoint(actor, issued.endpoint.id),
    ):
        assert not any("secret" in field for field in view.__struct_fields__)
        assert issued.secret not in repr(view)
    row = await WebhookEndpoint.select().where(WebhookEndpoint.id == issued.endpoint.id).first()
    stored = b"".join(
        value if isinstance(value, bytes) else str(value).encode() for value in row.values()
    )
    assert issued.secret.encode() not in stored
    assert issued.secret.split("_", 1)[1].encode() not in stored
    opened = await open_text(
        keyring,
        tenant.id,
        "webhook",
        row["id"],
        bytes(row["wrapped_dek"]),
        bytes(row["secret_sealed"]),
    )
    assert opened == issued.secret
    [event] = await audit_events(tenant.id, "webhook:created")
    assert event["target_id"] == str(issued.endpoint.id)
    assert event["context"]["origin"] == f"http://127.0.0.1:{receiver.port}"
    assert "/hook" not in json.dumps(
        event, default=str
    )  # paths may carry the receiver's own tokens

    rotated = await webhooks.rotate_secret(actor, keyring, issued.endpoint.id)
    assert rotated.secret != issued.secret and rotated.secret.startswith("whsec_")
    assert len(await audit_events(tenant.id, "webhook:secret_rotated")) == 1


async def test_only_admins_and_write_tokens_manage_webhooks(db, keyring, receiver) -> None:
    tenant = await make_tenant()
    for role in (Role.TECHNICIAN, Role.AUDITOR):
        with pytest.raises(Forbidden):
            await _endpoint(keyring, admin_of(tenant, role), receiver.url())
        with pytest.raises(Forbidden):
            await webhooks.list_endpoints(admin_of(tenant, role))
    token = Actor(
        kind=ActorKind.API_TOKEN,
        id=uuid.uuid4(),
        label="ci token",
        tenant_id=tenant.id,
        tenant_kind=tenant.kind,
        scopes=frozenset({TokenScope.WRITE}),
    )
    assert (await _endpoint(keyring, token, receiver.url())).endpoint.created_by == "ci token"
    reader = Actor(
        kind=ActorKind.API_TOKEN,
        id=uuid.uuid4(),
        label="reader",
        tenant_id=tenant.id,
        scopes=frozenset({TokenScope.READ, TokenScope.HANDOFF, TokenScope.AUDIT}),
    )
    with pytest.raises(Forbidden):
        await webhooks.list_endpoints(reader)


async def test_unknown_or_missing_event_names_are_refused_with_the_valid_ones(
    db, keyring, receiver
) -> None:
    actor = admin_of(await make_tenant())
    with pytest.raises(Invalid) as refused:
        await _endpoint(keyring, actor, receiver.url(), ("grant.created", "grant.exploded"))
    assert "grant.exploded" in refused.value.detail
    assert refused.value.extra["valid_events"] == [event.value for event in EventType]
    for events in ((), ("*",)):
        with pytest.raises(Invalid):
            await _endpoint(keyring, actor, receiver.url(), events)
    assert await WebhookEndpoint.count() == 0


# --- The address guard ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("ftp://example.test/hook", "url_scheme"),
        ("javascript:alert(1)", "url_scheme"),
        ("https://user:pw@hooks.example.test/x", "url_credentials"),
        ("https://token@hooks.example.test/x", "url_credentials"),
        ("https:///no-host", "url_host"),
        ("https://hooks.example.test/a b", "url_malformed"),
        ("https://[::1/x", "url_malformed"),
        ("https://hooks.example.test/" + "a" * 2048, "url_too_long"),
        ("https://no-such-host.shiftgate-test.invalid/hook", "url_unresolvable"),
        ("http://127.0.0.1:8080/hook", "url_not_public"),
        ("http://localhost/hook", "url_not_public"),
        ("http://2130706433/hook", "url_not_public"),  # 127.0.0.1 written as a number
        ("http://10.1.2.3/hook", "url_not_public"),
        ("http://192.168.0.10/hook", "url_not_public"),
        ("http://169.254.169.254/latest/meta-data", "url_not_public"),
        ("http://100.64.0.1/hook", "url_not_public"),
        ("http://0.0.0.0/hook", "url_not_public"),
        ("http://224.0.0.1/hook", "url_not_public"),
        ("http://[::1]/hook", "url_not_public"),
        ("http://[::ffff:127.0.0.1]/hook", "url_not_public"),
        ("http://[::ffff:10.0.0.1]/hook", "url_not_public"),
        ("http://[fe80::1]/hook", "url_not_public"),
        ("http://[fd00::1]/hook", "url_not_public"),
        ("http://[2002:7f00:1::]/hook", "url_not_public"),  # 6to4 around 127.0.0.1
        ("http://[64:ff9b::a00:1]/hook", "url_not_public"),  # NAT64 around 10.0.0.1
    ],
)
async def test_urls_that_are_refused(url: str, code: str) -> None:
    with pytest.raises(Invalid) as refused:
        await webhooks.check_url(url, allow_private=False)
    assert refused.value.code == code
    assert refused.value.detail


async def test_public_addresses_pass_and_allow_private_opens_only_the_address_check() -> None:
    assert await webhooks.check_url("https://8.8.8.8/hook?k=1", allow_private=False)
    assert await webhooks.check_url("https://[2606:4700::1111]/h", allow_private=False)
    assert await webhooks.check_url("http://127.0.0.1:9/hook", allow_private=True)
    assert await webhooks.check_url("http://localhost/hook", allow_private=True)
    for url in ("https://u:p@127.0.0.1/", "https://no-such-host.shiftgate-test.invalid/"):
        with pytest.raises(Invalid):
            await webhooks.check_url(url, allow_private=True)


async def test_a_private_address_is_refused_at_create_time(db, keyring, receiver) -> None:
    actor = admin_of(await make_tenant())
    with pytest.raises(Invalid) as refused:
        await webhooks.create_endpoint(
            actor, keyring, url=receiver.url(), events=["grant.created"], allow_private=False
        )
    assert refused.value.code == "url_not_public"
    assert "127.0.0.1" in refused.value.detail
    assert await WebhookEndpoint.count() == 0


async def test_a_private_address_is_refused_again_at_send_time(
    db, keyring, clock, receiver
) -> None:
    tenant = await make_tenant()
    issued = await _endpoint(keyring, admin_of(tenant), receiver.url())
    await _emit((tenant,))
    await webhooks.dispatch_outbox(await clock.now())
    strict = HttpxWebhookSender(timeout=2.0, allow_private=False)
    try:
        report = await webhooks.deliver_due(keyring, strict, clock)
    finally:
        await strict.aclose()

    assert (report.delivered, report.failed) == (0, 1)
    assert receiver.requests == []
    delivery = await _one_delivery(issued.endpoint.id)
    assert delivery["status"] == "pending" and delivery["last_status_code"] is None
    assert delivery["last_error"].startswith("refused: ")
    assert "loopback address" in delivery["last_error"]


def _self_signed(directory: Path) -> ssl.SSLContext:
    """A TLS server context with a self-signed certificate for `localhost`."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    (directory / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "cert.pem", directory / "key.pem")
    return context


async def test_https_goes_to_the_checked_address_by_name_and_verifies_the_certificate(
    tmp_path: Path, sender
) -> None:
    context = _self_signed(tmp_path)
    named: list[str | None] = []
    context.sni_callback = lambda _socket, name, _context: named.append(name)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(webhooks.WebhookSendError) as refused:
            await sender.post(f"https://localhost:{port}/hook", b"{}", {})
    finally:
        server.close()
        await server.wait_closed()
    # connected to 127.0.0.1 (what the check resolved), named `localhost` for TLS, and the
    # self-signed certificate was refused
    assert named == ["localhost"]
    assert "CERTIFICATE_VERIFY_FAILED" in refused.value.message


# --- Fan-out ----------------------------------------------------------------------------------


async def test_dispatch_makes_one_delivery_per_subscribed_endpoint_once(
    db, keyring, clock, receiver
) -> None:
    msp, noc, stranger = await make_tenant(), await make_tenant("noc"), await make_tenant()
    grants = await _endpoint(
        keyring, admin_of(msp), receiver.url("/msp"), ("grant.created", "grant.revoked")
    )
    notes = await _endpoint(keyring, admin_of(msp), receiver.url("/notes"), ("notes.posted",))
    off = await _endpoint(keyring, admin_of(msp), receiver.url("/off"))
    await webhooks.update_endpoint(admin_of(msp), off.endpoint.id, status=EndpointStatus.DISABLED)
    at_noc = await _endpoint(keyring, admin_of(noc), receiver.url("/noc"))
    elsewhere = await _endpoint(keyring, admin_of(stranger), receiver.url("/stranger"))

    shared_id = await _emit((msp, noc))
    await _emit((msp,), EventType.GRANT_EXPIRED)  # nobody subscribed to it
    now = await clock.now()
    first, second = await asyncio.gather(
        webhooks.dispatch_outbox(now), webhooks.dispatch_outbox(now)
    )
    assert first + second == 3
    assert await webhooks.dispatch_outbox(now) == 0

    msp_copy = await _one_delivery(grants.endpoint.id)
    noc_copy = await _one_delivery(at_noc.endpoint.id)
    assert str(msp_copy["event_id"]) == str(noc_copy["event_id"]) == shared_id
    assert (msp_copy["tenant_id"], noc_copy["tenant_id"]) == (msp.id, noc.id)
    assert msp_copy["status"] == "pending" and msp_copy["next_attempt_at"] == now
    for endpoint in (notes, off, elsewhere):
        assert await _deliveries(endpoint.endpoint.id) == []
    assert await WebhookDelivery.count() == 2
    assert await OutboxEvent.count().where(OutboxEvent.dispatched_at.is_null()) == 0

    await _emit((msp,))  # a later event is dispatched on its own
    assert await webhooks.dispatch_outbox(now) == 1
    assert len(await _deliveries(grants.endpoint.id)) == 2


# --- Delivery and signatures ------------------------------------------------------------------


async def test_a_delivery_arrives_signed(db, keyring, clock, receiver, sender) -> None:
    tenant = await make_tenant()
    issued = await _endpoint(keyring, admin_of(tenant), receiver.url())
    event_id = await _emit((tenant,))
    outbox = (
        await OutboxEvent.select()
        .where(OutboxEvent.tenant_id == tenant.id)
        .first()
        .output(load_json=True)
    )
    await webhooks.dispatch_outbox(await clock.now())

    report = await webhooks.deliver_due(keyring, sender, clock)

    assert (report.claimed, report.delivered, report.failed, report.given_up) == (1, 1, 0, 0)
    [request] = receiver.requests
    delivery = await _one_delivery(issued.endpoint.id)
    assert request.method == "POST" and request.path == "/hook"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "Shiftgate-Webhooks/1"
    assert request.headers["shiftgate-event-id"] == event_id
    assert request.headers["shiftgate-event-type"] == "grant.created"
    assert request.headers["shiftgate-delivery-id"] == str(delivery["id"])
    assert request.headers["host"] == f"127.0.0.1:{receiver.port}"
    body = json.loads(request.body)
    assert body == {
        "id": event_id,
        "type": "grant.created",
        "created_at": outbox["created_at"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "tenant_id": str(tenant.id),
        "data": {"grant_id": outbox["payload"]["grant_id"]},
    }
    assert request.body == json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    header = request.headers["shiftgate-signature"]
    timestamp = int(START.timestamp())
    expected = hmac.new(
        issued.secret.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256
    ).hexdigest()
    assert header == f"t={timestamp},v1={expected}"
    assert webhooks.verify_signature(issued.secret, header, request.body, now=START)
    assert not webhooks.verify_signature(issued.secret, header, request.body + b" ", now=START)
    assert not webhooks.verify_signature("whsec_other", header, request.body, now=START)

    assert delivery["status"] == "delivered" and delivery["delivered_at"] == START
    assert (delivery["attempts"], delivery["last_status_code"], delivery["lease_until"]) == (
        1,
        200,
        None,
    )
    [attempt] = await WebhookAttempt.select().where(WebhookAttempt.delivery_id == delivery["id"])
    assert (attempt["status_code"], attempt["error"], attempt["attempted_at"]) == (200, None, START)
    assert 0 <= attempt["duration_ms"] < 2000
    assert await webhooks.deliver_due(keyring, sender, clock) == webhooks.DeliveryReport()
    assert await webhooks.next_delivery_due() is None


def test_signature_test_vectors() -> None:
    """The vectors printed in the README."""
    assert webhooks.sign(VECTOR_SECRET, VECTOR_TIMESTAMP, VECTOR_BODY) == VECTOR_SIGNATURE
    assert webhooks.verify_signature(
        VECTOR_SECRET, VECTOR_SIGNATURE, VECTOR_BODY, now=VECTOR_TIMESTAMP + 299
    )
    event_id = uuid.UUID("0b6f4c3e-8a52-4d51-9f7e-3c2b1a0d9e87")
    body = webhooks.delivery_body(
        event_id,
        "grant.created",
        datetime.fromtimestamp(VECTOR_TIMESTAMP, UTC),
        uuid.UUID("5d1c9a7e-2f43-4b8a-a6e1-7c0f3b2d4e19"),
        {
            "event_id": str(event_id),
            "grant_id": "a3e5f7c9-1b2d-4f6e-8a0c-2e4f6a8c0b1d",
            "ends_at": "2026-11-28T07:00:00+00:00",
        },
    )
    assert body == (
        b'{"created_at":"2026-11-28T05:03:17.000000Z","data":{"ends_at":"2026-11-28T07:00:00'
        b'+00:00","grant_id":"a3e5f7c9-1b2d-4f6e-8a0c-2e4f6a8c0b1d"},"id":"0b6f4c3e-8a52-4d51-'
        b'9f7e-3c2b1a0d9e87","tenant_id":"5d1c9a7e-2f43-4b8a-a6e1-7c0f3b2d4e19","type":'
        b'"grant.created"}'
    )
    assert webhooks.sign(VECTOR_SECRET, VECTOR_TIMESTAMP, body) == (
        "t=1795842197,v1=0897a69fb670a9822576edc262c69fd4d19ef9ee31076393375b6d6bdb74adb2"
    )


def test_replayed_or_forged_signatures_are_refused() -> None:
    at = VECTOR_TIMESTAMP
    verify = webhooks.verify_signature
    assert not verify(VECTOR_SECRET, VECTOR_SIGNATURE, VECTOR_BODY, now=at + 301)  # replayed
    assert not verify(VECTOR_SECRET, VECTOR_SIGNATURE, VECTOR_BODY, now=at - 301)  # from ahead
    assert verify(
        VECTOR_SECRET, VECTOR_SIGNATURE, VECTOR_BODY, now=datetime.fromtimestamp(at - 300, UTC)
    )
    mac = VECTOR_SIGNATURE.split("v1=")[1]
    # two v1 entries (a sender signing with an old and a new secret): either may match
    assert verify(VECTOR_SECRET, f"t={at},v1={'0' * 64},v1={mac}", VECTOR_BODY, now=at)
    assert verify(VECTOR_SECRET, f"v1={mac}, t={at}", VECTOR_BODY, now=at)
    for forged in (
        f"t={at + 1},v1={mac}",  # the timestamp is signed too
        f"t={at}",
        f"v1={mac}",
        f"t={at},t={at},v1={mac}",
        f"t=-{at},v1={mac}",
        f"t={at},v1={mac.upper()}",
        f"t={at},v0={mac}",
        "",
        "garbage",
    ):
        assert not verify(VECTOR_SECRET, forged, VECTOR_BODY, now=at), forged


async def test_a_receiver_failing_forever_is_retried_with_backoff_then_given_up(
    db, keyring, clock, sender
) -> None:
    tenant = await make_tenant()
    async with receiving(lambda _: 500) as failing:
        issued = await _endpoint(keyring, admin_of(tenant), failing.url())
        await _emit((tenant,))
        await webhooks.dispatch_outbox(await clock.now())
        delays: list[float] = []
        statuses: list[str] = []
        for _ in range(100):
            report = await webhooks.deliver_due(keyring, sender, clock)
            assert report.failed == 1
            delivery = await _one_delivery(issued.endpoint.id)
            endpoint = await webhooks.get_endpoint(admin_of(tenant), issued.endpoint.id)
            statuses.append(endpoint.status.value)
            if delivery["status"] == "failed":
                assert report.given_up == 1
                break
            assert delivery["lease_until"] is None
            assert (delivery["last_status_code"], delivery["last_error"]) == (
                500,
                "the receiver answered HTTP 500",
            )
            now = await clock.now()
            delays.append((delivery["next_attempt_at"] - now).total_seconds())
            assert await webhooks.next_delivery_due() == delivery["next_attempt_at"]
            clock.set(delivery["next_attempt_at"])

    attempts = await WebhookAttempt.select().where(WebhookAttempt.delivery_id == delivery["id"])
    assert len(attempts) == len(failing.requests) == delivery["attempts"] == len(delays) + 1
    assert {attempt["status_code"] for attempt in attempts} == {500}
    # 30 s doubling (each between half and all of it), at most an hour
    for number, delay in enumerate(delays, start=1):
        ceiling = min(30 * 2 ** (number - 1), 3600)
        assert ceiling / 2 <= delay <= ceiling, (number, delay)
    assert all(later >= earlier for earlier, later in itertools.pairwise(delays[:7]))
    # failing from the fifth failure in a row on, and given up within a day
    assert statuses[:4] == ["active"] * 4 and set(statuses[4:]) == {"failing"}
    assert max(attempt["attempted_at"] for attempt in attempts) <= START + timedelta(hours=24)
    assert await clock.now() > START + timedelta(hours=22)
    assert delivery["status"] == "failed" and await webhooks.next_delivery_due() is None
    endpoint = await webhooks.get_endpoint(admin_of(tenant), issued.endpoint.id)
    assert endpoint.consecutive_failures == len(attempts)

    # the receiver comes back: a resend is delivered and the endpoint recovers
    async with receiving() as healthy:
        await webhooks.update_endpoint(
            admin_of(tenant), issued.endpoint.id, url=healthy.url(), allow_private=True
        )
        await webhooks.resend(admin_of(tenant), clock, delivery["id"])
        report = await webhooks.deliver_due(keyring, sender, clock)
        assert report.delivered == 1 and len(healthy.requests) == 1
    endpoint = await webhooks.get_endpoint(admin_of(tenant), issued.endpoint.id)
    assert (endpoint.status, endpoint.consecutive_failures) == (EndpointStatus.ACTIVE, 0)


async def test_a_hanging_receiver_is_cut_at_the_timeout_and_holds_up_no_other(
    db, keyring, clock, sender
) -> None:
    tenant = await make_tenant()
    async with receiving(lambda _: HANG) as hanging, receiving() as healthy:
        slow = await _endpoint(keyring, admin_of(tenant), hanging.url())
        fast = await _endpoint(keyring, admin_of(tenant), healthy.url())
        await _emit((tenant,))
        await webhooks.dispatch_outbox(await clock.now())
        started = time.monotonic()
        run = asyncio.create_task(webhooks.deliver_due(keyring, sender, clock))
        await hanging.wait_for(1)
        await healthy.wait_for(1)
        for _ in range(100):  # the healthy one is recorded while the other still hangs
            if (await _one_delivery(fast.endpoint.id))["status"] == "delivered":
                break
            await asyncio.sleep(0.02)
        assert not run.done()
        assert (await _one_delivery(fast.endpoint.id))["status"] == "delivered"
        report = await run
        elapsed = time.monotonic() - started

    assert (report.delivered, report.failed) == (1, 1)
    assert 1.9 <= elapsed < 6
    delivery = await _one_delivery(slow.endpoint.id)
    assert delivery["status"] == "pending"
    assert delivery["last_error"] == "no answer within 2 seconds"
    [attempt] = await WebhookAttempt.select().where(WebhookAttempt.delivery_id == delivery["id"])
    assert attempt["status_code"] is None and 1900 <= attempt["duration_ms"] < 6000


async def test_a_claimed_delivery_is_posted_again_once_its_lease_has_passed(
    db, keyring, clock, sender
) -> None:
    tenant = await make_tenant()
    answers = iter([HANG, 200])
    async with receiving(lambda _: next(answers)) as flaky:
        issued = await _endpoint(keyring, admin_of(tenant), flaky.url())
        event_id = await _emit((tenant,))
        await webhooks.dispatch_outbox(await clock.now())
        dying = asyncio.create_task(webhooks.deliver_due(keyring, sender, clock))
        await flaky.wait_for(1)
        dying.cancel()  # the worker dies while posting
        with pytest.raises(asyncio.CancelledError):
            await dying

        claimed = await _one_delivery(issued.endpoint.id)
        assert claimed["status"] == "pending" and claimed["attempts"] == 0
        assert claimed["lease_until"] == START + timedelta(seconds=60)
        assert await webhooks.next_delivery_due() == claimed["lease_until"]
        assert (await webhooks.deliver_due(keyring, sender, clock)).claimed == 0  # leased
        clock.advance(timedelta(seconds=61))
        report = await webhooks.deliver_due(keyring, sender, clock)

    assert report.delivered == 1
    first, second = flaky.requests
    assert first.headers["shiftgate-event-id"] == second.headers["shiftgate-event-id"] == event_id
    assert first.body == second.body
    assert (await _one_delivery(issued.endpoint.id))["status"] == "delivered"


async def test_a_delivery_taken_over_while_queued_is_not_posted_twice(
    db, keyring, clock, sender
) -> None:
    slow_tenant, tenant = await make_tenant(), await make_tenant()
    async with receiving(lambda _: HANG) as hanging, receiving() as healthy:
        await _endpoint(keyring, admin_of(slow_tenant), hanging.url())
        fast = await _endpoint(keyring, admin_of(tenant), healthy.url())
        await _emit((slow_tenant,))
        await webhooks.dispatch_outbox(await clock.now())
        clock.advance(timedelta(seconds=1))
        await _emit((tenant,))
        await webhooks.dispatch_outbox(await clock.now())
        # one slot: the healthy delivery waits behind the hanging one ...
        first = asyncio.create_task(webhooks.deliver_due(keyring, sender, clock, concurrency=1))
        await hanging.wait_for(1)
        # ... long enough for its lease to pass and another run to deliver it
        clock.advance(timedelta(seconds=61))
        second = await webhooks.deliver_due(keyring, sender, clock)
        report = await first

    assert second.delivered == 1
    assert (report.claimed, report.delivered, report.failed) == (2, 0, 1)
    assert len(healthy.requests) == 1
    assert (await _one_delivery(fast.endpoint.id))["attempts"] == 1


async def test_resend_posts_a_delivered_event_again(db, keyring, clock, receiver, sender) -> None:
    tenant, other = await make_tenant(), await make_tenant()
    issued = await _endpoint(keyring, admin_of(tenant), receiver.url())
    await _emit((tenant,))
    await webhooks.dispatch_outbox(await clock.now())
    await webhooks.deliver_due(keyring, sender, clock)
    delivery = await _one_delivery(issued.endpoint.id)

    for outsider in (admin_of(other),):
        with pytest.raises(NotFound):
            await webhooks.resend(outsider, clock, delivery["id"])
        with pytest.raises(NotFound):
            await webhooks.list_deliveries(outsider, issued.endpoint.id)
    with pytest.raises(NotFound):
        await webhooks.resend(admin_of(tenant), clock, delivery["id"], endpoint_id=uuid.uuid4())
    clock.advance(timedelta(minutes=5))
    view = await webhooks.resend(admin_of(tenant), clock, delivery["id"])
    assert view.status is DeliveryStatus.PENDING and view.next_attempt_at == await clock.now()
    assert view.delivered_at is None and len(view.history) == 1
    assert len(await audit_events(tenant.id, "webhook:redelivered")) == 1
    assert (await webhooks.deliver_due(keyring, sender, clock)).delivered == 1
    first, second = receiver.requests
    assert first.body == second.body
    assert first.headers["shiftgate-signature"] != second.headers["shiftgate-signature"]

    [listed] = await webhooks.list_deliveries(admin_of(tenant), issued.endpoint.id)
    assert listed.status is DeliveryStatus.DELIVERED and listed.attempts == 2
    assert [attempt.status_code for attempt in listed.history] == [200, 200]


async def test_disabling_fails_pending_deliveries_and_enabling_starts_afresh(
    db, keyring, clock, receiver, sender
) -> None:
    tenant = await make_tenant()
    actor = admin_of(tenant)
    issued = await _endpoint(keyring, actor, receiver.url())
    await _emit((tenant,))
    await webhooks.dispatch_outbox(await clock.now())
    await WebhookEndpoint.update(
        {WebhookEndpoint.consecutive_failures: 7, WebhookEndpoint.status: "failing"}
    ).where(WebhookEndpoint.id == issued.endpoint.id)

    disabled = await webhooks.update_endpoint(
        actor, issued.endpoint.id, status=EndpointStatus.DISABLED
    )
    assert disabled.status is EndpointStatus.DISABLED
    delivery = await _one_delivery(issued.endpoint.id)
    assert (delivery["status"], delivery["last_error"]) == ("failed", "the endpoint was disabled")
    with pytest.raises(Conflict):
        await webhooks.resend(actor, clock, delivery["id"])
    await _emit((tenant,))
    await webhooks.dispatch_outbox(await clock.now())
    assert len(await _deliveries(issued.endpoint.id)) == 1  # nothing for a disabled endpoint
    assert (await webhooks.deliver_due(keyring, sender, clock)).claimed == 0
    assert receiver.requests == []

    enabled = await webhooks.update_endpoint(
        actor,
        issued.endpoint.id,
        status=EndpointStatus.ACTIVE,
        events=["grant.created", "notes.posted"],
        description=" pager ",
    )
    assert (enabled.status, enabled.consecutive_failures) == (EndpointStatus.ACTIVE, 0)
    assert (enabled.events, enabled.description) == (["grant.created", "notes.posted"], "pager")
    with pytest.raises(Invalid):
        await webhooks.update_endpoint(actor, issued.endpoint.id, status=EndpointStatus.FAILING)
    with pytest.raises(Invalid):
        await webhooks.update_endpoint(
            actor, issued.endpoint.id, url="http://10.0.0.1/", allow_private=False
        )
    assert len(await audit_events(tenant.id, "webhook:updated")) == 2


async def test_delete_removes_the_endpoint_and_its_history_even_mid_delivery(
    db, keyring, clock, sender
) -> None:
    tenant = await make_tenant()
    actor = admin_of(tenant)
    async with receiving(lambda _: HANG) as receiver:
        issued = await _endpoint(keyring, actor, receiver.url())
        await _emit((tenant,))
        await webhooks.dispatch_outbox(await clock.now())
        run = asyncio.create_task(webhooks.deliver_due(keyring, sender, clock))
        await receiver.wait_for(1)
        await webhooks.delete_endpoint(actor, issued.endpoint.id)
        report = await run  # the post times out; the endpoint is gone by then
    assert (report.claimed, report.delivered, report.failed) == (1, 0, 0)
    assert await WebhookEndpoint.count() == 0
    assert await WebhookDelivery.count() == 0 and await WebhookAttempt.count() == 0
    [event] = await audit_events(tenant.id, "webhook:deleted")
    assert event["context"]["deliveries_deleted"] == "1"
    with pytest.raises(NotFound):
        await webhooks.get_endpoint(actor, issued.endpoint.id)
    with pytest.raises(NotFound):
        await webhooks.delete_endpoint(actor, issued.endpoint.id)


async def test_a_deleted_tenants_endpoints_are_disabled(db, keyring, clock, receiver) -> None:
    tenant, neighbour = await make_tenant(), await make_tenant()
    gone = await _endpoint(keyring, admin_of(tenant), receiver.url())
    kept = await _endpoint(keyring, admin_of(neighbour), receiver.url())
    await _emit((tenant, neighbour))
    await webhooks.dispatch_outbox(await clock.now())

    await keys.delete_tenant(keyring, tenant, actor=Actor.system("test"))

    row = await WebhookEndpoint.select().where(WebhookEndpoint.id == gone.endpoint.id).first()
    assert row["status"] == "disabled"
    assert (await _one_delivery(gone.endpoint.id))["status"] == "failed"
    assert (await _one_delivery(kept.endpoint.id))["status"] == "pending"
    assert (
        await webhooks.get_endpoint(admin_of(neighbour), kept.endpoint.id)
    ).status is EndpointStatus.ACTIVE


@pytest.mark.pg
async def test_concurrent_workers_never_post_one_delivery_twice(
    db, keyring, clock, receiver
) -> None:
    """PostgreSQL: claims skip rows another transaction holds (`FOR UPDATE SKIP LOCKED`)."""
    tenant = await make_tenant()
    await _endpoint(keyring, admin_of(tenant), receiver.url())
    for _ in range(30):
        await _emit((tenant,))
    now = await clock.now()
    dispatched = await asyncio.gather(*(webhooks.dispatch_outbox(now, limit=7) for _ in range(4)))
    while sum(dispatched) < 30:
        dispatched.append(await webhooks.dispatch_outbox(now, limit=7))
    assert await WebhookDelivery.count() == 30
    senders = [HttpxWebhookSender(timeout=2.0, allow_private=True) for _ in range(3)]
    try:
        reports = await asyncio.gather(
            *(webhooks.deliver_due(keyring, s, clock, limit=10) for s in senders)
        )
        while sum(report.delivered for report in reports) < 30:
            reports.append(await webhooks.deliver_due(keyring, senders[0], clock))
    finally:
        for made in senders:
            await made.aclose()
    ids = [request.headers["shiftgate-delivery-id"] for request in receiver.requests]
    assert len(ids) == len(set(ids)) == 30
