"""The `shiftgate` console script, run as a user runs it: a subprocess in its own directory.

Each test gets a fresh SQLite file and var dir under `tmp_path`; nothing is inherited from the
test run's environment. Every failure must be one line on stderr, prefixed `shiftgate: `.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import secrets
import shutil
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

SHIFTGATE = shutil.which("shiftgate", path=str(Path(sys.executable).parent)) or shutil.which(
    "shiftgate"
)
PG_ADMIN_URL = os.environ.get(
    "SHIFTGATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
UNREACHABLE_PG = "postgresql://postgres@127.0.0.1:1/x"
GOOD_PASSWORD = "a sufficiently long passphrase"


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str

    def error_line(self) -> str:
        """The single line of a failure; asserts it is one line, prefixed, with no traceback."""
        assert self.returncode != 0, f"expected a failure, got exit 0: {self.stdout}"
        assert "Traceback" not in self.stderr, self.stderr
        lines = self.stderr.splitlines()
        assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{self.stderr}"
        assert lines[0].startswith("shiftgate: "), lines[0]
        return lines[0]


class Shiftgate:
    """Runs the real console script with a clean environment rooted in one directory."""

    def __init__(self, home: Path) -> None:
        assert SHIFTGATE, "the shiftgate console script is not installed in this environment"
        self.home = home
        self.db_path = home / "shiftgate.db"
        inherited = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("SHIFTGATE_")
            and key not in {"DATABASE_URL", "REDIS_URL", "PICCOLO_CONF"}
        }
        self.env = {
            **inherited,
            "DATABASE_URL": f"sqlite:///{self.db_path}",
            "SHIFTGATE_VAR_DIR": str(home),
        }

    def __call__(self, *args: str, stdin: str | None = None, **env: str) -> Run:
        done = subprocess.run(
            [str(SHIFTGATE), *args],
            input=stdin,
            stdin=subprocess.DEVNULL if stdin is None else None,
            capture_output=True,
            text=True,
            cwd=self.home,
            env={**self.env, **env},
            timeout=120,
            check=False,
        )
        return Run(done.returncode, done.stdout, done.stderr)

    def ok(self, *args: str, stdin: str | None = None, **env: str) -> Run:
        run = self(*args, stdin=stdin, **env)
        assert run.returncode == 0, f"shiftgate {' '.join(args)} failed: {run.stderr}"
        assert run.stderr == "", run.stderr
        return run

    def query(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        with contextlib.closing(sqlite3.connect(self.db_path)) as connection:
            return connection.execute(sql, params).fetchall()

    def count(self, table: str, where: str = "1 = 1", *params: object) -> int:
        return int(self.query(f"SELECT count(*) FROM {table} WHERE {where}", *params)[0][0])

    def snapshot(self) -> dict[str, int]:
        """The number of rows in every table of the database."""
        tables = self.query(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
        return {name: self.count(name) for (name,) in tables}


@pytest.fixture
def sg(tmp_path: Path) -> Shiftgate:
    return Shiftgate(tmp_path)


@contextlib.asynccontextmanager
async def bound_to(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """Point this process's Piccolo tables at the CLI's database; restore them afterwards."""
    import gateway.piccolo_conf as conf
    from gateway.database import ALL_TABLES, bind_database, close_database, open_database
    from gateway.settings import Settings

    monkeypatch.setenv("PICCOLO_CONF", "gateway.piccolo_conf")
    saved = [(table, table._meta._db) for table in ALL_TABLES]
    saved_conf = conf.DB
    engine = bind_database(
        Settings(database_url=f"sqlite:///{db_path}", var_dir=db_path.parent, environment="test")
    )
    await open_database(engine)
    try:
        yield
    finally:
        await close_database(engine)
        for table, previous in saved:
            table._meta._db = previous
        conf.DB = saved_conf


def _demo_facts(sg: Shiftgate) -> dict[str, Any]:
    sg.ok("init")
    run = sg.ok("demo", "--json")
    facts = json.loads(run.stdout)  # the whole output is one JSON document
    assert isinstance(facts, dict)
    return facts


def _tenant_id(sg: Shiftgate, slug: str) -> str:
    rows = sg.query("SELECT id FROM tenants WHERE slug = ?", slug)
    assert len(rows) == 1, rows
    return str(rows[0][0])


# --- init ---------------------------------------------------------------------------------------


def test_init_creates_a_private_root_key_and_the_schema_and_is_idempotent(
    sg: Shiftgate,
) -> None:
    first = sg.ok("init")

    key_file = sg.home / "root.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    key = key_file.read_bytes()
    assert len(base64.b64decode(key.strip(), validate=True)) == 32
    assert "created" in first.stdout
    tables = {row[0] for row in sg.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"tenants", "users", "memberships", "api_tokens", "clients", "partnerships"} <= tables
    assert {"audit_events", "audit_heads", "migration"} <= tables
    applied = sg.count("migration")
    assert applied >= 4  # two per app at least: tables, then composite indexes

    second = sg.ok("init")

    assert key_file.read_bytes() == key
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert "kept" in second.stdout
    assert sg.count("migration") == applied


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_init_refuses_a_root_key_file_others_can_read(sg: Shiftgate, mode: int) -> None:
    key_file = sg.home / "root.key"
    key = base64.b64encode(secrets.token_bytes(32)) + b"\n"
    key_file.write_bytes(key)
    key_file.chmod(mode)

    line = sg("init").error_line()

    assert str(key_file) in line
    assert "chmod 600" in line
    assert sg("init").returncode == 1
    assert key_file.read_bytes() == key
    assert key_file.stat().st_mode & 0o777 == mode  # reported, not silently changed
    assert not sg.db_path.exists()  # refused before touching the database


def test_init_with_root_key_in_the_environment_writes_no_key_file(sg: Shiftgate) -> None:
    run = sg.ok("init", SHIFTGATE_ROOT_KEY=base64.b64encode(secrets.token_bytes(32)).decode())
    assert "SHIFTGATE_ROOT_KEY" in run.stdout
    assert not (sg.home / "root.key").exists()
    assert sg.count("migration") >= 4


# --- demo ---------------------------------------------------------------------------------------


def test_demo_twice_duplicates_nothing_and_prints_the_same_logins(sg: Shiftgate) -> None:
    sg.ok("init")
    first = sg.ok("demo")
    after_first = sg.snapshot()
    second = sg.ok("demo")
    after_second = sg.snapshot()

    # Re-running may audit that it ran (the sample import records a summary), nothing else.
    audit = {"audit_events", "audit_heads"}
    assert {t: n for t, n in after_second.items() if t not in audit} == {
        t: n for t, n in after_first.items() if t not in audit
    }
    assert "unbroken" in sg.ok("audit", "verify", "--tenant", "northwind").stdout
    assert {t: after_first[t] for t in ("tenants", "users", "memberships")} == {
        "tenants": 2,
        "users": 6,
        "memberships": 6,
    }
    assert (after_first["clients"], after_first["partnerships"]) == (2, 1)
    assert sg.count("api_tokens", "name = 'demo' AND revoked_at IS NULL") == 1
    assert sg.count("api_tokens") == 1  # the token was reused, not reissued and revoked
    assert second.stdout == first.stdout
    for email in (
        "admin@northwind.example",
        "tech@northwind.example",
        "auditor@northwind.example",
        "admin@nightowl.example",
        "tech@nightowl.example",
        "auditor@nightowl.example",
    ):
        assert email in first.stdout
    assert re.search(r"^MSP API token \(northwind\): sgt_\S+$", first.stdout, re.MULTILINE)
    demo_facts = sg.home / "demo.json"  # holds the passwords: owner only
    assert demo_facts.stat().st_mode & 0o777 == 0o600


def test_demo_json_is_one_object_with_the_demo_facts(sg: Shiftgate) -> None:
    facts = _demo_facts(sg)

    assert facts["msp"]["slug"] == "northwind"
    assert facts["noc"]["slug"] == "nightowl"
    assert facts["msp"]["id"] == _tenant_id(sg, "northwind")
    assert facts["noc"]["id"] == _tenant_id(sg, "nightowl")
    assert facts["api_token"].startswith("sgt_")
    logins = {login["email"]: login for login in facts["logins"]}
    assert set(logins) == {
        "admin@northwind.example",
        "tech@northwind.example",
        "auditor@northwind.example",
        "admin@nightowl.example",
        "tech@nightowl.example",
        "auditor@nightowl.example",
    }
    assert all(len(login["password"]) >= 12 for login in logins.values())
    assert set(facts["clients"]) == {"CONTOSO", "FABRIKAM"}
    for code, client_id in facts["clients"].items():
        assert sg.query("SELECT tenant_id, short_code FROM clients WHERE id = ?", client_id) == [
            (facts["msp"]["id"], code)
        ]
    partnership = sg.query(
        "SELECT tenant_id, noc_tenant_id, status FROM partnerships WHERE id = ?",
        facts["partnership_id"],
    )
    assert partnership == [(facts["msp"]["id"], facts["noc"]["id"], "active")]


async def test_printed_passwords_and_token_actually_work(
    sg: Shiftgate, monkeypatch: pytest.MonkeyPatch
) -> None:
    facts = await asyncio.to_thread(_demo_facts, sg)
    plain = (await asyncio.to_thread(sg.ok, "demo")).stdout
    from sharing.accounts import sign_in
    from tenants.service import actor_for_token

    async with bound_to(sg.db_path, monkeypatch):
        for login in facts["logins"]:
            # the plain listing shows the same credentials as the JSON
            assert [login["tenant"], login["role"], login["email"], login["password"]] in [
                line.split() for line in plain.splitlines()
            ]
            actor = await sign_in(login["email"], login["password"])
            assert actor is not None, login["email"]
            assert (
                str(actor.tenant_id)
                == facts["msp" if login["tenant"] == "northwind" else "noc"]["id"]
            )
            assert await sign_in(login["email"], login["password"] + "x") is None
        token_actor = await actor_for_token(facts["api_token"], datetime.now(UTC))
        assert token_actor is not None
        assert str(token_actor.tenant_id) == facts["msp"]["id"]


# --- create-tenant ------------------------------------------------------------------------------


def test_create_tenant_writes_the_tenant_and_its_first_audit_event(sg: Shiftgate) -> None:
    sg.ok("init")
    run = sg.ok(
        "create-tenant", "--name", "Acme IT", "--slug", "acme", "--kind", "msp",
        "--time-zone", "Europe/Vienna",
    )  # fmt: skip

    assert run.stdout.startswith("tenant created: acme (msp, Europe/Vienna)")
    assert sg.query("SELECT name, kind, time_zone FROM tenants WHERE slug = 'acme'") == [
        ("Acme IT", "msp", "Europe/Vienna")
    ]
    acme = _tenant_id(sg, "acme")
    assert sg.query("SELECT seq, action FROM audit_events WHERE tenant_id = ?", acme) == [
        (1, "tenant:created")
    ]
    verify = sg.ok("audit", "verify", "--tenant", "acme")
    assert "1 events verified" in verify.stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--slug", "Bad Slug!", "--kind", "msp"], "slug"),
        (["--slug", "acme2-", "--kind", "msp"], "slug"),
        (["--slug", "acme2", "--kind", "bank"], "--kind"),
        (["--slug", "acme2", "--kind", "msp", "--time-zone", "Mars/Olympus_Mons"], "time zone"),
        (["--slug", "acme2", "--kind", "msp", "--time-zone", "../../etc/passwd"], "time zone"),
        (["--slug", "acme", "--kind", "noc"], "exists"),
        (["--slug", "ACME", "--kind", "noc"], "exists"),
    ],
)
def test_create_tenant_rejects_bad_input_with_one_line_and_writes_nothing(
    sg: Shiftgate, args: list[str], says: str
) -> None:
    sg.ok("init")
    sg.ok("create-tenant", "--name", "Acme IT", "--slug", "acme", "--kind", "msp")
    before = sg.snapshot()
    slugs = sg.query("SELECT slug, kind FROM tenants")

    line = sg("create-tenant", "--name", "Second", *args).error_line()

    assert says in line
    assert sg.snapshot() == before
    assert sg.query("SELECT slug, kind FROM tenants") == slugs


# --- create-user --------------------------------------------------------------------------------


async def test_create_user_reads_the_password_from_stdin(
    sg: Shiftgate, monkeypatch: pytest.MonkeyPatch
) -> None:
    await asyncio.to_thread(sg.ok, "init")
    await asyncio.to_thread(
        sg.ok, "create-tenant", "--name", "Acme IT", "--slug", "acme", "--kind", "msp"
    )
    run = await asyncio.to_thread(
        sg.ok,
        "create-user", "--email", "Pat@Acme.example", "--tenant", "acme", "--role", "technician",
        "--name", "Pat", "--password-stdin",
        stdin=GOOD_PASSWORD + "\n",
    )  # fmt: skip

    assert "technician of acme" in run.stdout
    acme = _tenant_id(sg, "acme")
    assert sg.query(
        "SELECT u.email, m.role FROM users u JOIN memberships m ON m.user_id = u.id"
        " WHERE m.tenant_id = ?",
        acme,
    ) == [("pat@acme.example", "technician")]
    from sharing.accounts import sign_in

    async with bound_to(sg.db_path, monkeypatch):
        actor = await sign_in("pat@acme.example", GOOD_PASSWORD)  # stored without the newline
        assert actor is not None
        assert str(actor.tenant_id) == acme
        assert await sign_in("pat@acme.example", GOOD_PASSWORD + "\n") is None


def test_create_user_twice_adds_the_existing_user_to_another_tenant(sg: Shiftgate) -> None:
    sg.ok("init")
    for slug in ("acme", "owlnoc"):
        sg.ok("create-tenant", "--name", slug, "--slug", slug, "--kind", "both")
    args = ("create-user", "--email", "pat@acme.example", "--role", "admin", "--password-stdin")
    sg.ok(*args, "--tenant", "acme", stdin=GOOD_PASSWORD)
    run = sg.ok(*args, "--tenant", "owlnoc", stdin=GOOD_PASSWORD)

    assert "existing user" in run.stdout
    assert sg.count("users") == 1
    assert sg.count("memberships") == 2


@pytest.mark.parametrize(
    ("tenant", "password", "says"),
    [
        ("acme", "elevenchars", "12 characters"),
        ("acme", "", "12 characters"),
        ("nowhere", GOOD_PASSWORD, "nowhere"),
    ],
)
def test_create_user_rejects_with_one_line_and_writes_nothing(
    sg: Shiftgate, tenant: str, password: str, says: str
) -> None:
    sg.ok("init")
    sg.ok("create-tenant", "--name", "Acme IT", "--slug", "acme", "--kind", "msp")
    before = sg.snapshot()

    line = sg(
        "create-user", "--email", "pat@acme.example", "--tenant", tenant, "--role", "admin",
        "--password-stdin",
        stdin=password + "\n",
    ).error_line()  # fmt: skip

    assert says in line
    assert sg.snapshot() == before
    assert sg.count("users") == 0


def test_create_user_without_a_password_source_says_how_to_give_one(sg: Shiftgate) -> None:
    sg.ok("init")
    sg.ok("create-tenant", "--name", "Acme IT", "--slug", "acme", "--kind", "msp")

    line = sg(
        "create-user", "--email", "pat@acme.example", "--tenant", "acme", "--role", "admin"
    ).error_line()

    assert "--password-stdin" in line
    assert sg.count("users") == 0


# --- environment and usage ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", "mysql://x"),
        ("SHIFTGATE_PORT", "eighty"),
        ("SHIFTGATE_BASE_URL", "ftp://x"),
        ("SHIFTGATE_ENVIRONMENT", "staging"),
        ("SHIFTGATE_SESSION_HOURS", "abc"),
        ("REDIS_URL", "http://cache"),
        ("SHIFTGATE_LOGIN_WINDOW_SECONDS", "0"),
    ],
)
@pytest.mark.parametrize("command", [["init"], ["demo"], ["audit", "verify", "--tenant", "x"]])
def test_malformed_environment_is_named_in_one_line(
    sg: Shiftgate, name: str, value: str, command: list[str]
) -> None:
    line = sg(*command, **{name: value}).error_line()

    assert line.startswith(f"shiftgate: {name}: ")
    assert list(sg.home.iterdir()) == []  # nothing created before the settings were checked


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["bogus"],
        ["audit"],
        ["create-user", "--email", "pat@acme.example"],
        ["serve", "--port", "eighty"],
    ],
)
def test_usage_errors_are_one_line(sg: Shiftgate, args: list[str]) -> None:
    line = sg(*args).error_line()
    assert "--help" in line  # says where to look


def test_a_command_before_init_says_to_run_init(sg: Shiftgate) -> None:
    line = sg("create-tenant", "--name", "Acme", "--slug", "acme", "--kind", "msp").error_line()
    assert "shiftgate init" in line


@pytest.mark.parametrize(
    "command",
    [
        ["init"],
        ["migrate"],
        ["demo"],
        ["audit", "verify", "--tenant", "northwind"],
        ["create-tenant", "--name", "Acme", "--slug", "acme", "--kind", "msp"],
    ],
)
def test_unreachable_postgresql_is_one_line(sg: Shiftgate, command: list[str]) -> None:
    run = sg(*command, DATABASE_URL=UNREACHABLE_PG)
    line = run.error_line()
    assert run.returncode == 1
    assert line.startswith("shiftgate: cannot open the database: "), line


# --- audit verify -------------------------------------------------------------------------------


def test_audit_verify_after_demo_counts_every_event(sg: Shiftgate) -> None:
    facts = _demo_facts(sg)

    run = sg.ok("audit", "verify", "--tenant", "northwind")

    match = re.fullmatch(r"audit chain of northwind: (\d+) events verified, unbroken\n", run.stdout)
    assert match, run.stdout
    stored = sg.count("audit_events", "tenant_id = ?", facts["msp"]["id"])
    assert stored >= 3
    assert int(match.group(1)) == stored


def test_audit_verify_finds_one_changed_byte_and_names_its_sequence_number(
    sg: Shiftgate,
) -> None:
    facts = _demo_facts(sg)
    northwind = facts["msp"]["id"]
    [(label,)] = sg.query(
        "SELECT actor_label FROM audit_events WHERE tenant_id = ? AND seq = 3", northwind
    )
    altered = label[:-1] + ("X" if label[-1] != "X" else "Y")
    with contextlib.closing(sqlite3.connect(sg.db_path)) as connection, connection:
        changed = connection.execute(
            "UPDATE audit_events SET actor_label = ? WHERE tenant_id = ? AND seq = 3",
            (altered, northwind),
        ).rowcount
    assert changed == 1

    line = sg("audit", "verify", "--tenant", "northwind").error_line()

    assert re.search(r"\bevent 3\b", line), line
    assert "2 events verified before it" in line
    assert "altered" in line
    # the other tenant's chain is untouched and still verifies
    assert "unbroken" in sg.ok("audit", "verify", "--tenant", "nightowl").stdout


def test_audit_verify_finds_a_deleted_event(sg: Shiftgate) -> None:
    facts = _demo_facts(sg)
    with contextlib.closing(sqlite3.connect(sg.db_path)) as connection, connection:
        connection.execute(
            "DELETE FROM audit_events WHERE tenant_id = ? AND seq = 5", (facts["msp"]["id"],)
        )

    line = sg("audit", "verify", "--tenant", "northwind").error_line()

    assert re.search(r"\bevent 5\b", line), line
    assert "missing" in line


def test_audit_verify_of_an_unknown_tenant_is_one_line(sg: Shiftgate) -> None:
    sg.ok("init")
    line = sg("audit", "verify", "--tenant", "nowhere").error_line()
    assert "nowhere" in line


# --- PostgreSQL ---------------------------------------------------------------------------------


async def _pg_admin(sql: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def _pg_value(url: str, sql: str, *params: object) -> Any:
    import asyncpg

    connection = await asyncpg.connect(url)
    try:
        return await connection.fetchval(sql, *params)
    finally:
        await connection.close()


@pytest.fixture
def fresh_pg_url() -> Iterator[str]:
    name = f"shiftgate_cli_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_admin(f"CREATE DATABASE {name}"))
    try:
        yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        asyncio.run(_pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.mark.pg
def test_init_demo_and_audit_verify_on_a_fresh_postgresql_database(
    sg: Shiftgate, fresh_pg_url: str
) -> None:
    env = {
        "DATABASE_URL": fresh_pg_url,
        "SHIFTGATE_ROOT_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
    }
    init = sg.ok("init", **env)
    assert "database: migrated (PostgreSQL)" in init.stdout
    assert not (sg.home / "root.key").exists()
    assert sg.ok("init", **env).stdout == init.stdout  # idempotent

    first = sg.ok("demo", **env)
    second = sg.ok("demo", **env)
    assert second.stdout == first.stdout

    facts = json.loads(sg.ok("demo", "--json", **env).stdout)
    count = asyncio.run(
        _pg_value(
            fresh_pg_url,
            "SELECT count(*) FROM audit_events WHERE tenant_id = $1",
            uuid.UUID(facts["msp"]["id"]),
        )
    )
    tenants = asyncio.run(_pg_value(fresh_pg_url, "SELECT count(*) FROM tenants"))
    assert tenants == 2
    verify = sg.ok("audit", "verify", "--tenant", "northwind", **env)
    assert verify.stdout == f"audit chain of northwind: {count} events verified, unbroken\n"
    assert count >= 3


@pytest.mark.pg
@pytest.mark.parametrize(
    ("url", "says"),
    [
        (f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/shiftgate_no_such_db", "does not exist"),
        ("postgresql://no_such_role@127.0.0.1:5432/test", "no_such_role"),
    ],
)
def test_postgresql_refusing_the_connection_is_one_line(sg: Shiftgate, url: str, says: str) -> None:
    line = sg("audit", "verify", "--tenant", "northwind", DATABASE_URL=url).error_line()
    assert line.startswith("shiftgate: cannot connect to the database")
    assert says in line


def test_worker_once_does_what_is_due_and_exits(sg: Shiftgate) -> None:
    facts = _demo_facts(sg)
    with contextlib.closing(sqlite3.connect(sg.db_path)) as connection:
        connection.execute(
            "UPDATE grants SET ends_at = '2000-01-01 00:00:00+00:00' WHERE id = ?",
            (facts["grant_id"],),
        )
        connection.commit()
    run = sg.ok("worker", "--once")
    assert run.stdout.startswith("grants: 1 expired, 0 activated, 0 warned"), run.stdout
    assert sg.query("SELECT status FROM grants WHERE id = ?", facts["grant_id"]) == [("expired",)]
    assert sg.count("audit_events", "action = 'grant:expired'") == 2  # the MSP's and the NOC's
    assert sg.ok("worker", "--once").stdout.startswith("grants: 0 expired")


def test_worker_with_a_bad_setting_is_one_line(sg: Shiftgate) -> None:
    sg.ok("init")
    line = sg("worker", "--once", SHIFTGATE_WORKER_MAX_SLEEP_SECONDS="soon").error_line()
    assert "SHIFTGATE_WORKER_MAX_SLEEP_SECONDS" in line


def test_audit_archive_refuses_what_the_retention_keeps(sg: Shiftgate, tmp_path: Path) -> None:
    facts = _demo_facts(sg)
    out = tmp_path / "archive.jsonl"
    slug = facts["msp"]["slug"]
    before = sg.count("audit_events")
    line = sg("audit", "archive", "--tenant", slug, "--month", "2026-13", "--out", str(out))
    assert "is not a month" in line.error_line()
    line = sg("audit", "archive", "--tenant", slug, "--month", "2025-10", "--out", str(out))
    assert "keeps its audit log forever" in line.error_line()
    assert not out.exists()
    assert sg.count("audit_events") == before
