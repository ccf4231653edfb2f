"""The app factory: the one place where the gateway is assembled."""

from __future__ import annotations

import asyncio
import gc
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

from litestar import Litestar, Router
from litestar.config.csrf import CSRFConfig
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.flash import FlashConfig, FlashPlugin
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.stores.base import Store
from litestar.stores.memory import MemoryStore
from litestar.stores.redis import RedisStore
from litestar.template.config import TemplateConfig
from redis.asyncio import Redis

from gateway.api.account import AccountController, TokenController
from gateway.api.audit import AuditController
from gateway.api.audit_chain import AuditRetentionController, audit_checkpoints, audit_keys
from gateway.api.audit_export import AuditExportController
from gateway.api.content import ClientController, DocumentController
from gateway.api.handoffs import HandoffController, PolicyController
from gateway.api.health import healthz, readyz
from gateway.api.metrics import metrics_endpoint
from gateway.api.oauth_clients import OAuthClientController
from gateway.api.partner import PartnerController
from gateway.api.partnerships import PartnershipController
from gateway.api.webhooks import WebhookController
from gateway.auth import (
    SESSION_COOKIE,
    SESSION_STORE,
    BearerExemptCSRFMiddleware,
    RotatingSessionConfig,
    api_actor,
)
from gateway.database import bind_database, close_database, open_database
from gateway.middleware import RequestContextMiddleware
from gateway.oauth.introspection import introspection_endpoint
from gateway.oauth.metadata import authorization_server_metadata, jwks
from gateway.oauth.resource import partner_caller
from gateway.oauth.revocation import revocation_endpoint
from gateway.oauth.token import token_endpoint
from gateway.portal.admin import AdminPages
from gateway.portal.auditor import AuditPages
from gateway.portal.content import ContentPages
from gateway.portal.grants import GrantPages
from gateway.portal.noc import NocPages
from gateway.portal.views import PortalController
from gateway.problems import exception_handlers
from gateway.settings import Settings
from gateway.throttle import MemoryThrottle, RedisThrottle, Throttle
from sharing.audit import AuditAppender
from sharing.clock import Clock, DatabaseClock
from tenants.keyring import KeyRing
from tenants.root_key import EnvRootKey, FileRootKey, RootKeyProvider, derive_secret
from tenants.signing import TokenSigner

__all__ = ["create_app", "create_app_from_env", "root_key_provider", "tune_garbage_collector"]

_PORTAL = Path(__file__).parent / "portal"
_MAX_REQUEST_BYTES = 2 * 1024 * 1024  # a 1 MiB document body, JSON-escaped, fits


def root_key_provider(settings: Settings) -> RootKeyProvider:
    if settings.root_key:
        return EnvRootKey(settings.root_key)
    return FileRootKey(settings.root_key_file)


class _ThrottleReadCounter:
    """A grant's reads in the current minute, counted where sign-in throttling counts."""

    def __init__(self, throttle: Throttle) -> None:
        self._throttle = throttle

    async def hit(self, grant_id: uuid.UUID) -> int:
        return await self._throttle.hit(f"grant-reads:{grant_id}", 60)


@asynccontextmanager
async def _worker_task(settings: Settings, clock: Clock, keyring: KeyRing) -> AsyncIterator[None]:
    """The worker loop beside the app when `run_worker` is set; stopped before the database."""
    if not settings.run_worker:
        yield
        return
    from gateway.worker import running_worker

    async with running_worker(settings, clock=clock, keyring=keyring) as worker:
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        try:
            yield
        finally:
            stop.set()
            await task


def create_app(settings: Settings, *, clock: Clock | None = None) -> Litestar:
    """Assemble the gateway for `settings`. Opens no connection until the app starts.

    `clock` decides what time it is for grants; the database's clock by default.
    """
    engine = bind_database(settings)
    root_keys = root_key_provider(settings)
    keyring = KeyRing(root_keys)
    signer = TokenSigner(root_keys, max_token_seconds=settings.access_token_seconds)
    clock = clock or DatabaseClock()
    redis = Redis.from_url(settings.redis_url) if settings.redis_url else None
    session_store: Store
    throttle: Throttle
    if redis is not None:
        session_store = RedisStore(redis, namespace=f"{settings.redis_namespace}:sessions")
        throttle = RedisThrottle(redis, settings.redis_namespace)
    else:
        session_store = MemoryStore()
        throttle = MemoryThrottle()
    read_counter = _ThrottleReadCounter(throttle)
    audit_appender = AuditAppender()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await open_database(engine)
        try:
            async with _worker_task(settings, clock, keyring):
                yield
        finally:
            await audit_appender.close()
            await close_database(engine)
            if redis is not None:
                await redis.aclose()

    session_config = RotatingSessionConfig(
        key=SESSION_COOKIE,
        store=SESSION_STORE,
        max_age=int(timedelta(hours=settings.session_hours).total_seconds()),
        renew_on_access=True,
        secure=settings.secure_cookies,
        httponly=True,
        samesite="lax",
        # bearer-only paths never read a session: skip loading one on the partner hot path
        exclude=[
            "^/api/v1/partner/",
            "^/oauth/",
            "^/healthz",
            "^/readyz",
            "^/metrics",
            "^/static/",
        ],
    )
    csrf_config = CSRFConfig(
        secret=derive_secret(root_keys, "csrf").hex(),
        cookie_name="shiftgate_csrf",
        cookie_secure=settings.secure_cookies,
        cookie_httponly=True,
        cookie_samesite="strict",
        header_name="x-csrf-token",
        # OAuth endpoints authenticate the client itself and never read a cookie
        exclude=["/healthz", "/readyz", "/static", "/schema", "/oauth/", "/.well-known/"],
    )
    template_config = TemplateConfig(directory=_PORTAL / "templates", engine=JinjaTemplateEngine)

    api = Router(
        path="/api/v1",
        route_handlers=[
            AccountController,
            TokenController,
            PartnershipController,
            ClientController,
            DocumentController,
            OAuthClientController,
            PolicyController,
            HandoffController,
            WebhookController,
            AuditController,
            audit_checkpoints,
            AuditRetentionController,
            AuditExportController,
        ],
        dependencies={
            "actor": Provide(api_actor),
            "keyring": Provide(lambda: keyring, sync_to_thread=False),
            "clock": Provide(lambda: clock, sync_to_thread=False),
        },
        security=[{"bearerAuth": []}, {"sessionCookie": []}],
    )
    partner_api = Router(
        path="/api/v1/partner",
        route_handlers=[PartnerController],
        dependencies={
            "partner": Provide(partner_caller),
            "keyring": Provide(lambda: keyring, sync_to_thread=False),
            "clock": Provide(lambda: clock, sync_to_thread=False),
            "read_counter": Provide(lambda: read_counter, sync_to_thread=False),
            "audit_appender": Provide(lambda: audit_appender, sync_to_thread=False),
        },
    )
    app = Litestar(
        route_handlers=[
            healthz,
            readyz,
            metrics_endpoint,
            api,
            partner_api,
            token_endpoint,
            revocation_endpoint,
            introspection_endpoint,
            authorization_server_metadata,
            jwks,
            audit_keys,
            PortalController,
            ContentPages,
            GrantPages,
            AdminPages,
            NocPages,
            AuditPages,
            create_static_files_router(
                path="/static", directories=[_PORTAL / "static"], include_in_schema=False
            ),
        ],
        lifespan=[lifespan],
        stores={SESSION_STORE: session_store},
        middleware=[
            RequestContextMiddleware,
            session_config.middleware,
            DefineMiddleware(BearerExemptCSRFMiddleware, config=csrf_config),
        ],
        template_config=template_config,
        plugins=[FlashPlugin(FlashConfig(template_config=template_config))],
        exception_handlers=exception_handlers(),
        openapi_config=OpenAPIConfig(
            title="Shiftgate",
            version="0.1.0",
            description="Partner-sharing gateway for managed service providers.",
            path="/schema",
            components=Components(
                security_schemes={
                    "bearerAuth": SecurityScheme(
                        type="http",
                        scheme="bearer",
                        description="A tenant API token (`sgt_...`)",
                    ),
                    "partnerToken": SecurityScheme(
                        type="http",
                        scheme="bearer",
                        bearer_format="JWT",
                        description="A partner access token (RFC 9068) from /oauth/token",
                    ),
                    "sessionCookie": SecurityScheme(
                        type="apiKey",
                        name=SESSION_COOKIE,
                        security_scheme_in="cookie",
                        description="A portal session; writes also need the CSRF header",
                    ),
                }
            ),
        ),
        request_max_body_size=_MAX_REQUEST_BYTES,
        debug=False,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.redis = redis
    app.state.throttle = throttle
    app.state.root_keys = root_keys
    app.state.keyring = keyring
    app.state.signer = signer
    app.state.clock = clock
    app.state.read_counter = read_counter
    app.state.audit_appender = audit_appender
    return app


def create_app_from_env() -> Litestar:
    """Factory for `uvicorn --factory` and `shiftgate serve` with several workers."""
    app = create_app(Settings.from_env())
    tune_garbage_collector()
    return app


def tune_garbage_collector() -> None:
    """For a serving process: what start-up built lives as long as the process, so keep it out
    of every collection, and collect less often (each request makes many short-lived objects).
    Not for tests, which build many apps in one process."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
