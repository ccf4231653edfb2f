"""The hot path under load: an authorised, audited, decrypted partner read, against a real server.

Runs `shiftgate serve` in a subprocess (SQLite default, or PostgreSQL + Redis in the
`SHIFTGATE_TEST_BACKEND=postgres` pass), seeds the demo, and drives it with `wrk` (64
connections, on the same two cores; `SHIFTGATE_BENCH_WORKERS` sets the server's processes on
PostgreSQL, 2 by default). Prints requests per second and p50/p99 latency of the read
and of a bare `/healthz` from the same run. No timed assertion: figures only.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live_server import LiveGateway, call, live_gateway

pytestmark = pytest.mark.bench

DURATION = os.environ.get("SHIFTGATE_BENCH_SECONDS", "10")
CONNECTIONS = os.environ.get("SHIFTGATE_BENCH_CONNECTIONS", "64")


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
def server(tmp_path: Path, settings) -> Iterator[LiveGateway]:
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (make bench installs it)")
    workers = "1"
    if settings.database_kind == "postgres":
        workers = os.environ.get("SHIFTGATE_BENCH_WORKERS", "2")
    with live_gateway(tmp_path, settings, workers=workers) as live:
        yield live


def test_partner_read_under_load(server, settings) -> None:
    base, facts, workers = server.base, server.facts, server.workers
    msp = {"Authorization": f"Bearer {facts['api_token']}", "Content-Type": "application/json"}
    body = json.dumps({"reads_per_minute": 1_000_000}).encode()
    request = urllib.request.Request(f"{base}/api/v1/rules", data=body, headers=msp, method="PUT")
    urllib.request.urlopen(request, timeout=10).close()
    client = facts["oauth_client"]
    basic = base64.b64encode(f"{client['client_id']}:{client['client_secret']}".encode()).decode()
    form = f"grant_type=client_credentials&scope=partner:read+grant:{facts['grant_id']}".encode()
    token = call(
        f"{base}/oauth/token",
        data=form,
        headers={
            "Authorization": f"Basic {basic}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    bundle = call(f"{base}/api/v1/partner/grants/{facts['grant_id']}/bundle", headers=auth)
    document = next(d for d in bundle["documents"] if d["sensitivity"] == "standard")
    url = f"{base}/api/v1/partner/grants/{facts['grant_id']}/documents/{document['id']}"
    assert call(url, headers=auth)["body"]  # a real, decrypted read
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
