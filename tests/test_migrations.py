"""Migrations: the files agree with the Table classes, and build the whole schema from empty.

Agreement is checked with Piccolo's own machinery, as `piccolo migrations new --auto` does: the
schema the migration files describe, diffed against the app's current Table classes.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from piccolo.apps.migrations.auto import DiffableTable, SchemaDiffer, SchemaSnapshot
from piccolo.apps.migrations.commands.base import BaseMigrationManager
from piccolo.columns import Text, Varchar
from piccolo.conf.apps import AppConfig
from piccolo.table import Table, create_table_class

from gateway.settings import Settings
from sharing.piccolo_app import APP_CONFIG as SHARING
from sharing.tables import AuditEvent, Client
from tenants.piccolo_app import APP_CONFIG as TENANTS
from tenants.tables import Membership, Tenant, User

APPS = [TENANTS, SHARING]
PG_ADMIN_URL = os.environ.get(
    "SHIFTGATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)

# The hand-written composite indexes, each led by tenant_id: name -> (table, unique, columns).
COMPOSITE_INDEXES = {
    "memberships_tenant_user": ("memberships", True, ("tenant_id", "user_id")),
    "api_tokens_tenant_created": ("api_tokens", False, ("tenant_id", "created_at")),
    "clients_tenant_code": ("clients", True, ("tenant_id", "short_code")),
    "audit_events_tenant_seq": ("audit_events", True, ("tenant_id", "seq")),
    "audit_events_tenant_time": ("audit_events", False, ("tenant_id", "occurred_at")),
}

PARTITIONED_ON_POSTGRES = {"audit_events"}


# --- (a) migration files and Table classes agree -----------------------------------------------


async def _pending_changes(
    app: AppConfig, tables: Sequence[type[Table]] | None = None
) -> list[str]:
    """What `piccolo migrations new --auto` would write for `app` (with `tables` as its tables)."""
    managers = await BaseMigrationManager().get_migration_managers(app_config=app)
    snapshot = SchemaSnapshot(managers).get_snapshot()
    current = [
        DiffableTable(
            class_name=table.__name__,
            tablename=table._meta.tablename,
            columns=table._meta.non_default_columns,
            constraints=table._meta.constraints,
            schema=table._meta.schema,
        )
        for table in (app.table_classes if tables is None else tables)
    ]
    differ = SchemaDiffer(schema=current, schema_snapshot=snapshot, auto_input="y")
    return [line for group in differ.get_alter_statements() for line in group.statements]


@pytest.mark.parametrize("app", APPS, ids=lambda app: app.app_name)
async def test_migration_files_describe_exactly_the_table_classes(app: AppConfig) -> None:
    assert app.table_classes, "the app registers no tables"
    assert await _pending_changes(app) == []


def _replace(app: AppConfig, original: type[Table], changed: type[Table]) -> list[type[Table]]:
    assert original in app.table_classes
    return [changed if table is original else table for table in app.table_classes]


def _variant(table: type[Table], **columns: Any) -> type[Table]:
    """A copy of `table` (same class and table name) with `columns` added or redefined."""
    return create_table_class(
        table.__name__,
        bases=(table,),
        class_kwargs={"tablename": table._meta.tablename},
        class_members=columns,
    )


def _without(table: type[Table], column: str) -> type[Table]:
    kept = {
        c._meta.name: c.copy() for c in table._meta.non_default_columns if c._meta.name != column
    }
    assert len(kept) == len(table._meta.non_default_columns) - 1
    return create_table_class(
        table.__name__, class_kwargs={"tablename": table._meta.tablename}, class_members=kept
    )


@pytest.mark.parametrize(
    ("app", "original", "changed", "reported"),
    [
        (
            SHARING,
            AuditEvent,
            lambda: _variant(AuditEvent, note=Text(null=True, default=None)),
            "add_column(table_class_name='AuditEvent', tablename='audit_events', column_name='note'",
        ),
        (
            SHARING,
            AuditEvent,
            lambda: _variant(AuditEvent, actor_label=Varchar(length=100)),
            "alter_column(table_class_name='AuditEvent', tablename='audit_events', column_name='actor_label'",
        ),
        (
            SHARING,
            Client,
            lambda: _without(Client, "psa_reference"),
            "drop_column(table_class_name='Client', tablename='clients', column_name='psa_reference'",
        ),
        (
            TENANTS,
            User,
            lambda: _variant(User, email=Varchar(length=254)),  # no longer unique
            "alter_column(table_class_name='User', tablename='users', column_name='email'",
        ),
    ],
    ids=["extra-column", "changed-length", "dropped-column", "dropped-unique"],
)
async def test_a_table_class_out_of_step_with_the_migrations_is_reported(
    app: AppConfig, original: type[Table], changed: Any, reported: str
) -> None:
    changes = await _pending_changes(app, _replace(app, original, changed()))
    assert any(reported in line for line in changes), changes
    # the real classes were not disturbed by building the variant
    assert await _pending_changes(app) == []


async def test_a_table_without_any_migration_is_reported() -> None:
    widget = create_table_class(
        "Widget", class_kwargs={"tablename": "widgets"}, class_members={"name": Varchar()}
    )
    changes = await _pending_changes(SHARING, [*SHARING.table_classes, widget])
    assert any("add_table(class_name='Widget', tablename='widgets'" in line for line in changes)


# --- (b) the schema built from empty ------------------------------------------------------------


async def _pg(url: str, sql: str) -> list[Any]:
    import asyncpg

    connection = await asyncpg.connect(url)
    try:
        return list(await connection.fetch(sql))
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def _fresh_database(backend: str, tmp_path: Path) -> AsyncIterator[Settings]:
    if backend == "sqlite":
        path = tmp_path / "fresh.db"
        assert not path.exists()
        yield Settings(environment="test", database_url=f"sqlite:///{path}", var_dir=tmp_path)
        return
    name = f"shiftgate_migrations_{uuid.uuid4().hex[:12]}"
    await _pg(PG_ADMIN_URL, f"CREATE DATABASE {name}")
    try:
        yield Settings(
            environment="test",
            database_url=f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}",
            var_dir=tmp_path,
        )
    finally:
        await _pg(PG_ADMIN_URL, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextlib.contextmanager
def _restored_binding(monkeypatch: pytest.MonkeyPatch) -> Any:
    """bind_database rebinds every table globally: put the previous engines back afterwards."""
    import gateway.piccolo_conf as conf
    from gateway.database import ALL_TABLES

    monkeypatch.setenv("PICCOLO_CONF", "gateway.piccolo_conf")
    saved = [(table, table._meta._db) for table in ALL_TABLES]
    saved_conf = conf.DB
    try:
        yield
    finally:
        for table, engine in saved:
            table._meta._db = engine
        conf.DB = saved_conf


async def _columns(settings: Settings) -> dict[str, dict[str, bool]]:
    """table -> column -> nullable, read from the database's own catalogue."""
    found: dict[str, dict[str, bool]] = {}
    if settings.database_kind == "sqlite":
        with contextlib.closing(sqlite3.connect(settings.sqlite_path)) as connection:
            tables = [
                row[0]
                for row in connection.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                    " AND name NOT LIKE 'sqlite_%'"
                )
            ]
            for table in tables:
                info = connection.execute(f'PRAGMA table_info("{table}")').fetchall()
                found[table] = {row[1]: not row[3] for row in info}
        return found
    rows = await _pg(
        settings.database_url,
        "SELECT table_name, column_name, is_nullable FROM information_schema.columns"
        " WHERE table_schema = 'public' AND table_name NOT IN"
        " (SELECT relname FROM pg_class WHERE relispartition)",  # audit_events' months
    )
    for row in rows:
        found.setdefault(row["table_name"], {})[row["column_name"]] = row["is_nullable"] == "YES"
    return found


async def _indexes(settings: Settings) -> dict[str, tuple[str, bool, tuple[str, ...]]]:
    """index name -> (table, unique, columns in order), read from the database's catalogue."""
    found: dict[str, tuple[str, bool, tuple[str, ...]]] = {}
    if settings.database_kind == "sqlite":
        with contextlib.closing(sqlite3.connect(settings.sqlite_path)) as connection:
            tables = [
                row[0]
                for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            ]
            for table in tables:
                for _, name, unique, *_ in connection.execute(f'PRAGMA index_list("{table}")'):
                    columns = connection.execute(f'PRAGMA index_info("{name}")').fetchall()
                    found[name] = (table, bool(unique), tuple(c[2] for c in columns))
        return found
    rows = await _pg(
        settings.database_url,
        """
        SELECT i.relname AS name, t.relname AS tablename, x.indisunique AS is_unique,
               array_agg(a.attname ORDER BY k.ord) AS columns
        FROM pg_index x
        JOIN pg_class i ON i.oid = x.indexrelid
        JOIN pg_class t ON t.oid = x.indrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace
        CROSS JOIN LATERAL unnest(x.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
        JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
        WHERE n.nspname = 'public' AND NOT t.relispartition
        GROUP BY i.relname, t.relname, x.indisunique
        """,
    )
    for row in rows:
        found[row["name"]] = (row["tablename"], row["is_unique"], tuple(row["columns"]))
    return found


def _unique_violation(settings: Settings, index: str) -> tuple[type[Exception], str]:
    table, _, columns = COMPOSITE_INDEXES[index]
    if settings.database_kind == "sqlite":
        named = ", ".join(f"{table}.{column}" for column in columns)
        return sqlite3.IntegrityError, f"UNIQUE constraint failed: {named}"
    from asyncpg.exceptions import UniqueViolationError

    if table in PARTITIONED_ON_POSTGRES:  # one unique index per month: audit_events_y2026m11_...
        return (
            UniqueViolationError,
            rf'unique constraint "{table}_\w+_{index.removeprefix(table + "_")}"',
        )
    return UniqueViolationError, f'unique constraint "{index}"'


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.pg)])
async def test_migrations_build_the_schema_from_an_empty_database(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.database import bind_database, close_database, migrate, open_database

    async with _fresh_database(backend, tmp_path) as settings:
        with _restored_binding(monkeypatch):
            engine = bind_database(settings)
            await migrate(engine)
            await migrate(engine)  # a second run finds nothing to do and changes nothing

            columns = await _columns(settings)
            indexes = await _indexes(settings)
            await open_database(engine)
            try:
                await _check_composite_uniqueness(settings)
            finally:
                await close_database(engine)

    tables = [table for app in APPS for table in app.table_classes]
    expected = {
        table._meta.tablename: {c._meta.db_column_name: c._meta.null for c in table._meta.columns}
        for table in tables
    }
    assert set(columns) - {"migration"} == set(expected)
    for name, wanted in expected.items():
        assert columns[name] == wanted, name

    for name, (table, unique, columns_of) in COMPOSITE_INDEXES.items():
        if backend == "postgres" and table in PARTITIONED_ON_POSTGRES:
            unique = False  # unique per partition only (a partitioned table cannot do more)
        assert indexes.get(name) == (table, unique, columns_of), (name, indexes.get(name))
    signatures = set(indexes.values())
    for table in tables:
        for column in table._meta.columns:
            name = column._meta.db_column_name
            if column._meta.unique:
                assert (table._meta.tablename, True, (name,)) in signatures, (table, name)
            if column._meta.index:
                assert any(
                    sig[0] == table._meta.tablename and sig[2] == (name,) for sig in signatures
                ), (table, name)


async def _check_composite_uniqueness(settings: Settings) -> None:
    """Each unique pair is refused twice, while either half alone may repeat."""
    first, second = (
        Tenant(name="A", slug="a", kind="msp", time_zone="UTC"),
        Tenant(name="B", slug="b", kind="noc", time_zone="UTC"),
    )
    await Tenant.insert(first, second)
    user = User(email="u@example.test", display_name="U", password_hash="x")
    await User.insert(user)

    def audit_event(tenant: Tenant, seq: int) -> AuditEvent:
        return AuditEvent(
            tenant_id=tenant.id, seq=seq, actor_type="system", actor_label="t", action="a:b",
            outcome="success", severity="info", prev_hash="0" * 64, hash="1" * 64,
        )  # fmt: skip

    await AuditEvent.insert(audit_event(first, 1), audit_event(first, 2), audit_event(second, 1))
    error, message = _unique_violation(settings, "audit_events_tenant_seq")
    with pytest.raises(error, match=message):
        await AuditEvent.insert(audit_event(first, 1))

    await Membership.insert(
        Membership(tenant_id=first.id, user_id=user.id, role="admin"),
        Membership(tenant_id=second.id, user_id=user.id, role="admin"),
    )
    error, message = _unique_violation(settings, "memberships_tenant_user")
    with pytest.raises(error, match=message):
        await Membership.insert(Membership(tenant_id=first.id, user_id=user.id, role="auditor"))

    await Client.insert(
        Client(tenant_id=first.id, name="C", short_code="CONTOSO"),
        Client(tenant_id=first.id, name="F", short_code="FABRIKAM"),
        Client(tenant_id=second.id, name="C", short_code="CONTOSO"),
    )
    error, message = _unique_violation(settings, "clients_tenant_code")
    with pytest.raises(error, match=message):
        await Client.insert(Client(tenant_id=first.id, name="C2", short_code="CONTOSO"))

    assert await AuditEvent.count() == 3
    assert await Membership.count() == 2
    assert await Client.count() == 3
