"""The hot path under load: an authorised, audited, decrypted partner read, against a real server.

Runs `shiftgate serve` in a subprocess (SQLite default, or PostgreSQL + Redis in the
`SHIFTGATE_TEST_BACKEND=postgres` pass), seeds the demo, and drives it with `wrk` (64
connections, on the same two cores; `SHIFTGATE_BENCH_WORKERS` sets the server's processes on
PostgreSQL, 2 by default). Prints requests per second and p50/p99 latency of the read
and of a bare `/healthz` from the same run. No timed assertion: figures only.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.bench

SHIFTGATE = str(Path(sys.executable).parent / "shiftgate")
DURATION = os.environ.get("SHIFTGATE_BENCH_SECONDS", "10")
CONNECTIONS = os.environ.get("SHIFTGATE_BENCH_CONNECTIONS", "64")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _call(url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None) -> dict:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _wrk(url: str, headers: dict[str, str]) -> dict[str, str]:
    args = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{DURATION}s", "--latency"]
    for key, value in headers.items():
        args += ["-H", f"{key}: {value}"]
    output = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    figures = {"rps": re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)}  # type: ignore[union-attr]
    for label in ("50%", "99%"):
        figures[label] = re.search(rf"{label}\s+([\d.]+\w+)", output).group(1)  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    figures["errors"] = errors.group(1) if errors else "0"
    return figures


@pytest.fixture
def server(tmp_path: Path, settings) -> Iterator[tuple[str, dict[str, str], str]]:
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (make bench installs it)")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIFTGATE_")}
    env.update(
        SHIFTGATE_VAR_DIR=str(tmp_path / "var"),
        SHIFTGATE_LOG_LEVEL="WARNING",
        SHIFTGATE_BASE_URL=f"http://127.0.0.1:{port}",
        SHIFTGATE_ROOT_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
    )
    workers = "1"
    if settings.database_kind == "postgres":
        name = f"shiftgate_bench_{secrets.token_hex(4)}"
        asyncio.run(_pg(settings.database_url, f"CREATE DATABASE {name}"))
        env["DATABASE_URL"] = settings.database_url.rsplit("/", 1)[0] + "/" + name
        env["REDIS_URL"] = settings.redis_url or ""
        env["SHIFTGATE_REDIS_NAMESPACE"] = f"bench-{secrets.token_hex(4)}"
        workers = os.environ.get("SHIFTGATE_BENCH_WORKERS", "2")
    else:
        env.pop("DATABASE_URL", None)
        env.pop("REDIS_URL", None)
    subprocess.run([SHIFTGATE, "init"], env=env, check=True, capture_output=True)
    subprocess.run([SHIFTGATE, "demo"], env=env, check=True, capture_output=True)
    facts = json.loads(
        subprocess.run(
            [SHIFTGATE, "demo", "--json"], env=env, check=True, capture_output=True
        ).stdout
    )
    process = subprocess.Popen(
        [SHIFTGATE, "serve", "--port", str(port), "--workers", workers],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                _call(f"{base}/healthz")
                break
            except OSError:
                time.sleep(0.1)
        yield base, facts, workers
    finally:
        process.terminate()
        process.wait(timeout=10)
        if settings.database_kind == "postgres":
            asyncio.run(_pg(settings.database_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


async def _pg(url: str, sql: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(url)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def test_partner_read_under_load(server, settings) -> None:
    base, facts, workers = server
    msp = {"Authorization": f"Bearer {facts['api_token']}", "Content-Type": "application/json"}
    body = json.dumps({"reads_per_minute": 1_000_000}).encode()
    request = urllib.request.Request(f"{base}/api/v1/rules", data=body, headers=msp, method="PUT")
    urllib.request.urlopen(request, timeout=10).close()
    client = facts["oauth_client"]
    basic = base64.b64encode(f"{client['client_id']}:{client['client_secret']}".encode()).decode()
    form = f"grant_type=client_credentials&scope=partner:read+grant:{facts['grant_id']}".encode()
    token = _call(
        f"{base}/oauth/token",
        data=form,
        headers={
            "Authorization": f"Basic {basic}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    bundle = _call(f"{base}/api/v1/partner/grants/{facts['grant_id']}/bundle", headers=auth)
    document = next(d for d in bundle["documents"] if d["sensitivity"] == "standard")
    url = f"{base}/api/v1/partner/grants/{facts['grant_id']}/documents/{document['id']}"
    assert _call(url, headers=auth)["body"]  # a real, decrypted read
    read = _wrk(url, auth)
    health = _wrk(f"{base}/healthz", {})
    backend = "PostgreSQL + Redis" if settings.database_kind == "postgres" else "SQLite"
    where = f"{backend}, {workers} worker{'s' if workers != '1' else ''}"
    print(f"\nhot path [{where}], {CONNECTIONS} connections, {DURATION} s:")
    print(
        f"  partner document read: {read['rps']} req/s, p50 {read['50%']}, p99 {read['99%']}, "
        f"non-2xx {read['errors']}"
    )
    print(
        f"  bare /healthz:         {health['rps']} req/s, p50 {health['50%']}, p99 {health['99%']}"
    )
    print(f"  ratio read/healthz:    {float(read['rps']) / float(health['rps']):.3f}")
    assert read["errors"] == "0"
