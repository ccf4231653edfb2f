"""The audit export at scale: memory stays flat from 100,000 to 1,000,000 events, and the offline
verifier's speed.

Collected only with SHIFTGATE_BENCH=1 (`make bench`). The chains are built fast (hashes computed
here, rows inserted in batches of 1,000 with plain SQL, a checkpoint signed after every batch as
the worker would), then `shiftgate audit export` runs as a subprocess and its peak RSS, time and
file size are printed, followed by the verifier's events per second. Figures only: no timed
assertion; the files must verify.

    SHIFTGATE_BENCH=1 .venv/bin/python -m pytest tests/bench/test_audit_export_bench.py -s -q
    SHIFTGATE_BENCH_AUDIT_EVENTS=200000 ...   # the large chain (default 1,000,000)
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from sharing import checkpoints
from sharing.audit import canonical_bytes
from sharing.audit_export import verify_export
from sharing.tables import AuditEvent, AuditHead
from tenants.db import write_transaction
from tenants.keyring import KeyRing
from tenants.root_key import EnvRootKey
from tests.helpers import make_tenant

pytestmark = pytest.mark.bench

SHIFTGATE = str(Path(sys.executable).parent / "shiftgate")
LARGE = int(os.environ.get("SHIFTGATE_BENCH_AUDIT_EVENTS", "1000000"))
SMALL = 100_000
BATCH = 1000  # rows a statement: 18,000 parameters, within both databases' limits
_COLUMNS = (
    "id, tenant_id, seq, occurred_at, actor_type, actor_id, actor_label, action, target_type,"
    " target_id, outcome, severity, reason, request_id, source_address, context, prev_hash, hash"
)
_ROW = "(" + ", ".join(["{}"] * 18) + ")"
_INSERT = f"INSERT INTO audit_events ({_COLUMNS}) VALUES "
_ORDER = [name.strip() for name in _COLUMNS.split(",")]


def _event(tenant_id: uuid.UUID, seq: int, moment: datetime, prev_hash: str) -> dict[str, Any]:
    """A partner read, as the hot path records it."""
    event: dict[str, Any] = {
        "id": uuid.uuid4(),
        "tenant_id": tenant_id,
        "seq": seq,
        "occurred_at": moment,
        "actor_type": "oauth_client",
        "actor_id": "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f",
        "actor_label": "nightowl-tooling",
        "action": "document:partner_read",
        "target_type": "document",
        "target_id": str(uuid.uuid4()),
        "outcome": "success",
        "severity": "info",
        "reason": None,
        "request_id": uuid.uuid4().hex[:16],
        "source_address": "203.0.113.7",
        "context": {"grant_id": "4b5c6d7e-8f9a-4b0c-9d1e-2f3a4b5c6d7e", "revision": "3"},
        "prev_hash": prev_hash,
    }
    event["hash"] = hashlib.sha256(canonical_bytes(event)).hexdigest()
    return event


async def _chain_of(keyring: KeyRing, events: int) -> tuple[str, float]:
    """A tenant whose chain holds `events` events; its slug and the seconds it took."""
    started = time.perf_counter()
    tenant = await make_tenant()
    head = await AuditHead.select().where(AuditHead.tenant_id == tenant.id).first()
    assert head is not None
    seq, prev_hash = int(head["seq"]), str(head["hash"])
    moment = datetime.now(UTC)  # after the tenant's first event: a chain is in time order
    step = timedelta(seconds=1)
    while seq < events:
        rows = []
        for _ in range(min(BATCH, events - seq)):
            seq += 1
            moment += step
            event = _event(tenant.id, seq, moment, prev_hash)
            prev_hash = event["hash"]
            event["context"] = msgspec.json.encode(event["context"]).decode()
            rows.append(event)
        async with write_transaction():
            await AuditEvent.raw(
                _INSERT + ", ".join([_ROW] * len(rows)),
                *(row[name] for row in rows for name in _ORDER),
            )
            await AuditHead.update({AuditHead.seq: seq, AuditHead.hash: prev_hash}).where(
                AuditHead.tenant_id == tenant.id
            )
        await checkpoints.sign_checkpoint(keyring, tenant.id, moment)
    return tenant.slug, time.perf_counter() - started


# Linux counts a child's memory before `exec` in its peak RSS, so a command started from this
# (large) test process would report at least this process's size: a small Python process starts
# the command and reports the command's own peak (`wait4`) in a file.
_MEASURED = (
    "import os, subprocess, sys\n"
    "child = subprocess.Popen(sys.argv[2:])\n"
    "_, status, usage = os.wait4(child.pid, 0)\n"
    "open(sys.argv[1], 'w').write(str(usage.ru_maxrss))\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def _run(
    args: list[str], env: dict[str, str], scratch: Path
) -> tuple[float, int, subprocess.CompletedProcess[bytes]]:
    """Run `args`; its wall time, its peak RSS in KiB, and what it printed."""
    peak = scratch / "peak-rss"
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _MEASURED, str(peak), *args],
        env=env,
        capture_output=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    assert done.returncode == 0, done.stderr.decode()
    return elapsed, int(peak.read_text()), done


async def test_export_memory_stays_flat_and_the_verifier_is_fast(
    settings, db, tmp_path: Path
) -> None:
    keyring = KeyRing(EnvRootKey(settings.root_key))
    env = {key: value for key, value in os.environ.items() if not key.startswith("SHIFTGATE_")}
    env.update(
        DATABASE_URL=settings.database_url,
        SHIFTGATE_ROOT_KEY=settings.root_key,
        SHIFTGATE_VAR_DIR=str(tmp_path),
    )
    env.pop("REDIS_URL", None)
    print(f"\naudit export on {settings.database_kind}:")
    figures = []
    for events in (SMALL, LARGE):
        slug, built = await _chain_of(keyring, events)
        print(f"  built a chain of {events:,} events in {built:.1f} s")
        out = tmp_path / f"{slug}.jsonl"
        seconds, rss, _ = _run(
            [SHIFTGATE, "audit", "export", "--tenant", slug, "--out", str(out)], env, tmp_path
        )
        size = out.stat().st_size
        print(
            f"  shiftgate audit export: {events:,} events, {size / 2**20:,.0f} MiB in "
            f"{seconds:.1f} s ({events / seconds:,.0f} events/s), peak RSS {rss / 1024:.0f} MiB"
        )
        started = time.perf_counter()
        with out.open("rb") as lines:
            report = verify_export(lines)
        verified_in = time.perf_counter() - started
        assert report.ok, report.failure
        assert report.events_verified == events
        print(
            f"  verify_export: {report.events_verified:,} events and "
            f"{report.checkpoints_verified:,} checkpoints in {verified_in:.2f} s "
            f"({events / verified_in:,.0f} events/s)"
        )
        seconds, verify_rss, done = _run(
            [SHIFTGATE, "audit", "verify-export", str(out)], env, tmp_path
        )
        assert done.stdout.startswith(f"verified {events} events".encode())
        print(
            f"  shiftgate audit verify-export: {seconds:.1f} s "
            f"({events / seconds:,.0f} events/s with start-up), peak RSS {verify_rss / 1024:.0f} MiB"
        )
        figures.append((events, rss))
        out.unlink()
    (small, small_rss), (large, large_rss) = figures
    print(
        f"  export peak RSS: {small_rss / 1024:.0f} MiB for {small:,} events, "
        f"{large_rss / 1024:.0f} MiB for {large:,} ({large / small:.0f} times the events)"
    )
