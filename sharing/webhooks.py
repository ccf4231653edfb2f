"""Webhooks: the endpoints where tenants want their events, the fan-out of outbox rows into
deliveries, and signed delivery with retries.

Delivery is at least once: a worker that dies after claiming a delivery leaves a lease that runs
out, and a later run posts it again. Receivers drop duplicates by the event id.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import hmac
import ipaddress
import logging
import secrets
import socket
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

import msgspec
from piccolo.engine.postgres import PostgresEngine

from sharing.audit import AuditAction, RequestMeta, Severity, record
from sharing.clock import Clock
from sharing.events import EventType
from sharing.sealed import open_text, seal_text
from sharing.tables import OutboxEvent, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tenants.db import write_transaction
from tenants.errors import Conflict, DomainError, Invalid, NotFound
from tenants.keyring import KeyRing
from tenants.roles import Actor, Permission

__all__ = [
    "EVENT_TYPES",
    "FAILING_AFTER",
    "GIVE_UP_AFTER",
    "MAX_ENDPOINTS",
    "SIGNATURE_HEADER",
    "SIGNATURE_TOLERANCE_SECONDS",
    "USER_AGENT",
    "AttemptView",
    "DeliveryReport",
    "DeliveryStatus",
    "DeliveryView",
    "EndpointStatus",
    "ResolvedUrl",
    "WebhookIssued",
    "WebhookSendError",
    "WebhookSender",
    "WebhookView",
    "check_url",
    "create_endpoint",
    "delete_endpoint",
    "deliver_due",
    "delivery_body",
    "disable_tenant_endpoints",
    "dispatch_outbox",
    "get_endpoint",
    "list_deliveries",
    "list_endpoints",
    "next_delivery_due",
    "resend",
    "resolve_url",
    "retry_delay",
    "rotate_secret",
    "sign",
    "update_endpoint",
    "verify_signature",
]

_log = logging.getLogger("shiftgate.webhooks")

EVENT_TYPES: tuple[str, ...] = tuple(event.value for event in EventType)
SIGNATURE_HEADER = "Shiftgate-Signature"
SIGNATURE_TOLERANCE_SECONDS = 300
USER_AGENT = "Shiftgate-Webhooks/1"
MAX_URL_CHARS = 2048
MAX_DESCRIPTION_CHARS = 200
MAX_ENDPOINTS = 20
"""Per tenant: every endpoint multiplies the posts one event costs."""
FAILING_AFTER = 5
"""Consecutive failed attempts after which an endpoint shows as `failing`."""
FIRST_RETRY = timedelta(seconds=30)
LONGEST_RETRY = timedelta(hours=1)
GIVE_UP_AFTER = timedelta(hours=24)
_SECRET_PREFIX = "whsec_"
_ERROR_CHARS = 200
_RESOLVE_SECONDS = 10.0
_NO_REQUEST = RequestMeta()
_random = secrets.SystemRandom()


class EndpointStatus(enum.StrEnum):
    ACTIVE = "active"
    FAILING = "failing"  # still posted to: the receiver may come back
    DISABLED = "disabled"


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class WebhookSendError(Exception):
    """A post that got no HTTP answer: network error, refused address, timeout."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@runtime_checkable
class WebhookSender(Protocol):
    """Posts one signed body; returns the HTTP status or raises `WebhookSendError`."""

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int: ...


class WebhookView(msgspec.Struct, frozen=True):
    """An endpoint as its tenant sees it; the signing secret is never part of it."""

    id: uuid.UUID
    url: str
    description: str
    events: list[str]
    status: EndpointStatus
    consecutive_failures: int
    created_by: str
    created_at: datetime
    updated_at: datetime


class WebhookIssued(msgspec.Struct, frozen=True):
    """`secret` is shown here once (on creation and rotation); it is kept sealed."""

    endpoint: WebhookView
    secret: str


class AttemptView(msgspec.Struct, frozen=True):
    attempted_at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


class DeliveryView(msgspec.Struct, frozen=True):
    """One event for one endpoint; `history` lists its attempts, oldest first."""

    id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    history: list[AttemptView]


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What one `deliver_due` run did: deliveries claimed, attempts answered 2xx (`delivered`)
    and attempts that were not (`failed`), and deliveries that will not be tried again
    (`given_up`: after their last failed attempt, or their endpoint was disabled meanwhile)."""

    claimed: int = 0
    delivered: int = 0
    failed: int = 0
    given_up: int = 0


# --- URLs and the guard against requests into private networks ---------------------------


@dataclass(frozen=True, slots=True)
class ResolvedUrl:
    """A webhook URL that passed the checks, and the addresses its host resolved to."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]


def _shape(url: str) -> tuple[str, str, int]:
    """Scheme, host and port of a well-formed http(s) URL without credentials."""
    if len(url) > MAX_URL_CHARS:
        raise Invalid(f"the URL is longer than {MAX_URL_CHARS} characters", code="url_too_long")
    if any(ord(char) <= 0x20 or ord(char) == 0x7F for char in url) or "\\" in url:
        raise Invalid(
            "the URL contains spaces, control characters or backslashes", code="url_malformed"
        )
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError:
        raise Invalid("the URL is malformed", code="url_malformed") from None
    scheme = parts.scheme.lower()
    if scheme not in {"http", "https"}:
        raise Invalid("the URL must start with https:// (or http://)", code="url_scheme")
    if "@" in parts.netloc:
        raise Invalid(
            "the URL must not carry credentials (user:password@host): receivers authenticate "
            "deliveries by their signature",
            code="url_credentials",
        )
    if not host:
        raise Invalid("the URL has no host", code="url_host")
    if port == 0:
        raise Invalid("the URL's port must be 1 to 65535", code="url_malformed")
    return scheme, host, port or (443 if scheme == "https" else 80)


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _not_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why `address` is not a public unicast address, or None when it is one."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return _not_public(address.ipv4_mapped)
        embedded = address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and (reason := _not_public(embedded)):
            return reason
    checks = (
        (address.is_loopback, "loopback"),
        (address.is_unspecified, "unspecified"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (address.is_private, "private"),
        (address.is_reserved, "reserved"),
        (not address.is_global, "non-public"),
    )
    return next((reason for failed, reason in checks if failed), None)


async def _addresses(host: str, port: int) -> tuple[str, ...]:
    try:
        return (str(ipaddress.ip_address(host)),)
    except ValueError:
        pass  # a name, not an address literal
    try:
        async with asyncio.timeout(_RESOLVE_SECONDS):
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
    except TimeoutError:
        raise Invalid(
            f"the host {host} did not resolve within {_RESOLVE_SECONDS:g} seconds",
            code="url_unresolvable",
        ) from None
    except (OSError, UnicodeError):
        raise Invalid(f"the host {host} does not resolve", code="url_unresolvable") from None
    found = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
    if not found:
        raise Invalid(f"the host {host} does not resolve", code="url_unresolvable")
    return found


async def resolve_url(url: str, *, allow_private: bool) -> ResolvedUrl:
    """Check `url` and resolve its host; refuse it when any address is not public, unless
    `allow_private`. Raises `Invalid` with a reason."""
    scheme, host, port = _shape(url)
    addresses = await _addresses(host, port)
    if not allow_private:
        for address in addresses:
            reason = _not_public(ipaddress.ip_address(address))
            if reason is not None:
                raise Invalid(
                    f"the host {host} is or resolves to {address}, a {reason} address: webhooks "
                    "go to public addresses only",
                    code="url_not_public",
                )
    return ResolvedUrl(url, scheme, host, port, addresses)


async def check_url(url: str, *, allow_private: bool) -> str:
    """The URL, once it is well formed and every address of its host is allowed."""
    return (await resolve_url(url, allow_private=allow_private)).url


def _origin(url: str) -> str:
    """Scheme, host and port only: paths and queries may hold the receiver's own tokens."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


# --- Signatures and the delivered body -----------------------------------------------------


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    signed = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The `Shiftgate-Signature` value: `t=<unix seconds>,v1=<hex HMAC-SHA256>` over
    `"<t>." + body`, keyed with the UTF-8 bytes of the whole secret (`whsec_...`)."""
    return f"t={timestamp},v1={_mac(secret, timestamp, body)}"


def verify_signature(
    secret: str,
    header: str,
    body: bytes,
    *,
    now: datetime | float,
    tolerance: int = SIGNATURE_TOLERANCE_SECONDS,
) -> bool:
    """Whether `header` signs `body` with `secret`, at most `tolerance` seconds from `now`
    either way. Any of several `v1=` entries may match (a sender may sign with two secrets)."""
    if len(header) > 4096:
        return False
    timestamp: int | None = None
    candidates: list[bytes] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            if timestamp is not None or not (value.isascii() and value.isdigit()):
                return False
            if len(value) > 12:
                return False
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value.encode())
    if timestamp is None or not candidates:
        return False
    moment = now.timestamp() if isinstance(now, datetime) else float(now)
    if abs(moment - timestamp) > tolerance:
        return False
    expected = _mac(secret, timestamp, body).encode()
    matches = [hmac.compare_digest(expected, candidate) for candidate in candidates]
    return any(matches)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def delivery_body(
    event_id: uuid.UUID,
    event_type: str,
    created_at: datetime,
    tenant_id: uuid.UUID,
    payload: Mapping[str, Any],
) -> bytes:
    """Canonical JSON (keys sorted, no whitespace): the same bytes on every attempt."""
    event = {
        "id": str(event_id),
        "type": event_type,
        "created_at": _rfc3339(created_at),
        "tenant_id": str(tenant_id),
        "data": {key: value for key, value in payload.items() if key != "event_id"},
    }
    return msgspec.json.encode(event, order="sorted")


def _headers(
    event_id: uuid.UUID, event_type: str, delivery_id: uuid.UUID, signature: str
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Shiftgate-Event-Id": str(event_id),
        "Shiftgate-Event-Type": event_type,
        "Shiftgate-Delivery-Id": str(delivery_id),
        SIGNATURE_HEADER: signature,
    }


def retry_delay(attempts: int) -> timedelta:
    """After the `attempts`-th failed attempt: 30 s doubling each time, at most an hour, and a
    random part (between half and all of it) so that receivers coming back are not stampeded."""
    ceiling = min(FIRST_RETRY * 2 ** min(max(attempts - 1, 0), 20), LONGEST_RETRY)
    seconds = ceiling.total_seconds()
    return timedelta(seconds=_random.uniform(seconds / 2, seconds))


# --- Endpoint management -------------------------------------------------------------------


def _manager(actor: Actor) -> uuid.UUID:
    return actor.require(Permission.WEBHOOK_MANAGE)


def _events(events: Iterable[str]) -> list[str]:
    chosen = list(dict.fromkeys(events))
    unknown = [name for name in chosen if name not in EVENT_TYPES]
    if unknown or not chosen:
        detail = (
            f"unknown event types: {', '.join(repr(name[:64]) for name in unknown[:10])}"
            if unknown
            else "name at least one event type"
        )
        raise Invalid(detail, code="events", extra={"valid_events": list(EVENT_TYPES)})
    return sorted(chosen)


def _description(description: str) -> str:
    description = description.strip()
    if len(description) > MAX_DESCRIPTION_CHARS:
        raise Invalid(
            f"the description has more than {MAX_DESCRIPTION_CHARS} characters",
            code="description",
        )
    return description


def _new_secret() -> str:
    return _SECRET_PREFIX + secrets.token_urlsafe(32)


_ENDPOINT_COLUMNS = (
    WebhookEndpoint.id,
    WebhookEndpoint.url,
    WebhookEndpoint.description,
    WebhookEndpoint.events,
    WebhookEndpoint.status,
    WebhookEndpoint.consecutive_failures,
    WebhookEndpoint.created_by,
    WebhookEndpoint.created_at,
    WebhookEndpoint.updated_at,
)


def _view(row: Mapping[str, Any]) -> WebhookView:
    events = row["events"]
    if isinstance(events, str | bytes):
        events = msgspec.json.decode(events)
    return WebhookView(
        id=row["id"],
        url=row["url"],
        description=row["description"],
        events=list(events),
        status=EndpointStatus(row["status"]),
        consecutive_failures=row["consecutive_failures"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def _endpoint_row(tenant_id: uuid.UUID, endpoint_id: uuid.UUID) -> dict[str, Any]:
    row: dict[str, Any] | None = (
        await WebhookEndpoint.select(*_ENDPOINT_COLUMNS)
        .where((WebhookEndpoint.id == endpoint_id) & (WebhookEndpoint.tenant_id == tenant_id))
        .first()
        .output(load_json=True)
    )
    if row is None:
        raise NotFound("no such webhook endpoint", code="webhook_unknown")
    return row


async def _lock_endpoint(tenant_id: uuid.UUID, endpoint_id: uuid.UUID) -> dict[str, Any]:
    """The endpoint, row-locked until the current transaction ends (on SQLite the write
    transaction locks everything already), or 404.

    Every writer locks the endpoint before its deliveries, so that they never deadlock."""
    query = WebhookEndpoint.select(
        WebhookEndpoint.id, WebhookEndpoint.url, WebhookEndpoint.status
    ).where((WebhookEndpoint.id == endpoint_id) & (WebhookEndpoint.tenant_id == tenant_id))
    if _on_postgres():
        query = query.lock_rows()
    row: dict[str, Any] | None = await query.first()
    if row is None:
        raise NotFound("no such webhook endpoint", code="webhook_unknown")
    return row


async def _fail_pending(endpoint_ids: Sequence[uuid.UUID], reason: str) -> None:
    if endpoint_ids:
        await WebhookDelivery.update(
            {
                WebhookDelivery.status: DeliveryStatus.FAILED.value,
                WebhookDelivery.lease_until: None,
                WebhookDelivery.last_error: reason,
            }
        ).where(
            WebhookDelivery.endpoint_id.is_in(list(endpoint_ids))
            & (WebhookDelivery.status == DeliveryStatus.PENDING.value)
        )


async def create_endpoint(
    actor: Actor,
    keyring: KeyRing,
    *,
    url: str,
    events: Iterable[str],
    description: str = "",
    allow_private: bool = False,
    request: RequestMeta = _NO_REQUEST,
) -> WebhookIssued:
    """A new endpoint and its signing secret, which is shown here only."""
    tenant_id = _manager(actor)
    chosen = _events(events)
    description = _description(description)
    url = await check_url(url, allow_private=allow_private)  # resolving holds no write lock
    endpoint_id, secret, now = uuid.uuid4(), _new_secret(), datetime.now(UTC)
    async with write_transaction():
        if await WebhookEndpoint.count().where(WebhookEndpoint.tenant_id == tenant_id) >= (
            MAX_ENDPOINTS
        ):
            raise Conflict(
                f"a tenant has at most {MAX_ENDPOINTS} webhook endpoints: delete one first",
                code="too_many_webhooks",
            )
        sealed = await seal_text(keyring, tenant_id, "webhook", endpoint_id, secret)
        await WebhookEndpoint.insert(
            WebhookEndpoint(
                id=endpoint_id,
                tenant_id=tenant_id,
                url=url,
                description=description,
                events=chosen,
                kek_version=sealed.kek_version,
                wrapped_dek=sealed.wrapped_dek,
                secret_sealed=sealed.sealed,
                status=EndpointStatus.ACTIVE.value,
                consecutive_failures=0,
                created_by=actor.label,
                created_at=now,
                updated_at=now,
            )
        )
        await record(
            tenant_id,
            AuditAction.WEBHOOK_CREATED,
            actor=actor,
            target_type="webhook",
            target_id=endpoint_id,
            request=request,
            context={"origin": _origin(url), "events": " ".join(chosen)},
        )
        view = _view(await _endpoint_row(tenant_id, endpoint_id))
    return WebhookIssued(endpoint=view, secret=secret)


async def list_endpoints(actor: Actor) -> list[WebhookView]:
    tenant_id = _manager(actor)
    rows = (
        await WebhookEndpoint.select(*_ENDPOINT_COLUMNS)
        .where(WebhookEndpoint.tenant_id == tenant_id)
        .order_by(WebhookEndpoint.created_at)
        .output(load_json=True)
    )
    return [_view(row) for row in rows]


async def get_endpoint(actor: Actor, endpoint_id: uuid.UUID) -> WebhookView:
    return _view(await _endpoint_row(_manager(actor), endpoint_id))


async def update_endpoint(
    actor: Actor,
    endpoint_id: uuid.UUID,
    *,
    url: str | None = None,
    events: Iterable[str] | None = None,
    description: str | None = None,
    status: EndpointStatus | None = None,
    allow_private: bool = False,
    request: RequestMeta = _NO_REQUEST,
) -> WebhookView:
    """Change what is given. Disabling fails the endpoint's pending deliveries; enabling (also
    a failing endpoint) starts its count of consecutive failures afresh."""
    tenant_id = _manager(actor)
    if status is EndpointStatus.FAILING:
        raise Invalid("status is active or disabled; failing is set by deliveries", code="status")
    changes: dict[Any, Any] = {}
    context: dict[str, str] = {}
    if events is not None:
        chosen = _events(events)
        changes[WebhookEndpoint.events] = chosen
        context["events"] = " ".join(chosen)
    if description is not None:
        changes[WebhookEndpoint.description] = _description(description)
        context["description"] = "changed"
    if url is not None:
        changes[WebhookEndpoint.url] = await check_url(url, allow_private=allow_private)
        context["origin"] = _origin(url)
    if status is not None:
        changes[WebhookEndpoint.status] = context["status"] = status.value
        if status is EndpointStatus.ACTIVE:
            changes[WebhookEndpoint.consecutive_failures] = 0
    changes[WebhookEndpoint.updated_at] = datetime.now(UTC)
    async with write_transaction():
        await _lock_endpoint(tenant_id, endpoint_id)
        await WebhookEndpoint.update(changes).where(WebhookEndpoint.id == endpoint_id)
        if status is EndpointStatus.DISABLED:
            await _fail_pending([endpoint_id], "the endpoint was disabled")
        await record(
            tenant_id,
            AuditAction.WEBHOOK_UPDATED,
            actor=actor,
            target_type="webhook",
            target_id=endpoint_id,
            severity=Severity.WARNING if status is EndpointStatus.DISABLED else Severity.INFO,
            request=request,
            context=context,
        )
        return _view(await _endpoint_row(tenant_id, endpoint_id))


async def delete_endpoint(
    actor: Actor, endpoint_id: uuid.UUID, *, request: RequestMeta = _NO_REQUEST
) -> None:
    """Delete the endpoint with its deliveries and their attempts; the audit log keeps that
    it existed, where it pointed and how many deliveries went with it."""
    tenant_id = _manager(actor)
    async with write_transaction():
        row = await _lock_endpoint(tenant_id, endpoint_id)
        deliveries = await WebhookDelivery.count().where(
            (WebhookDelivery.endpoint_id == endpoint_id) & (WebhookDelivery.tenant_id == tenant_id)
        )
        await WebhookAttempt.raw(
            "DELETE FROM webhook_attempts WHERE tenant_id = {} AND delivery_id IN "
            "(SELECT id FROM webhook_deliveries WHERE endpoint_id = {})",
            tenant_id,
            endpoint_id,
        )
        await WebhookDelivery.delete().where(
            (WebhookDelivery.endpoint_id == endpoint_id) & (WebhookDelivery.tenant_id == tenant_id)
        )
        await WebhookEndpoint.delete().where(
            (WebhookEndpoint.id == endpoint_id) & (WebhookEndpoint.tenant_id == tenant_id)
        )
        await record(
            tenant_id,
            AuditAction.WEBHOOK_DELETED,
            actor=actor,
            target_type="webhook",
            target_id=endpoint_id,
            severity=Severity.WARNING,
            request=request,
            context={"origin": _origin(row["url"]), "deliveries_deleted": str(deliveries)},
        )


async def rotate_secret(
    actor: Actor,
    keyring: KeyRing,
    endpoint_id: uuid.UUID,
    *,
    request: RequestMeta = _NO_REQUEST,
) -> WebhookIssued:
    """A new signing secret, used from the next attempt on; the old one stops at once."""
    tenant_id = _manager(actor)
    secret, now = _new_secret(), datetime.now(UTC)
    async with write_transaction():
        await _lock_endpoint(tenant_id, endpoint_id)
        sealed = await seal_text(keyring, tenant_id, "webhook", endpoint_id, secret)
        await WebhookEndpoint.update(
            {
                WebhookEndpoint.kek_version: sealed.kek_version,
                WebhookEndpoint.wrapped_dek: sealed.wrapped_dek,
                WebhookEndpoint.secret_sealed: sealed.sealed,
                WebhookEndpoint.updated_at: now,
            }
        ).where(WebhookEndpoint.id == endpoint_id)
        await record(
            tenant_id,
            AuditAction.WEBHOOK_SECRET_ROTATED,
            actor=actor,
            target_type="webhook",
            target_id=endpoint_id,
            severity=Severity.WARNING,
            request=request,
        )
        view = _view(await _endpoint_row(tenant_id, endpoint_id))
    return WebhookIssued(endpoint=view, secret=secret)


async def disable_tenant_endpoints(tenant_id: uuid.UUID, now: datetime) -> int:
    """Disable every endpoint of a tenant (deleted, say) and fail their pending deliveries,
    in the caller's transaction. Returns how many endpoints it disabled."""
    async with write_transaction():
        rows = (
            await WebhookEndpoint.update(
                {
                    WebhookEndpoint.status: EndpointStatus.DISABLED.value,
                    WebhookEndpoint.updated_at: now,
                }
            )
            .where(
                (WebhookEndpoint.tenant_id == tenant_id)
                & (WebhookEndpoint.status != EndpointStatus.DISABLED.value)
            )
            .returning(WebhookEndpoint.id)
        )
        await _fail_pending([row["id"] for row in rows], "the endpoint was disabled")
    return len(rows)


# --- Deliveries, as the tenant sees them ---------------------------------------------------

_DELIVERY_COLUMNS = (
    WebhookDelivery.id,
    WebhookDelivery.event_id,
    WebhookDelivery.event_type,
    WebhookDelivery.status,
    WebhookDelivery.attempts,
    WebhookDelivery.next_attempt_at,
    WebhookDelivery.last_status_code,
    WebhookDelivery.last_error,
    WebhookDelivery.created_at,
    WebhookDelivery.delivered_at,
)
_HISTORY_LIMIT = 50


def _delivery_view(row: Mapping[str, Any], history: list[AttemptView]) -> DeliveryView:
    status = DeliveryStatus(row["status"])
    return DeliveryView(
        id=row["id"],
        event_id=row["event_id"],
        event_type=row["event_type"],
        status=status,
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"] if status is DeliveryStatus.PENDING else None,
        last_status_code=row["last_status_code"],
        last_error=row["last_error"],
        created_at=row["created_at"],
        delivered_at=row["delivered_at"],
        history=history,
    )


async def _histories(
    tenant_id: uuid.UUID, delivery_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[AttemptView]]:
    found: dict[uuid.UUID, list[AttemptView]] = {delivery_id: [] for delivery_id in delivery_ids}
    if not delivery_ids:
        return found
    rows = (
        await WebhookAttempt.select(
            WebhookAttempt.delivery_id,
            WebhookAttempt.attempted_at,
            WebhookAttempt.status_code,
            WebhookAttempt.error,
            WebhookAttempt.duration_ms,
        )
        .where(
            (WebhookAttempt.tenant_id == tenant_id) & WebhookAttempt.delivery_id.is_in(delivery_ids)
        )
        .order_by(WebhookAttempt.attempted_at)
    )
    for row in rows:
        found[row["delivery_id"]].append(
            AttemptView(row["attempted_at"], row["status_code"], row["error"], row["duration_ms"])
        )
    return {key: value[-_HISTORY_LIMIT:] for key, value in found.items()}


async def list_deliveries(
    actor: Actor, endpoint_id: uuid.UUID, *, limit: int = 50
) -> list[DeliveryView]:
    """The endpoint's most recent deliveries, newest first, each with its attempts."""
    tenant_id = _manager(actor)
    if not 1 <= limit <= 200:
        raise Invalid("limit is 1 to 200", code="limit")
    await _endpoint_row(tenant_id, endpoint_id)
    rows = (
        await WebhookDelivery.select(*_DELIVERY_COLUMNS)
        .where(
            (WebhookDelivery.tenant_id == tenant_id) & (WebhookDelivery.endpoint_id == endpoint_id)
        )
        .order_by(WebhookDelivery.created_at, ascending=False)
        .order_by(WebhookDelivery.id, ascending=False)
        .limit(limit)
    )
    histories = await _histories(tenant_id, [row["id"] for row in rows])
    return [_delivery_view(row, histories[row["id"]]) for row in rows]


async def resend(
    actor: Actor,
    clock: Clock,
    delivery_id: uuid.UUID,
    *,
    endpoint_id: uuid.UUID | None = None,
    request: RequestMeta = _NO_REQUEST,
) -> DeliveryView:
    """Post the delivery again as soon as the worker runs, delivered or not (a receiver may have
    lost it). Retries after a failure still end 24 hours after the event."""
    tenant_id = _manager(actor)
    now = await clock.now()
    where = (WebhookDelivery.id == delivery_id) & (WebhookDelivery.tenant_id == tenant_id)
    if endpoint_id is not None:
        where &= WebhookDelivery.endpoint_id == endpoint_id
    async with write_transaction():
        found = await WebhookDelivery.select(WebhookDelivery.endpoint_id).where(where).first()
        if found is None:
            raise NotFound("no such webhook delivery", code="delivery_unknown")
        endpoint = await _lock_endpoint(tenant_id, found["endpoint_id"])
        if endpoint["status"] == EndpointStatus.DISABLED.value:
            raise Conflict("the endpoint is disabled: enable it first", code="webhook_disabled")
        await WebhookDelivery.update(
            {
                WebhookDelivery.status: DeliveryStatus.PENDING.value,
                WebhookDelivery.next_attempt_at: now,
                WebhookDelivery.delivered_at: None,
            }
        ).where(where)
        await record(
            tenant_id,
            AuditAction.WEBHOOK_REDELIVERED,
            actor=actor,
            target_type="webhook_delivery",
            target_id=delivery_id,
            request=request,
            context={"endpoint_id": str(found["endpoint_id"])},
        )
        row = await WebhookDelivery.select(*_DELIVERY_COLUMNS).where(where).first()
    assert row is not None  # locked above, in this transaction
    histories = await _histories(tenant_id, [delivery_id])
    return _delivery_view(row, histories[delivery_id])


# --- The worker's side: fan-out, delivery, the next due instant ----------------------------


def _on_postgres() -> bool:
    return isinstance(WebhookDelivery._meta.db, PostgresEngine)


def _event_id(row: Mapping[str, Any]) -> uuid.UUID:
    payload = row["payload"]
    try:
        return uuid.UUID(str(payload["event_id"]))
    except (KeyError, TypeError, ValueError):
        return uuid.UUID(str(row["id"]))


def _json(value: Any) -> Any:
    return msgspec.json.decode(value) if isinstance(value, str | bytes) else value


async def dispatch_outbox(now: datetime, *, limit: int = 500) -> int:
    """Fan undispatched outbox rows out into one delivery per subscribed endpoint (active or
    failing) of the row's tenant. Returns how many outbox rows it dispatched.

    Rows, deliveries and `dispatched_at` change in one transaction. On PostgreSQL concurrent
    runs skip each other's rows (`FOR UPDATE SKIP LOCKED`); on SQLite the write transaction
    is the only writer. The unique index on (endpoint, outbox row) stands behind both.
    """
    postgres = _on_postgres()
    async with write_transaction():
        query = (
            OutboxEvent.select(
                OutboxEvent.id, OutboxEvent.tenant_id, OutboxEvent.event_type, OutboxEvent.payload
            )
            .where(OutboxEvent.dispatched_at.is_null())
            .order_by(OutboxEvent.created_at)
            .limit(limit)
        )
        if postgres:
            query = query.lock_rows(skip_locked=True)
        events = await query.output(load_json=True)
        if not events:
            return 0
        endpoints = WebhookEndpoint.select(
            WebhookEndpoint.id, WebhookEndpoint.tenant_id, WebhookEndpoint.events
        ).where(
            WebhookEndpoint.tenant_id.is_in(list({row["tenant_id"] for row in events}))
            & WebhookEndpoint.status.is_in(
                [EndpointStatus.ACTIVE.value, EndpointStatus.FAILING.value]
            )
        )
        if postgres:
            # an endpoint being disabled or deleted meanwhile is waited for, then left out
            endpoints = endpoints.lock_rows("SHARE")
        subscribed: dict[uuid.UUID, list[tuple[uuid.UUID, set[str]]]] = {}
        for endpoint in await endpoints.output(load_json=True):
            subscribed.setdefault(endpoint["tenant_id"], []).append(
                (endpoint["id"], set(_json(endpoint["events"])))
            )
        deliveries = [
            WebhookDelivery(
                id=uuid.uuid4(),
                tenant_id=event["tenant_id"],
                endpoint_id=endpoint_id,
                outbox_event_id=event["id"],
                event_id=_event_id(event),
                event_type=event["event_type"],
                status=DeliveryStatus.PENDING.value,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
            for event in events
            for endpoint_id, names in subscribed.get(event["tenant_id"], [])
            if event["event_type"] in names
        ]
        for start in range(0, len(deliveries), 200):
            await WebhookDelivery.insert(*deliveries[start : start + 200]).on_conflict(
                action="DO NOTHING"
            )
        await OutboxEvent.update({OutboxEvent.dispatched_at: now}).where(
            OutboxEvent.id.is_in([row["id"] for row in events])
        )
    return len(events)


@dataclass(frozen=True, slots=True)
class _Job:
    """A claimed delivery, with what posting it needs."""

    delivery_id: uuid.UUID
    tenant_id: uuid.UUID
    endpoint_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    url: str
    wrapped_dek: bytes
    secret_sealed: bytes
    event_created_at: datetime
    payload: Mapping[str, Any]
    leased_until: datetime


_CLAIM_COLUMNS = (
    WebhookDelivery.id,
    WebhookDelivery.tenant_id,
    WebhookDelivery.endpoint_id,
    WebhookDelivery.event_id,
    WebhookDelivery.event_type,
    WebhookDelivery.endpoint_id.url,
    WebhookDelivery.endpoint_id.status,
    WebhookDelivery.endpoint_id.wrapped_dek,
    WebhookDelivery.endpoint_id.secret_sealed,
    WebhookDelivery.outbox_event_id.created_at,
    WebhookDelivery.outbox_event_id.payload,
)


async def _claim(now: datetime, limit: int, lease: timedelta) -> tuple[list[_Job], int]:
    """Lease up to `limit` due deliveries; deliveries of a disabled endpoint are failed here.
    Returns the jobs and how many were failed."""
    due = (
        (WebhookDelivery.status == DeliveryStatus.PENDING.value)
        & (WebhookDelivery.next_attempt_at <= now)
        & (WebhookDelivery.lease_until.is_null() | (WebhookDelivery.lease_until <= now))
    )
    async with write_transaction():
        query = (
            WebhookDelivery.select(WebhookDelivery.id)
            .where(due)
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(limit)
        )
        if _on_postgres():
            query = query.lock_rows(skip_locked=True)
        ids = [row["id"] for row in await query]
        if not ids:
            return [], 0
        await WebhookDelivery.update({WebhookDelivery.lease_until: now + lease}).where(
            WebhookDelivery.id.is_in(ids)
        )
        rows = (
            await WebhookDelivery.select(*_CLAIM_COLUMNS)
            .where(WebhookDelivery.id.is_in(ids))
            .order_by(WebhookDelivery.next_attempt_at)  # the longest waiting go first
        )
        disabled = [
            row["endpoint_id"]
            for row in rows
            if row["endpoint_id.status"] == EndpointStatus.DISABLED.value
        ]
        await _fail_pending(disabled, "the endpoint was disabled")
    jobs = [
        _Job(
            delivery_id=row["id"],
            tenant_id=row["tenant_id"],
            endpoint_id=row["endpoint_id"],
            event_id=row["event_id"],
            event_type=row["event_type"],
            url=row["endpoint_id.url"],
            wrapped_dek=bytes(row["endpoint_id.wrapped_dek"]),
            secret_sealed=bytes(row["endpoint_id.secret_sealed"]),
            event_created_at=row["outbox_event_id.created_at"],
            payload=_json(row["outbox_event_id.payload"]),
            leased_until=now + lease,
        )
        for row in rows
        if row["endpoint_id.status"] != EndpointStatus.DISABLED.value
    ]
    return jobs, len(rows) - len(jobs)


async def _renew(job: _Job, until: datetime) -> bool:
    """Extend the lease of a job whose turn has come, if it is still this run's and pending:
    jobs queued behind slow receivers must not lose their lease before they are posted."""
    async with write_transaction():
        renewed = (
            await WebhookDelivery.update({WebhookDelivery.lease_until: until})
            .where(
                (WebhookDelivery.id == job.delivery_id)
                & (WebhookDelivery.status == DeliveryStatus.PENDING.value)
                & (WebhookDelivery.lease_until == job.leased_until)
            )
            .returning(WebhookDelivery.id)
        )
    return bool(renewed)


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _ERROR_CHARS else text[: _ERROR_CHARS - 1] + "…"


async def _post(
    job: _Job, keyring: KeyRing, sender: WebhookSender, now: datetime
) -> tuple[int | None, str | None, int]:
    """Post one delivery: (status code, error, duration in ms)."""
    try:
        secret = await open_text(
            keyring, job.tenant_id, "webhook", job.endpoint_id, job.wrapped_dek, job.secret_sealed
        )
    except DomainError:
        return None, "the signing secret cannot be opened (the tenant's keys are unavailable)", 0
    body = delivery_body(
        job.event_id, job.event_type, job.event_created_at, job.tenant_id, job.payload
    )
    signature = sign(secret, int(now.timestamp()), body)
    headers = _headers(job.event_id, job.event_type, job.delivery_id, signature)
    started = time.monotonic()
    try:
        status: int | None = await sender.post(job.url, body, headers)
        error = None
    except WebhookSendError as exc:
        status, error = None, _excerpt(exc.message)
    except Exception as exc:  # a fault of the sender must not stop the other deliveries
        _log.exception("webhook sender failed on delivery %s", job.delivery_id)
        status, error = None, f"internal error while sending ({type(exc).__name__})"
    duration = int((time.monotonic() - started) * 1000)
    return status, error, duration


async def _record(
    job: _Job,
    status_code: int | None,
    error: str | None,
    duration_ms: int,
    attempted_at: datetime,
    now: datetime,
) -> str:
    """Store the attempt and move the delivery and its endpoint on. Returns `delivered`,
    `retry`, `given_up`, or `gone` (the endpoint was deleted meanwhile)."""
    ok = status_code is not None and 200 <= status_code < 300
    if status_code is not None and not ok:
        error = f"the receiver answered HTTP {status_code}"
    endpoint_where = (WebhookEndpoint.id == job.endpoint_id) & (
        WebhookEndpoint.tenant_id == job.tenant_id
    )
    async with write_transaction():
        # the endpoint first, then the delivery: the order every writer keeps
        if ok:
            endpoint = await (
                WebhookEndpoint.update({WebhookEndpoint.consecutive_failures: 0})
                .where(endpoint_where)
                .returning(WebhookEndpoint.status)
            )
            if endpoint and endpoint[0]["status"] == EndpointStatus.FAILING.value:
                await WebhookEndpoint.update(
                    {WebhookEndpoint.status: EndpointStatus.ACTIVE.value}
                ).where(endpoint_where)
        else:
            endpoint = await (
                WebhookEndpoint.update(
                    {WebhookEndpoint.consecutive_failures: WebhookEndpoint.consecutive_failures + 1}
                )
                .where(endpoint_where)
                .returning(WebhookEndpoint.status, WebhookEndpoint.consecutive_failures)
            )
            if (
                endpoint
                and endpoint[0]["consecutive_failures"] >= FAILING_AFTER
                and endpoint[0]["status"] == EndpointStatus.ACTIVE.value
            ):
                await WebhookEndpoint.update(
                    {WebhookEndpoint.status: EndpointStatus.FAILING.value}
                ).where(endpoint_where)
        if not endpoint:
            return "gone"
        delivery_where = WebhookDelivery.id == job.delivery_id
        counted = await (
            WebhookDelivery.update({WebhookDelivery.attempts: WebhookDelivery.attempts + 1})
            .where(delivery_where)
            .returning(WebhookDelivery.attempts, WebhookDelivery.status, WebhookDelivery.created_at)
        )
        if not counted:
            return "gone"
        await WebhookAttempt.insert(
            WebhookAttempt(
                id=uuid.uuid4(),
                tenant_id=job.tenant_id,
                delivery_id=job.delivery_id,
                attempted_at=attempted_at,
                status_code=status_code,
                error=error,
                duration_ms=duration_ms,
            )
        )
        changes: dict[Any, Any] = {
            WebhookDelivery.lease_until: None,
            WebhookDelivery.last_status_code: status_code,
            WebhookDelivery.last_error: error,
        }
        attempts, created_at = counted[0]["attempts"], counted[0]["created_at"]
        if ok:
            changes[WebhookDelivery.status] = DeliveryStatus.DELIVERED.value
            changes[WebhookDelivery.delivered_at] = now
            outcome = "delivered"
        elif counted[0]["status"] != DeliveryStatus.PENDING.value:
            outcome = "retry"  # failed meanwhile (its endpoint was disabled): leave it so
        else:
            retry_at = now + retry_delay(attempts)
            if retry_at > created_at + GIVE_UP_AFTER:
                changes[WebhookDelivery.status] = DeliveryStatus.FAILED.value
                outcome = "given_up"
            else:
                changes[WebhookDelivery.next_attempt_at] = retry_at
                outcome = "retry"
        await WebhookDelivery.update(changes).where(delivery_where)
    if not ok:
        _log.info(
            "webhook delivery %s to endpoint %s failed (attempt %d): %s",
            job.delivery_id,
            job.endpoint_id,
            attempts,
            error,
        )
    return outcome


async def deliver_due(
    keyring: KeyRing,
    sender: WebhookSender,
    clock: Clock,
    *,
    limit: int = 100,
    concurrency: int = 16,
    lease: timedelta = timedelta(seconds=60),
) -> DeliveryReport:
    """Post up to `limit` due deliveries, `concurrency` at a time, and record each outcome.

    The claim (a lease until now + `lease`) commits before anything is posted; the lease is
    renewed when a delivery's turn comes, and each outcome is written as soon as it is known:
    a slow receiver holds up no other delivery. `lease` must outlast the sender's timeout, or
    another run may post the same delivery meanwhile (receivers drop such duplicates).
    """
    now = await clock.now()
    jobs, dropped = await _claim(now, limit, lease)
    slots = asyncio.Semaphore(concurrency)

    async def deliver(job: _Job) -> str:
        async with slots:
            attempted_at = await clock.now()
            if not await _renew(job, attempted_at + lease):
                return "skipped"  # disabled, deleted or taken over meanwhile
            status, error, duration = await _post(job, keyring, sender, attempted_at)
        return await _record(job, status, error, duration, attempted_at, await clock.now())

    outcomes = await asyncio.gather(*(deliver(job) for job in jobs))
    return DeliveryReport(
        claimed=len(jobs) + dropped,
        delivered=outcomes.count("delivered"),
        failed=outcomes.count("retry") + outcomes.count("given_up"),
        given_up=outcomes.count("given_up") + dropped,
    )


async def next_delivery_due() -> datetime | None:
    """The earliest instant at which a pending delivery may be claimed (for the worker's
    sleep): its next attempt, or the end of the lease of one being posted."""
    pending = WebhookDelivery.status == DeliveryStatus.PENDING.value
    free = (
        await WebhookDelivery.select(WebhookDelivery.next_attempt_at)
        .where(pending & WebhookDelivery.lease_until.is_null())
        .order_by(WebhookDelivery.next_attempt_at)
        .first()
    )
    leased = (
        await WebhookDelivery.select(WebhookDelivery.lease_until)
        .where(pending & WebhookDelivery.lease_until.is_not_null())
        .order_by(WebhookDelivery.lease_until)
        .first()
    )
    moments: list[datetime] = []
    if free is not None:
        moments.append(free["next_attempt_at"])
    if leased is not None:
        moments.append(leased["lease_until"])
    return min(moments) if moments else None
