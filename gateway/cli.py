"""The `shiftgate` command: serve, init, migrate, demo, create-tenant, create-user, audit verify.

Every failure is one line on stderr and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import io
import json
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.settings import Settings, SettingsError

__all__ = ["main"]


class CLIError(Exception):
    """A failure to report as one line."""


def _settings() -> Settings:
    return Settings.from_env()


async def _with_database(settings: Settings, work: Callable[[], Awaitable[Any]]) -> Any:
    from gateway.database import bind_database, close_database, open_database

    engine = bind_database(settings)
    await open_database(engine)
    try:
        return await work()
    finally:
        await close_database(engine)


def _cmd_init(args: argparse.Namespace) -> None:
    from tenants.root_key import create_root_key_file

    settings = _settings()
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    if settings.root_key:
        print("root key: from SHIFTGATE_ROOT_KEY")
    elif create_root_key_file(settings.root_key_file):
        print(f"root key: created {settings.root_key_file} (mode 0600); back it up safely")
    else:
        mode = settings.root_key_file.stat().st_mode & 0o777
        if mode & 0o077:
            raise CLIError(
                f"{settings.root_key_file} is readable by others (mode {mode:o}): "
                f"run `chmod 600 {settings.root_key_file}`"
            )
        print(f"root key: {settings.root_key_file} exists, kept")
    _run_migrations(settings)


def _run_migrations(settings: Settings) -> None:
    from gateway.database import bind_database, migrate

    engine = bind_database(settings)
    chatter = io.StringIO()
    with contextlib.redirect_stdout(chatter):
        asyncio.run(migrate(engine))
    where = settings.sqlite_path if settings.database_kind == "sqlite" else "PostgreSQL"
    print(f"database: migrated ({where})")


def _cmd_migrate(args: argparse.Namespace) -> None:
    _run_migrations(_settings())


def _cmd_serve(args: argparse.Namespace) -> None:
    import uvicorn

    settings = _settings()
    host = args.host or settings.host
    port = args.port or settings.port
    if args.workers > 1:
        uvicorn.run(
            "gateway.app:create_app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=args.workers,
            log_level=settings.log_level.lower(),
            proxy_headers=False,
        )
        return
    from gateway.app import create_app

    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        proxy_headers=False,
    )


def _cmd_demo(args: argparse.Namespace) -> None:
    from gateway.demo import seed_demo

    settings = _settings()
    facts = asyncio.run(_with_database(settings, lambda: seed_demo(settings)))
    if args.json:
        print(json.dumps(facts, indent=2))
        return
    print("Demo data ready. Sign in at " + facts["portal_url"] + "/login with:")
    for login in facts["logins"]:
        print(f"  {login['tenant']:>9} {login['role']:<8} {login['email']:<28} {login['password']}")
    print(f"MSP API token ({facts['msp']['slug']}): {facts['api_token']}")


def _cmd_create_tenant(args: argparse.Namespace) -> None:
    from sharing.accounts import create_tenant
    from tenants.roles import Actor

    async def work() -> Any:
        return await create_tenant(
            name=args.name,
            slug=args.slug,
            kind=args.kind,
            time_zone=args.time_zone,
            actor=Actor.system("cli"),
        )

    tenant = asyncio.run(_with_database(_settings(), work))
    print(f"tenant created: {tenant.slug} ({tenant.kind.value}, {tenant.time_zone}) id={tenant.id}")


def _cmd_create_user(args: argparse.Namespace) -> None:
    from sharing.accounts import add_member, create_user
    from tenants import service
    from tenants.roles import Actor

    async def work() -> str:
        tenant = await service.get_tenant_by_slug(args.tenant)
        actor = Actor.system("cli")
        if await service.user_by_email(args.email) is not None:
            await add_member(email=args.email, tenant_id=tenant.id, role=args.role, actor=actor)
            return f"existing user {args.email} added to {tenant.slug} as {args.role}"
        password = _read_password(args)
        await create_user(
            email=args.email,
            display_name=args.name or "",
            password=password,
            tenant_id=tenant.id,
            role=args.role,
            actor=actor,
        )
        return f"user created: {args.email}, {args.role} of {tenant.slug}"

    print(asyncio.run(_with_database(_settings(), work)))


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    if env := os.environ.get("SHIFTGATE_NEW_PASSWORD"):
        return env
    if not sys.stdin.isatty():
        raise CLIError("no password given: use --password-stdin or set SHIFTGATE_NEW_PASSWORD")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Repeat:   "):
        raise CLIError("the two passwords differ")
    return first


def _cmd_audit_verify(args: argparse.Namespace) -> None:
    from sharing.audit import verify_chain
    from tenants import service

    async def work() -> Any:
        tenant = await service.get_tenant_by_slug(args.tenant)
        return tenant, await verify_chain(tenant.id)

    tenant, report = asyncio.run(_with_database(_settings(), work))
    if report.ok:
        print(f"audit chain of {tenant.slug}: {report.verified} events verified, unbroken")
        return
    raise CLIError(
        f"audit chain of {tenant.slug} is broken at event {report.broken_at}: {report.problem} "
        f"({report.verified} events verified before it)"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shiftgate", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="serve the gateway over HTTP")
    serve.add_argument("--host", help="address to bind (default SHIFTGATE_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default SHIFTGATE_PORT or 8000)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.set_defaults(run=_cmd_serve)

    commands.add_parser(
        "init", help="create var/, the root key (mode 0600) and the database schema"
    ).set_defaults(run=_cmd_init)
    commands.add_parser("migrate", help="apply pending database migrations").set_defaults(
        run=_cmd_migrate
    )

    demo = commands.add_parser("demo", help="seed the demo tenants (idempotent), print logins")
    demo.add_argument("--json", action="store_true", help="print the demo facts as JSON")
    demo.set_defaults(run=_cmd_demo)

    tenant = commands.add_parser("create-tenant", help="create a tenant")
    tenant.add_argument("--name", required=True)
    tenant.add_argument("--slug", required=True, help="short unique name, e.g. northwind")
    tenant.add_argument("--kind", required=True, choices=["msp", "noc", "both"])
    tenant.add_argument("--time-zone", default="UTC", help="IANA zone, e.g. Europe/Berlin")
    tenant.set_defaults(run=_cmd_create_tenant)

    user = commands.add_parser("create-user", help="create a user in a tenant (or add one)")
    user.add_argument("--email", required=True)
    user.add_argument("--tenant", required=True, help="the tenant's slug")
    user.add_argument("--role", required=True, choices=["owner", "admin", "technician", "auditor"])
    user.add_argument("--name", help="display name")
    user.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    user.set_defaults(run=_cmd_create_user)

    audit = commands.add_parser("audit", help="audit log tools")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True, metavar="COMMAND")
    verify = audit_commands.add_parser("verify", help="verify a tenant's hash chain")
    verify.add_argument("--tenant", required=True, help="the tenant's slug")
    verify.set_defaults(run=_cmd_audit_verify)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        args.run(args)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        print(f"shiftgate: {_one_line(exc)}", file=sys.stderr)
        sys.exit(1)


def _one_line(exc: BaseException) -> str:
    from gateway.database import DatabaseError
    from tenants.errors import DomainError
    from tenants.root_key import RootKeyError

    if isinstance(exc, CLIError | SettingsError | RootKeyError | DatabaseError):
        return str(exc)
    if isinstance(exc, DomainError):
        return exc.detail
    if isinstance(exc, OSError | ConnectionError):
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"cannot reach a service: {first}"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"unexpected {type(exc).__name__}: {text}".rstrip(": ")
