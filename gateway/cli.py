"""The `shiftgate` command: serve, worker, init, migrate, demo, tenants, users, audit, keys.

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
from pathlib import Path
from typing import Any, NoReturn

import msgspec

from gateway.settings import Settings, SettingsError

__all__ = ["main"]


class CLIError(Exception):
    """A failure to report as one line."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line too (argparse prints the whole usage first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"shiftgate: {message} (see `{self.prog} --help`)\n")


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
        from tenants.root_key import EnvRootKey

        EnvRootKey(settings.root_key)  # refuses a malformed key now, not at start-up
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


def _configure_logging(settings: Settings) -> None:
    import logging

    logging.basicConfig(level=settings.log_level.upper())
    logging.getLogger("piccolo").setLevel(logging.WARNING)  # it announces every engine at INFO


def _cmd_serve(args: argparse.Namespace) -> None:
    import uvicorn

    settings = _settings()
    if args.with_worker:
        os.environ["SHIFTGATE_RUN_WORKER"] = "true"  # for every process `--workers` starts
        settings = msgspec.structs.replace(settings, run_worker=True)
    _configure_logging(settings)
    host = args.host or settings.host
    port = args.port or settings.port
    if args.workers > 1 and not settings.redis_url:
        raise CLIError(
            "several workers share sessions and counters through Redis: set REDIS_URL, "
            "or serve with --workers 1"
        )
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
    from gateway.app import create_app, tune_garbage_collector

    app = create_app(settings)
    tune_garbage_collector()
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        proxy_headers=False,
    )


def _cmd_worker(args: argparse.Namespace) -> None:
    import signal

    from gateway.worker import running_worker
    from sharing.clock import DatabaseClock

    settings = _settings()
    _configure_logging(settings)

    async def work() -> None:
        keyring = _keyring(settings)
        async with running_worker(settings, clock=DatabaseClock(), keyring=keyring) as worker:
            if args.once:
                report = await worker.run_once()
                print(
                    f"grants: {report.transitions.expired} expired, "
                    f"{report.transitions.activated} activated, {report.transitions.warned} "
                    f"warned; events dispatched: {report.dispatched}; webhooks delivered: "
                    f"{report.deliveries.delivered}, failed attempts: {report.deliveries.failed}; "
                    f"checkpoints signed: {report.checkpoints}"
                )
                return
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stop.set)
            await worker.run(stop)

    asyncio.run(_with_database(settings, work))


def _cmd_demo(args: argparse.Namespace) -> None:
    from gateway.demo import seed_demo

    settings = _settings()
    facts = asyncio.run(_with_database(settings, lambda: seed_demo(settings)))
    if args.json:
        print(json.dumps(facts, indent=2))
        return
    print("Demo data ready. Sign in at " + facts["portal_url"] + "/login with:")
    logins = facts["logins"]
    widths = [max(len(login[key]) for login in logins) for key in ("tenant", "role", "email")]
    for login in logins:
        tenant, role, email = (login[key] for key in ("tenant", "role", "email"))
        print(
            f"  {tenant:>{widths[0]}} {role:<{widths[1]}} {email:<{widths[2]}} {login['password']}"
        )
    print(f"MSP API token ({facts['msp']['slug']}): {facts['api_token']}")
    oauth = facts["oauth_client"]
    print(f"NOC OAuth client ({facts['noc']['slug']}): {oauth['client_id']}")
    print(f"  secret: {oauth['client_secret']}")
    print(f"{facts['documents']} sample documents; `shiftgate demo --json` prints all of this")


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


def _cmd_audit_archive(args: argparse.Namespace) -> None:
    from datetime import date

    from sharing.audit_archive import archive_month
    from sharing.clock import DatabaseClock

    try:
        year, month = (int(part) for part in args.month.split("-"))
        first_day = date(year, month, 1)
    except ValueError:
        raise CLIError(f"--month {args.month!r} is not a month: write e.g. 2025-10") from None
    out = Path(args.out)
    if out.exists():
        raise CLIError(f"{out} exists already: archives are never overwritten")
    settings = _settings()

    async def work() -> Any:
        tenant, actor = await _tenant_actor(args.tenant, "cli audit archive")
        return await archive_month(
            _keyring(settings),
            tenant.id,
            first_day,
            out,
            actor=actor,
            now=await DatabaseClock().now(),
        )

    try:
        report = asyncio.run(_with_database(settings, work))
    except BaseException:
        out.unlink(missing_ok=True)  # nothing was removed: do not leave a half-written file
        raise
    dropped = "; its month partition was dropped" if report.partition_dropped else ""
    print(
        f"archived {_count(report.events, 'event')} of {args.tenant} up to {report.month} "
        f"(seq {report.from_seq} to {report.to_seq}) to {out}, sha256 {report.sha256}{dropped}"
    )


def _instant(option: str, text: str | None) -> Any:
    """An ISO 8601 time with a UTC offset, or None."""
    from datetime import datetime

    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CLIError(
            f"{option} {text!r} is not an ISO 8601 time, e.g. 2026-12-01T00:00:00Z"
        ) from None
    if moment.utcoffset() is None:
        raise CLIError(f"{option} {text!r} has no UTC offset: write e.g. 2026-12-01T00:00:00Z")
    return moment


class _ExportSink:
    """Where an export goes: standard output, or a file written beside its final name and
    moved there only once complete (an export that fails half-way leaves no file behind)."""

    def __init__(self, target: str) -> None:
        self.target = target
        self._final: Path | None = None
        self._partial: Path | None = None
        if target == "-":
            self._stream: Any = sys.stdout.buffer
            return
        path = Path(target)
        if path.is_dir():
            raise CLIError(f"cannot write {target}: it is a directory")
        if path.exists() and not path.is_file():  # a device or a pipe: write it directly
            self._stream = self._open(path)
            return
        self._final, self._partial = path, path.with_name(path.name + ".partial")
        self._stream = self._open(self._partial)

    def _open(self, path: Path) -> Any:
        try:
            return path.open("wb")
        except OSError as exc:
            raise CLIError(f"cannot write {self.target}: {exc.strerror or exc}") from None

    def write(self, chunk: bytes) -> None:
        try:
            self._stream.write(chunk)
        except OSError as exc:
            raise CLIError(f"cannot write {self.target}: {exc.strerror or exc}") from None

    def finish(self) -> None:
        try:
            self._stream.flush()
            if self._final is None:
                return
            self._stream.close()
            assert self._partial is not None
            os.replace(self._partial, self._final)
        except OSError as exc:
            raise CLIError(f"cannot write {self.target}: {exc.strerror or exc}") from None

    def abandon(self) -> None:
        if self._partial is not None:
            self._stream.close()
            self._partial.unlink(missing_ok=True)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _cmd_audit_export(args: argparse.Namespace) -> None:
    from sharing.audit_export import export_chunks, start_export
    from sharing.clock import DatabaseClock

    since, until = _instant("--since", args.since), _instant("--until", args.until)
    if since is not None and until is not None and since >= until:
        raise CLIError("--since must be before --until")
    settings = _settings()
    sink = _ExportSink(args.out)

    async def work() -> Any:
        _, actor = await _tenant_actor(args.tenant, "cli audit export")
        plan = await start_export(
            actor, _keyring(settings), since=since, until=until, now=await DatabaseClock().now()
        )
        async for chunk in export_chunks(plan):
            sink.write(chunk)
        return plan

    try:
        plan = asyncio.run(_with_database(settings, work))
        sink.finish()
    except BaseException:
        sink.abandon()
        raise
    where = "standard output" if args.out == "-" else args.out
    span = f"seq {plan.from_seq} to {plan.to_seq}" if plan.events else "none in the time range"
    print(
        f"exported {_count(plan.events, 'event')} of {args.tenant} ({span}) to {where}",
        file=sys.stderr if args.out == "-" else sys.stdout,
    )


def _trusted_key(text: str) -> bytes:
    import base64
    import binascii

    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise CLIError(
            f"--trust-key {text!r} is not an Ed25519 public key (32 bytes, base64url), as "
            "/.well-known/shiftgate-audit-keys/TENANT_ID lists them"
        )
    return raw


def _cmd_audit_verify_export(args: argparse.Namespace) -> None:
    """Needs no settings and no database: only the file."""
    from sharing.audit_export import verify_export

    trusted = None if args.trust_key is None else [_trusted_key(key) for key in args.trust_key]
    try:
        stream = sys.stdin.buffer if args.file == "-" else Path(args.file).open("rb")  # noqa: SIM115
    except OSError as exc:
        raise CLIError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    try:
        with stream:
            report = verify_export(stream, trusted_keys=trusted)
    except OSError as exc:
        raise CLIError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    if report.failure is not None:
        raise CLIError(str(report.failure))
    signers = ", ".join(
        f"key {key.key_id} (Ed25519 {key.public_key}{'' if trusted is None else ', trusted'})"
        for key in report.signers
    )
    span = f"seq {report.from_seq} to {report.to_seq}" if report.events_verified else "no events"
    print(
        f"verified {_count(report.events_verified, 'event')}, "
        f"{_count(report.checkpoints_verified, 'checkpoint')}, "
        f"signed by {signers or 'no key (nothing to sign)'}; tenant {report.tenant_id}, {span}"
    )


def _progress(label: str) -> Callable[..., None]:
    """A one-line progress bar on stderr (redrawn in place on a terminal)."""
    interactive = sys.stderr.isatty()

    def show(done: int, total: int, name: str = "") -> None:
        width = 30
        filled = width * done // total if total else width
        line = f"{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} {name}"[:120]
        if interactive:
            print("\r" + line.ljust(120), end="" if done < total else "\n", file=sys.stderr)
        elif done == total:
            print(line, file=sys.stderr)

    return show


def _keyring(settings: Settings) -> Any:
    from gateway.app import root_key_provider
    from tenants.keyring import KeyRing

    return KeyRing(root_key_provider(settings))


async def _tenant_actor(slug: str, label: str) -> Any:
    from tenants import service
    from tenants.roles import Actor, ActorKind

    tenant = await service.get_tenant_by_slug(slug)
    actor = Actor(
        kind=ActorKind.SYSTEM, id=None, label=label, tenant_id=tenant.id, tenant_kind=tenant.kind
    )
    return tenant, actor


def _cmd_import_markdown(args: argparse.Namespace) -> None:
    from sharing.importer import import_markdown

    folder = Path(args.directory)
    if not folder.is_dir():
        raise CLIError(f"{folder} is not a directory")
    settings = _settings()

    async def work() -> Any:
        _, actor = await _tenant_actor(args.tenant, "cli import")
        return await import_markdown(
            actor, _keyring(settings), folder, progress=_progress("importing")
        )

    report = asyncio.run(_with_database(settings, work))
    for source, problem in report.errors:
        print(f"{source}: {problem}", file=sys.stderr)
    print(
        f"imported {folder}: {report.created} created, {report.updated} updated, "
        f"{report.unchanged} unchanged, {report.failed} failed"
    )
    if report.failed:
        sys.exit(1)


def _cmd_keys_rotate(args: argparse.Namespace) -> None:
    from sharing.keys import rotate_tenant_key

    settings = _settings()

    async def work() -> Any:
        tenant, actor = await _tenant_actor(args.tenant, "cli keys rotate")
        return await rotate_tenant_key(
            _keyring(settings),
            tenant,
            actor=actor,
            batch_size=args.batch_size,
            progress=_progress("re-wrapping"),
        )

    report = asyncio.run(_with_database(settings, work))
    retired = ", ".join(map(str, report.retired_versions)) or "none"
    print(
        f"tenant {args.tenant}: key version {report.new_version} active, "
        f"{report.rewrapped} data keys re-wrapped, retired versions: {retired}"
    )


def _cmd_keys_rotate_audit(args: argparse.Namespace) -> None:
    from sharing.checkpoints import rotate_audit_key

    settings = _settings()

    async def work() -> Any:
        tenant, actor = await _tenant_actor(args.tenant, "cli keys rotate-audit")
        return await rotate_audit_key(_keyring(settings), tenant.id, actor=actor)

    key_id = asyncio.run(_with_database(settings, work))
    print(
        f"tenant {args.tenant}: audit key {key_id} signs new checkpoints; "
        "the retired keys stay published for the checkpoints they signed"
    )


def _cmd_keys_rotate_root(args: argparse.Namespace) -> None:
    from gateway.app import root_key_provider
    from sharing.keys import rotate_root_key
    from tenants.keyring import KeyRing
    from tenants.roles import Actor
    from tenants.root_key import FileRootKey

    settings = _settings()
    provider = root_key_provider(settings)
    if not isinstance(provider, FileRootKey):
        raise CLIError(
            "the root key comes from SHIFTGATE_ROOT_KEY: rotate it where it is kept "
            "(unset it to use the key file)"
        )

    async def work() -> Any:
        return await rotate_root_key(
            KeyRing(provider),
            _signer(settings),
            provider,
            actor=Actor.system("cli keys rotate-root"),
            progress=_progress("re-wrapping tenant keys"),
        )

    old_id, new_id, count = asyncio.run(_with_database(settings, work))
    print(
        f"root key {new_id} now wraps {count} tenant and signing keys; the old key {old_id} "
        f"was moved beside {provider.path} (keep it only as long as backups made before now)"
    )


def _signer(settings: Settings) -> Any:
    from gateway.app import root_key_provider
    from tenants.signing import TokenSigner

    return TokenSigner(root_key_provider(settings), max_token_seconds=settings.access_token_seconds)


def _cmd_keys_rotate_signing(args: argparse.Namespace) -> None:
    from sharing.keys import rotate_signing_key
    from tenants.roles import Actor

    settings = _settings()

    async def work() -> str:
        return await rotate_signing_key(
            _signer(settings), actor=Actor.system("cli keys rotate-signing")
        )

    kid = asyncio.run(_with_database(settings, work))
    print(
        f"signing key {kid} now signs new tokens; the previous key stays in the JWKS for "
        f"{settings.access_token_seconds} s more, while its tokens may live"
    )


def _cmd_delete_tenant(args: argparse.Namespace) -> None:
    from sharing.keys import delete_tenant
    from tenants import service
    from tenants.roles import Actor

    if args.confirm != args.slug:
        raise CLIError(f"this destroys {args.slug}'s keys for good: repeat --confirm {args.slug}")
    settings = _settings()

    async def work() -> int:
        tenant = await service.get_tenant_by_slug(args.slug)
        return await delete_tenant(
            _keyring(settings), tenant, actor=Actor.system("cli delete-tenant")
        )

    destroyed = asyncio.run(_with_database(settings, work))
    print(
        f"tenant {args.slug} deleted: {destroyed} key versions destroyed; its content is unreadable"
    )


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="shiftgate", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="serve the gateway over HTTP")
    serve.add_argument("--host", help="address to bind (default SHIFTGATE_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default SHIFTGATE_PORT or 8000)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.add_argument(
        "--with-worker",
        action="store_true",
        help="also run the worker in each process (as SHIFTGATE_RUN_WORKER=true does)",
    )
    serve.set_defaults(run=_cmd_serve)

    worker = commands.add_parser(
        "worker", help="expire and activate grants on time, deliver webhooks (runs until stopped)"
    )
    worker.add_argument("--once", action="store_true", help="do what is due now, then exit")
    worker.set_defaults(run=_cmd_worker)

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
    export = audit_commands.add_parser(
        "export", help="export a tenant's audit events with their signed checkpoints (JSON Lines)"
    )
    export.add_argument("--tenant", required=True, help="the tenant's slug")
    export.add_argument("--since", help="events at or after this time (ISO 8601 with offset)")
    export.add_argument("--until", help="events before this time (ISO 8601 with offset)")
    export.add_argument("--out", required=True, help="the file to write; - for standard output")
    export.set_defaults(run=_cmd_audit_export)
    verify_export = audit_commands.add_parser(
        "verify-export", help="verify an export file offline (needs no database)"
    )
    verify_export.add_argument("file", help="the export file; - for standard input")
    verify_export.add_argument(
        "--trust-key",
        action="append",
        metavar="PUBLIC_KEY",
        help="a published audit key of the tenant (base64url); checkpoints must be signed by "
        "one of the keys given (repeat for several)",
    )
    verify_export.set_defaults(run=_cmd_audit_verify_export)
    archive = audit_commands.add_parser(
        "archive",
        help="move a tenant's events up to a month past its retention into a verified file",
    )
    archive.add_argument("--tenant", required=True, help="the tenant's slug")
    archive.add_argument("--month", required=True, help="the last month to archive, e.g. 2025-10")
    archive.add_argument("--out", required=True, help="the archive file to write (must not exist)")
    archive.set_defaults(run=_cmd_audit_archive)
    importer = commands.add_parser("import", help="import documents")
    import_kinds = importer.add_subparsers(dest="import_kind", required=True, metavar="FORMAT")
    markdown = import_kinds.add_parser(
        "markdown", help="a folder of Markdown files with front matter (idempotent)"
    )
    markdown.add_argument("directory", help="the folder; every *.md below it is imported")
    markdown.add_argument("--tenant", required=True, help="the MSP's slug")
    markdown.set_defaults(run=_cmd_import_markdown)

    keys = commands.add_parser("keys", help="encryption key operations")
    key_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")
    rotate = key_commands.add_parser(
        "rotate", help="new key version for a tenant; re-wrap its data keys"
    )
    rotate.add_argument("--tenant", required=True, help="the tenant's slug")
    rotate.add_argument("--batch-size", type=int, default=500, help="data keys per transaction")
    rotate.set_defaults(run=_cmd_keys_rotate)
    key_commands.add_parser(
        "rotate-root", help="new root key; re-wrap every tenant key under it"
    ).set_defaults(run=_cmd_keys_rotate_root)
    key_commands.add_parser(
        "rotate-signing", help="new access-token signing key (the old one stays published)"
    ).set_defaults(run=_cmd_keys_rotate_signing)
    rotate_audit = key_commands.add_parser(
        "rotate-audit", help="new audit checkpoint signing key for a tenant (old ones stay listed)"
    )
    rotate_audit.add_argument("--tenant", required=True, help="the tenant's slug")
    rotate_audit.set_defaults(run=_cmd_keys_rotate_audit)

    delete = commands.add_parser(
        "delete-tenant", help="delete a tenant and destroy its keys (crypto-shredding)"
    )
    delete.add_argument("--slug", required=True)
    delete.add_argument("--confirm", required=True, help="the slug again")
    delete.set_defaults(run=_cmd_delete_tenant)
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
    if _is_missing_schema(exc):
        detail = str(exc).splitlines()[0]
        return f"the database schema is missing or out of date ({detail}): run `shiftgate init`"
    if isinstance(exc, OSError | ConnectionError):
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"cannot reach a service: {first}"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"unexpected {type(exc).__name__}: {text}".rstrip(": ")


def _is_missing_schema(exc: BaseException) -> bool:
    import sqlite3

    from asyncpg.exceptions import UndefinedColumnError, UndefinedTableError

    if isinstance(exc, sqlite3.OperationalError):
        return str(exc).startswith(("no such table:", "no such column:"))
    return isinstance(exc, UndefinedTableError | UndefinedColumnError)
