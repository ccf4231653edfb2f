"""Test wiring: one database per run (a SQLite file, or a fresh PostgreSQL database), real stores.

`SHIFTGATE_TEST_BACKEND=postgres` runs the suite on PostgreSQL + Redis. Without those servers the
run is skipped with a one-line reason on a laptop, and fails in CI (`CI=true`).
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

BACKEND = os.environ.get("SHIFTGATE_TEST_BACKEND", "sqlite")
PG_ADMIN_URL = os.environ.get(
    "SHIFTGATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("SHIFTGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

collect_ignore = [] if os.environ.get("SHIFTGATE_BENCH") else ["bench"]

_RUN_ID = secrets.token_hex(4)
_STATE: dict[str, str] = {}


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout=2):
            return True
    except OSError:
        return False


async def _pg_admin(sql: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def pytest_configure(config: pytest.Config) -> None:
    workdir = Path(tempfile.mkdtemp(prefix=f"shiftgate-test-{_RUN_ID}-"))
    _STATE["var_dir"] = str(workdir)
    if BACKEND == "postgres":
        missing = [
            name
            for name, url in (("PostgreSQL", PG_ADMIN_URL), ("Redis", REDIS_URL))
            if not _reachable(url)
        ]
        if missing:
            reason = f"{' and '.join(missing)} not reachable ({PG_ADMIN_URL}, {REDIS_URL})"
            if IN_CI:
                raise pytest.UsageError(f"CI needs {reason}")
            _STATE["skip"] = reason
            _STATE["database_url"] = f"sqlite:///{workdir / 'unused.db'}"
        else:
            name = f"shiftgate_test_{_RUN_ID}"
            asyncio.run(_pg_admin(f"CREATE DATABASE {name}"))
            base = PG_ADMIN_URL.rsplit("/", 1)[0]
            _STATE["database_url"] = f"{base}/{name}"
            _STATE["pg_database"] = name
            _STATE["redis_url"] = REDIS_URL
    else:
        _STATE["database_url"] = f"sqlite:///{workdir / 'shiftgate.db'}"
    # Piccolo's own lookups (migrations) read the environment.
    os.environ["DATABASE_URL"] = _STATE["database_url"]
    os.environ["PICCOLO_CONF"] = "gateway.piccolo_conf"


def pytest_unconfigure(config: pytest.Config) -> None:
    if name := _STATE.get("pg_database"):
        asyncio.run(_pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    if _STATE.get("redis_url"):
        import redis

        client = redis.Redis.from_url(_STATE["redis_url"])
        for key in client.scan_iter(f"shiftgate-test-{_RUN_ID}*"):
            client.delete(key)
        client.close()


def pytest_report_header(config: pytest.Config) -> str:
    where = "PostgreSQL + Redis" if BACKEND == "postgres" else "SQLite, in-memory stores"
    return f"shiftgate backend: {where} ({_STATE.get('database_url', '?')})"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Browser tests run last: Playwright's sync API keeps an event loop running in this thread
    # until the session ends, and an async test after it could not start its own.
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)
    reason = _STATE.get("skip")
    for item in items:
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))
        elif BACKEND != "postgres" and (
            item.get_closest_marker("pg") or item.get_closest_marker("redis")
        ):
            item.add_marker(
                pytest.mark.skip(reason="runs in the PostgreSQL + Redis pass (make test-postgres)")
            )


@pytest.fixture(scope="session")
def settings():  # type: ignore[no-untyped-def]
    from gateway.settings import Settings

    return Settings(
        environment="test",
        database_url=_STATE["database_url"],
        redis_url=_STATE.get("redis_url"),
        redis_namespace=f"shiftgate-test-{_RUN_ID}",
        var_dir=Path(_STATE["var_dir"]),
        root_key_file=Path(_STATE["var_dir"]) / "root.key",
        root_key=base64.b64encode(secrets.token_bytes(32)).decode(),
    )


@pytest.fixture(scope="session")
def migrated(settings) -> None:  # type: ignore[no-untyped-def]
    from gateway.database import bind_database, migrate

    if _STATE.get("skip"):
        pytest.skip(_STATE["skip"])
    asyncio.run(migrate(bind_database(settings)))


_TABLES_IN_DELETE_ORDER = (
    "audit_checkpoints",
    "audit_signing_keys",
    "audit_events",
    "audit_heads",
    "rotation_list",
    "handoff_notes",
    "grant_extensions",
    "issued_tokens",
    "grants",
    "handoffs",
    "schedules",
    "msp_rules",
    "webhook_attempts",
    "webhook_deliveries",
    "webhook_endpoints",
    "worker_counters",
    "outbox_events",
    "partnerships",
    "document_revisions",
    "documents",
    "clients",
    "tenant_keys",
    "client_assertions",
    "oauth_credentials",
    "oauth_clients",
    "signing_keys",
    "api_tokens",
    "memberships",
    "users",
    "tenants",
)


@pytest.fixture
async def db(settings, migrated) -> AsyncIterator[object]:  # type: ignore[no-untyped-def]
    """An empty, migrated database bound to every table."""
    from gateway.database import bind_database, close_database, open_database

    engine = bind_database(settings)
    await open_database(engine)
    from sharing.audit_storage import archiving

    async with archiving():  # the one way past the audit table's append-only trigger
        for table in _TABLES_IN_DELETE_ORDER:
            await engine.run_ddl(f"DELETE FROM {table}")
    yield engine
    from tenants.tables import Tenant

    bound = Tenant._meta.db  # a test may have bound another engine (an app's): close it too
    await close_database(engine)
    if bound is not engine:
        await close_database(bound)


@pytest.fixture
async def client(settings, db):  # type: ignore[no-untyped-def]
    from litestar.testing import AsyncTestClient

    from gateway.app import create_app

    if settings.redis_url:  # counters and sessions of earlier tests must not leak in
        from redis.asyncio import Redis

        redis = Redis.from_url(settings.redis_url)
        async for key in redis.scan_iter(f"{settings.redis_namespace}*"):
            await redis.delete(key)
        await redis.aclose()
    app = create_app(settings)
    async with AsyncTestClient(app=app, base_url="http://testserver.local") as test_client:
        yield test_client


def new_slug(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
