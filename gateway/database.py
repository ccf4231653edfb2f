"""Binds Piccolo to the configured database, opens and closes it, and runs migrations."""

from __future__ import annotations

import os
import sqlite3
from typing import Any

from piccolo.apps.migrations.commands.forwards import run_forwards
from piccolo.apps.migrations.tables import Migration
from piccolo.engine.base import Engine as _Engine
from piccolo.engine.postgres import PostgresEngine
from piccolo.engine.sqlite import SQLiteEngine
from piccolo.table import Table

from gateway.postgres_engine import LoopPoolPostgresEngine
from gateway.settings import Settings
from gateway.sqlite_engine import PooledSQLiteEngine

__all__ = [
    "ALL_TABLES",
    "DatabaseError",
    "bind_database",
    "close_database",
    "engine_for",
    "migrate",
    "open_database",
    "ping_database",
]

PICCOLO_CONF = "gateway.piccolo_conf"
Engine = _Engine[Any]


class DatabaseError(RuntimeError):
    """The database cannot be reached or migrated; the message says which and why."""


def _all_tables() -> list[type[Table]]:
    from sharing.piccolo_app import APP_CONFIG as SHARING
    from tenants.piccolo_app import APP_CONFIG as TENANTS

    return [*TENANTS.table_classes, *SHARING.table_classes, Migration]


ALL_TABLES = _all_tables()


def engine_for(settings: Settings) -> Engine:
    """A Piccolo engine for `DATABASE_URL`. Failures to connect surface in `open_database`."""
    if settings.database_kind == "postgres":
        return LoopPoolPostgresEngine(config={"dsn": settings.database_url})
    return PooledSQLiteEngine(
        str(settings.sqlite_path), synchronous=settings.sqlite_synchronous, timeout=30
    )


def bind_database(settings: Settings) -> Engine:
    """Point every table, and Piccolo's migration runner, at the settings' database."""
    import gateway.piccolo_conf as conf

    engine = engine_for(settings)
    os.environ["PICCOLO_CONF"] = PICCOLO_CONF
    conf.DB = engine
    for table in ALL_TABLES:
        table._meta.db = engine
    return engine


async def open_database(engine: Engine) -> None:
    """Start-up: WAL mode on SQLite, the connection pool on PostgreSQL. Failures are raised."""
    try:
        if isinstance(engine, SQLiteEngine):
            path = engine.path
            if os.path.dirname(path):
                os.makedirs(os.path.dirname(path), exist_ok=True)
            await engine.run_ddl("PRAGMA journal_mode=WAL")
        elif isinstance(engine, PostgresEngine):
            # No reset on release: the gateway never changes session state, and asyncpg's
            # default reset costs a round trip after every query.
            await engine.start_connection_pool(min_size=2, max_size=20, reset=_no_reset)
    except (OSError, sqlite3.Error) as exc:
        raise DatabaseError(f"cannot open the database: {_describe(exc)}") from None
    except Exception as exc:
        if _is_connection_error(exc):
            raise DatabaseError(f"cannot connect to the database: {_describe(exc)}") from None
        raise


async def _no_reset(connection: object) -> None:
    """asyncpg pool hook: nothing to reset (no session settings, temp tables or LISTEN)."""


async def close_database(engine: Engine) -> None:
    if isinstance(engine, PostgresEngine):
        if engine.pool is not None:
            await engine.close_connection_pool()
    elif isinstance(engine, PooledSQLiteEngine):
        await engine.close_pool()


async def ping_database(engine: Engine) -> None:
    await engine.run_ddl("SELECT 1")


async def migrate(engine: Engine) -> None:
    """Run every pending migration of every app, in dependency order."""
    await open_database(engine)
    try:
        response = await run_forwards(app_name="all", fake=False)
    finally:
        await close_database(engine)
    if not response.success:
        raise DatabaseError(f"migrations failed: {response.message}")


def _is_connection_error(exc: BaseException) -> bool:
    from asyncpg import exceptions as pg

    # Unreachable server (class 08), refused start-up, unknown database, unknown role or
    # bad password, no free connection slot: all mean "cannot connect", none is a bug.
    return isinstance(
        exc,
        pg.PostgresConnectionError
        | pg.CannotConnectNowError
        | pg.InvalidCatalogNameError
        | pg.InvalidAuthorizationSpecificationError
        | pg.TooManyConnectionsError,
    )


def _describe(exc: BaseException) -> str:
    text: Any = str(exc) or type(exc).__name__
    return str(text).splitlines()[0]
