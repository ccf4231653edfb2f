"""A real `shiftgate serve` in a subprocess, seeded with the demo, for benchmarks and browsers.

On SQLite it uses a file under the test's temporary folder; in the PostgreSQL pass it creates a
database of its own on the test server (and Redis keys under a namespace of its own) and drops it
afterwards.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.settings import Settings

SHIFTGATE = str(Path(sys.executable).parent / "shiftgate")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def call(url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _pg(url: str, sql: str) -> None:
    """Run `sql` on the PostgreSQL server, from a thread of its own: the caller's thread may
    already run an event loop (Playwright's)."""
    import asyncpg

    async def run() -> None:
        connection = await asyncpg.connect(url)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, run()).result()


@dataclass(frozen=True)
class LiveGateway:
    base: str
    facts: dict[str, Any]
    """What `shiftgate demo --json` prints: logins, the API token, the OAuth client, the grant."""
    env: dict[str, str]
    workers: str

    def cli(self, *args: str, stdin: str | None = None) -> str:
        """Run `shiftgate ARGS` against this server's database; its output (it must succeed)."""
        done = subprocess.run(
            [SHIFTGATE, *args], env=self.env, input=stdin, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def login(self, email: str) -> str:
        """The demo password of `email`."""
        return str(next(x["password"] for x in self.facts["logins"] if x["email"] == email))


@contextmanager
def live_gateway(
    tmp_path: Path, settings: Settings, *, workers: str = "1", serve_args: tuple[str, ...] = ()
) -> Iterator[LiveGateway]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIFTGATE_")}
    env.update(
        SHIFTGATE_VAR_DIR=str(tmp_path / "var"),
        SHIFTGATE_LOG_LEVEL="WARNING",
        SHIFTGATE_BASE_URL=f"http://127.0.0.1:{port}",
        SHIFTGATE_ROOT_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
    )
    name = None
    if settings.database_kind == "postgres":
        name = f"shiftgate_live_{secrets.token_hex(4)}"
        _pg(settings.database_url, f"CREATE DATABASE {name}")
        env["DATABASE_URL"] = settings.database_url.rsplit("/", 1)[0] + "/" + name
        env["REDIS_URL"] = settings.redis_url or ""
        env["SHIFTGATE_REDIS_NAMESPACE"] = f"live-{secrets.token_hex(4)}"
    else:
        env.pop("DATABASE_URL", None)
        env.pop("REDIS_URL", None)
    try:
        subprocess.run([SHIFTGATE, "init"], env=env, check=True, capture_output=True)
        subprocess.run([SHIFTGATE, "demo"], env=env, check=True, capture_output=True)
        facts = json.loads(
            subprocess.run(
                [SHIFTGATE, "demo", "--json"], env=env, check=True, capture_output=True
            ).stdout
        )
        log = (tmp_path / "serve.log").open("wb")
        process = subprocess.Popen(
            [SHIFTGATE, "serve", "--port", str(port), "--workers", workers, *serve_args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(150):
                try:
                    call(f"{base}/healthz")
                    break
                except OSError:
                    if process.poll() is not None:
                        raise RuntimeError((tmp_path / "serve.log").read_text()) from None
                    time.sleep(0.1)
            yield LiveGateway(base, facts, env, workers)
        finally:
            process.terminate()
            process.wait(timeout=15)
            log.close()
    finally:
        if name is not None:
            _pg(settings.database_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
