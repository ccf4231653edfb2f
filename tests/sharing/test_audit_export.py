"""The verifiable export of a tenant's audit chain, and the offline verifier that checks it.

Events come from the real services; every tamper test changes the file as an attacker holding it
could, and asserts that the verifier names what was done and where.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sharing import accounts, checkpoints
from sharing.audit import GENESIS_HASH, AuditAction, canonical_bytes, record
from sharing.audit_export import (
    EVENT_FIELDS,
    EXPORT_FORMAT,
    ExportPlan,
    FailureKind,
    event_line,
    export_chunks,
    export_lines,
    plan_export,
    start_export,
    verify_export,
)
from sharing.tables import AuditEvent
from tenants.errors import Forbidden, Invalid
from tenants.keyring import KeyRing
from tenants.roles import Actor, Role
from tenants.root_key import EnvRootKey
from tests.helpers import audit_events, make_person, make_tenant

NOW = datetime(2026, 12, 23, 17, 0, tzinfo=UTC)
DOC = Path(__file__).resolve().parents[2] / "docs" / "audit-format.md"


@pytest.fixture
def keyring(settings) -> KeyRing:
    return KeyRing(EnvRootKey(settings.root_key))


async def _export(keyring: KeyRing, tenant_id, *, since=None, until=None, now=NOW) -> list[bytes]:
    return [
        line async for line in export_lines(keyring, tenant_id, since=since, until=until, now=now)
    ]


def _records(lines: list[bytes], kind: str) -> list[tuple[int, dict]]:
    """(index, object) of the lines of one record kind; `event` for the event lines."""
    found = []
    for index, line in enumerate(lines):
        value = json.loads(line)
        if value.get("record", "event") == kind:
            found.append((index, value))
    return found


def _encode(value: dict) -> bytes:
    """A record line as the exporter writes it (`record` first)."""
    return json.dumps(value, separators=(",", ":")).encode() + b"\n"


def _event_line(value: dict) -> bytes:
    return msgspec.json.encode(value, order="sorted") + b"\n"


def _rehash(value: dict) -> dict:
    """The event with its hash recomputed over its (changed) contents, as a forger would."""
    fields = {key: item for key, item in value.items() if key != "hash"}
    body = msgspec.json.encode(fields, order="sorted")
    return {**value, "hash": hashlib.sha256(body).hexdigest()}


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _sign(private: Ed25519PrivateKey, checkpoint: dict) -> str:
    message = checkpoints.checkpoint_message(
        checkpoint["tenant_id"], checkpoint["seq"], checkpoint["hash"], checkpoint["signed_at"]
    )
    return _b64(private.sign(message))


async def _busy_tenant(keyring: KeyRing, *, events: int = 12, checkpoint_every: int = 5):
    """An MSP whose chain has sign-ins, tokens and rule changes, checkpointed every few events."""
    tenant = await make_tenant()
    admin = await make_person(tenant, Role.ADMIN)
    await accounts.issue_api_token(
        admin.actor, name="auditor tooling", scopes=["audit"], expires_in_days=3
    )
    start = datetime.now(UTC)  # after the account events: a chain is in time order
    for number in range(events):
        moment = start + timedelta(seconds=number + 1)
        await record(
            tenant.id,
            AuditAction.RULES_CHANGED,
            actor=admin.actor,
            reason=f"change {number}: “quotes”, tabs\tand \\ backslashes",
            context={"number": str(number), "zeta": "ω", "alpha": "a"},
            at=moment,
        )
        if number % checkpoint_every == checkpoint_every - 1:
            await checkpoints.sign_checkpoint(keyring, tenant.id, moment)
    return tenant


def _assert_failure(report, kind: FailureKind, seq: int | None = None) -> str:
    assert not report.ok, "the tampered export verified"
    assert report.failure is not None
    assert report.failure.kind is kind, str(report.failure)
    if seq is not None:
        assert report.failure.seq == seq, str(report.failure)
    return str(report.failure)


# --- the file -----------------------------------------------------------------------------------


async def test_an_untouched_export_verifies_and_holds_every_event_in_order(
    db, keyring: KeyRing
) -> None:
    tenant = await _busy_tenant(keyring)
    stored = await AuditEvent.count().where(AuditEvent.tenant_id == tenant.id)

    lines = await _export(keyring, tenant.id)

    header = json.loads(lines[0])
    assert header == {
        "record": "header",
        "format": EXPORT_FORMAT,
        "tenant_id": str(tenant.id),
        "from_seq": 1,
        "to_seq": stored,
        "exported_at": "2026-12-23T17:00:00.000000Z",
        "since": None,
        "until": None,
    }
    assert all(line.endswith(b"\n") and line.count(b"\n") == 1 for line in lines)
    events = _records(lines, "event")
    assert [value["seq"] for _, value in events] == list(range(1, stored + 1))
    assert [index for index, _ in events] == list(range(1, stored + 1))  # right after the header
    kinds = [json.loads(line).get("record", "event") for line in lines]
    assert kinds == ["header"] + ["event"] * stored + sorted(kinds[stored + 1 : -1]) + ["end"]
    assert json.loads(lines[-1]) == {"record": "end", "events": stored, "last_seq": stored}
    signed = _records(lines, "checkpoint")
    assert signed[-1][1]["seq"] == stored  # the head was signed for the export
    assert [value["seq"] for _, value in signed] == sorted(value["seq"] for _, value in signed)
    [(_, key)] = _records(lines, "key")
    assert {value["key_id"] for _, value in signed} == {key["key_id"]}

    report = verify_export(lines)

    assert report.ok, report.failure
    assert report.events_verified == stored
    assert report.checkpoints_verified == len(signed)
    assert report.tenant_id == tenant.id
    assert (report.from_seq, report.to_seq) == (1, stored)
    assert [str(signer.key_id) for signer in report.signers] == [key["key_id"]]


async def test_each_event_line_is_the_canonical_encoding_with_its_hash(
    db, keyring: KeyRing
) -> None:
    tenant = await _busy_tenant(keyring, events=3)
    rows = (
        await AuditEvent.select()
        .where(AuditEvent.tenant_id == tenant.id)
        .order_by(AuditEvent.seq)
        .output(load_json=True)
    )
    lines = await _export(keyring, tenant.id)

    for row, (_, value) in zip(rows, _records(lines, "event"), strict=True):
        line = lines[row["seq"]].rstrip(b"\n")
        assert list(value) == list(EVENT_FIELDS)
        assert line == event_line(dict(row))
        without_hash = line.replace(f',"hash":"{row["hash"]}"'.encode(), b"", 1)
        assert without_hash == canonical_bytes(row)
        assert hashlib.sha256(without_hash).hexdigest() == row["hash"]


async def test_a_file_on_disk_verifies_line_by_line(db, keyring: KeyRing, tmp_path) -> None:
    tenant = await _busy_tenant(keyring)
    path = tmp_path / "export.jsonl"
    with path.open("wb") as out:
        plan = await plan_export(keyring, tenant.id, since=None, until=None, now=NOW)
        async for chunk in export_chunks(plan):
            out.write(chunk)

    with path.open("rb") as lines:
        report = verify_export(lines)

    assert report.ok, report.failure
    assert report.events_verified == plan.events


async def test_an_empty_chain_exports_a_header_the_keys_and_the_end(db, keyring: KeyRing) -> None:
    lines = await _export(keyring, uuid.uuid4())
    assert [json.loads(line)["record"] for line in lines] == ["header", "end"]
    assert json.loads(lines[-1]) == {"record": "end", "events": 0, "last_seq": 0}
    report = verify_export(lines)
    assert report.ok, report.failure
    assert report.events_verified == 0


async def test_a_time_range_with_no_events_exports_none(db, keyring: KeyRing) -> None:
    tenant = await _busy_tenant(keyring)
    since = datetime.now(UTC) + timedelta(days=1)
    lines = await _export(keyring, tenant.id, since=since, until=since + timedelta(hours=1))

    assert [json.loads(line)["record"] for line in lines] == ["header", "key", "end"]
    header = json.loads(lines[0])
    assert header["to_seq"] == header["from_seq"] - 1
    assert verify_export(lines).ok


async def test_a_range_export_is_anchored_by_the_checkpoint_before_it_and_verifies(
    db, keyring: KeyRing
) -> None:
    tenant = await _busy_tenant(keyring, events=20, checkpoint_every=5)
    rows = (
        await AuditEvent.select(AuditEvent.seq, AuditEvent.occurred_at)
        .where(AuditEvent.tenant_id == tenant.id)
        .order_by(AuditEvent.seq)
    )
    in_range = rows[9:14]
    since = in_range[0]["occurred_at"]
    until = in_range[-1]["occurred_at"] + timedelta(microseconds=1)
    signed = {cp.seq for cp in await checkpoints.checkpoints_between(tenant.id, 1, 10**9)}

    lines = await _export(keyring, tenant.id, since=since, until=until)

    header = json.loads(lines[0])
    anchor = max(seq for seq in signed if seq < in_range[0]["seq"])
    closing = min(seq for seq in signed if seq >= in_range[-1]["seq"])
    assert (header["from_seq"], header["to_seq"]) == (anchor + 1, closing)
    assert header["since"] == since.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    events = [value["seq"] for _, value in _records(lines, "event")]
    assert events == list(range(anchor + 1, closing + 1))
    assert {row["seq"] for row in in_range} <= set(events)
    exported = [value["seq"] for _, value in _records(lines, "checkpoint")]
    assert exported == sorted(seq for seq in signed if anchor <= seq <= closing)
    assert exported[0] == anchor
    assert json.loads(lines[1])["prev_hash"] == _records(lines, "checkpoint")[0][1]["hash"]

    report = verify_export(lines)

    assert report.ok, report.failure
    assert report.events_verified == closing - anchor
    assert report.checkpoints_verified == len(exported)


async def test_the_start_is_unanchored_without_the_checkpoint_before_it(
    db, keyring: KeyRing
) -> None:
    tenant = await _busy_tenant(keyring, events=20, checkpoint_every=5)
    rows = (
        await AuditEvent.select(AuditEvent.occurred_at)
        .where(AuditEvent.tenant_id == tenant.id)
        .order_by(AuditEvent.seq)
    )
    lines = await _export(keyring, tenant.id, since=rows[12]["occurred_at"])
    header = json.loads(lines[0])
    assert header["from_seq"] > 1
    anchor = next(
        i for i, cp in _records(lines, "checkpoint") if cp["seq"] == header["from_seq"] - 1
    )

    report = verify_export(lines[:anchor] + lines[anchor + 1 :])

    _assert_failure(report, FailureKind.MISSING, header["from_seq"])


async def test_an_export_reaching_the_head_signs_it_first(db, keyring: KeyRing) -> None:
    tenant = await _busy_tenant(keyring, events=4, checkpoint_every=100)  # no checkpoint yet
    assert await checkpoints.latest_checkpoint(tenant.id) is None

    lines = await _export(keyring, tenant.id)

    latest = await checkpoints.latest_checkpoint(tenant.id)
    assert latest is not None
    assert latest.seq == json.loads(lines[0])["to_seq"]
    assert [value["seq"] for _, value in _records(lines, "checkpoint")] == [latest.seq]
    assert verify_export(lines).ok


async def test_keys_retired_by_rotation_stay_in_the_file_and_old_checkpoints_verify(
    db, keyring: KeyRing
) -> None:
    tenant = await _busy_tenant(keyring, events=6, checkpoint_every=3)
    await checkpoints.rotate_audit_key(keyring, tenant.id, actor=Actor.system("test"), now=NOW)
    lines = await _export(keyring, tenant.id, now=NOW + timedelta(minutes=1))

    assert len(_records(lines, "key")) == 2
    report = verify_export(lines)
    assert report.ok, report.failure
    assert len(report.signers) == 2


# --- tampering ----------------------------------------------------------------------------------


@pytest.fixture
async def exported(db, keyring: KeyRing) -> list[bytes]:
    tenant = await _busy_tenant(keyring, events=12, checkpoint_every=4)
    lines = await _export(keyring, tenant.id)
    assert verify_export(lines).ok
    return lines


def _event_at(lines: list[bytes], seq: int) -> int:
    return next(index for index, value in _records(lines, "event") if value["seq"] == seq)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("actor_label", "someone-else@example.test"),
        ("reason", None),
        ("outcome", "failure"),
        ("context", {"number": "4", "zeta": "ω", "alpha": "b"}),
        ("occurred_at", "2026-12-23T03:00:00.000000Z"),
        ("seq", 99),
    ],
)
async def test_an_edited_field_is_named_as_an_altered_event(
    exported: list[bytes], field: str, value
) -> None:
    index = _event_at(exported, 5)
    event = json.loads(exported[index])
    assert event[field] != value
    event[field] = value
    lines = [*exported]
    lines[index] = _event_line(event)

    message = _assert_failure(verify_export(lines), FailureKind.ALTERED, 5)

    assert message == "event 5 altered: its contents do not match its hash"


async def test_an_edited_event_with_a_recomputed_hash_breaks_the_next_link(
    exported: list[bytes],
) -> None:
    index = _event_at(exported, 5)
    lines = [*exported]
    lines[index] = _event_line(_rehash({**json.loads(exported[index]), "actor_label": "x"}))

    message = _assert_failure(verify_export(lines), FailureKind.ALTERED, 6)
    assert "event 5" in message


async def test_a_rechained_tail_disagrees_with_the_signed_checkpoint(
    exported: list[bytes],
) -> None:
    """The forger edits event 10, then recomputes every hash after it: the checkpoint that
    signs the chain's head no longer matches."""
    lines = [*exported]
    previous = None
    for index, value in _records(exported, "event"):
        if value["seq"] < 10:
            continue
        if value["seq"] == 10:
            value["actor_label"] = "nobody"
        else:
            value["prev_hash"] = previous
        value = _rehash(value)
        previous = value["hash"]
        lines[index] = _event_line(value)

    _assert_failure(verify_export(lines), FailureKind.FORGED_CHECKPOINT)


async def test_a_deleted_event_line_is_named_missing(exported: list[bytes]) -> None:
    index = _event_at(exported, 7)
    report = verify_export(exported[:index] + exported[index + 1 :])

    message = _assert_failure(report, FailureKind.MISSING, 7)
    assert message == "event 7 missing: the file skips from event 6 to event 8"
    assert report.events_verified == 6


async def test_the_deleted_first_event_is_named_missing(exported: list[bytes]) -> None:
    _assert_failure(verify_export([exported[0], *exported[2:]]), FailureKind.MISSING, 1)


@pytest.mark.parametrize(("first", "second"), [(4, 5), (3, 9)])
async def test_swapped_event_lines_are_named_reordered(
    exported: list[bytes], first: int, second: int
) -> None:
    lines = [*exported]
    a, b = _event_at(lines, first), _event_at(lines, second)
    lines[a], lines[b] = lines[b], lines[a]

    message = _assert_failure(verify_export(lines), FailureKind.REORDERED, second)
    assert "out of order" in message


async def test_a_repeated_event_line_is_named_reordered(exported: list[bytes]) -> None:
    index = _event_at(exported, 6)
    lines = [*exported[: index + 1], exported[index - 1], *exported[index + 1 :]]
    _assert_failure(verify_export(lines), FailureKind.REORDERED, 5)


@pytest.mark.parametrize("kept", [1, 3, 8])
async def test_a_file_cut_short_with_its_end_record_is_named_cut(
    exported: list[bytes], kept: int
) -> None:
    """The last lines are gone, the end record with them."""
    message = _assert_failure(verify_export(exported[:-kept]), FailureKind.CUT)
    assert message == "export cut: the file ends before its end record: it was cut short"


async def test_a_file_cut_in_the_middle_of_a_line_is_named_cut(exported: list[bytes]) -> None:
    blob = b"".join(exported)
    cut = blob[: blob.index(json.dumps(8).encode() + b',"severity"')]  # inside event 8
    lines = cut.splitlines(keepends=True)

    message = _assert_failure(verify_export(lines), FailureKind.CUT)
    assert "middle of event 8" in message


async def test_dropped_last_events_before_an_intact_end_record_are_named_cut(
    exported: list[bytes],
) -> None:
    events = _records(exported, "event")
    last_event = events[-1][0]
    lines = exported[: last_event - 1] + exported[last_event + 1 :]  # events 11 and 12 gone

    message = _assert_failure(verify_export(lines), FailureKind.CUT)
    assert "announces" in message


async def test_a_cut_tail_with_a_rewritten_end_is_caught_by_the_last_checkpoint(
    exported: list[bytes],
) -> None:
    """The forger drops the last events and rewrites the header and the end to match: the
    checkpoint of the head still signs events the file no longer holds."""
    events = _records(exported, "event")
    keep = len(events) - 2
    header = {**json.loads(exported[0]), "to_seq": keep}
    records = [line for line in exported[len(events) + 1 : -1]]
    end = {"record": "end", "events": keep, "last_seq": keep}
    lines = [_encode(header), *exported[1 : keep + 1], *records, _encode(end)]

    message = _assert_failure(verify_export(lines), FailureKind.CUT, keep + 1)
    assert f"checkpoint {len(events)}" in message


async def test_a_cut_tail_without_its_checkpoints_has_no_signature_at_the_end(
    exported: list[bytes],
) -> None:
    events = _records(exported, "event")
    keep = len(events) - 2  # 14: checkpoints at 8 and 12 remain, none at 14
    header = {**json.loads(exported[0]), "to_seq": keep}
    records = [
        line for line in exported[len(events) + 1 : -1] if json.loads(line).get("seq", 0) <= keep
    ]
    end = {"record": "end", "events": keep, "last_seq": keep}
    lines = [_encode(header), *exported[1 : keep + 1], *records, _encode(end)]

    message = _assert_failure(verify_export(lines), FailureKind.CUT, keep)
    assert "no checkpoint signs the last event" in message


async def test_a_checkpoint_with_a_changed_hash_is_forged(exported: list[bytes]) -> None:
    index, checkpoint = _records(exported, "checkpoint")[0]
    lines = [*exported]
    lines[index] = _encode({**checkpoint, "hash": "ab" * 32})

    message = _assert_failure(verify_export(lines), FailureKind.FORGED_CHECKPOINT)
    assert message.startswith(f"checkpoint {checkpoint['seq']} forged: its signature")


async def test_a_checkpoint_resigned_over_a_changed_hash_disagrees_with_the_chain(
    exported: list[bytes],
) -> None:
    """Another key signs a wrong hash and replaces the tenant's key line: the tenant's other
    checkpoints no longer verify with the swapped key."""
    forger = Ed25519PrivateKey.generate()
    lines = [*exported]
    [(key_index, key)] = _records(exported, "key")
    lines[key_index] = _encode({**key, "public_key": _b64(forger.public_key().public_bytes_raw())})
    index, checkpoint = _records(exported, "checkpoint")[-1]
    forged = {**checkpoint, "hash": "ab" * 32}
    lines[index] = _encode({**forged, "signature": _sign(forger, forged)})

    message = _assert_failure(verify_export(lines), FailureKind.FORGED_CHECKPOINT)
    assert "signature does not verify" in message


async def test_a_wholly_resigned_file_fails_only_against_trusted_keys(
    exported: list[bytes],
) -> None:
    """A forger who rewrites the chain and signs every checkpoint with a key of their own
    makes a self-consistent file: the tenant's published key is what exposes it."""
    real_key = base64.urlsafe_b64decode(_records(exported, "key")[0][1]["public_key"] + "==")
    forger = Ed25519PrivateKey.generate()
    lines = [*exported]
    [(key_index, key)] = _records(exported, "key")
    lines[key_index] = _encode({**key, "public_key": _b64(forger.public_key().public_bytes_raw())})
    for index, checkpoint in _records(exported, "checkpoint"):
        lines[index] = _encode({**checkpoint, "signature": _sign(forger, checkpoint)})
    assert verify_export(lines).ok  # the file alone cannot tell

    assert verify_export(exported, trusted_keys=[real_key]).ok
    message = _assert_failure(
        verify_export(lines, trusted_keys=[real_key]), FailureKind.FORGED_CHECKPOINT
    )
    assert "not among the trusted keys" in message


@pytest.mark.parametrize("change", ["public_key", "key_id"])
async def test_a_changed_key_line_fails_every_checkpoint_it_signed(
    exported: list[bytes], change: str
) -> None:
    [(key_index, key)] = _records(exported, "key")
    replacement = (
        _b64(Ed25519PrivateKey.generate().public_key().public_bytes_raw())
        if change == "public_key"
        else str(uuid.uuid4())
    )
    lines = [*exported]
    lines[key_index] = _encode({**key, change: replacement})

    message = _assert_failure(verify_export(lines), FailureKind.FORGED_CHECKPOINT)
    assert "does not verify" in message or "does not list" in message


async def test_a_checkpoint_of_another_seq_is_forged(exported: list[bytes]) -> None:
    index, checkpoint = _records(exported, "checkpoint")[0]
    lines = [*exported]
    lines[index] = _encode({**checkpoint, "seq": checkpoint["seq"] + 1})
    _assert_failure(verify_export(lines), FailureKind.FORGED_CHECKPOINT)


@pytest.mark.parametrize(
    ("mangle", "says"),
    [
        (lambda lines: [b"not json\n", *lines[1:]], "header"),
        (lambda lines: [lines[0].replace(b"export/1", b"export/9"), *lines[1:]], "format"),
        (lambda lines: [*lines[:3], b"{oops\n", *lines[3:]], "line 4"),
        (lambda lines: [*lines[:-1], b'{"record":"gift"}\n', lines[-1]], "record"),
        (lambda lines: [*lines, lines[-1]], "after the end record"),
        (lambda lines: [], "empty"),
    ],
)
async def test_malformed_files_are_named_malformed(exported: list[bytes], mangle, says) -> None:
    message = _assert_failure(verify_export(mangle(exported)), FailureKind.MALFORMED)
    assert says in message


async def test_an_event_line_reformatted_is_malformed_not_altered(exported: list[bytes]) -> None:
    index = _event_at(exported, 3)
    lines = [*exported]
    lines[index] = json.dumps(json.loads(exported[index]), sort_keys=True).encode() + b"\n"

    message = _assert_failure(verify_export(lines), FailureKind.MALFORMED)
    assert "canonical" in message


async def test_an_event_moved_after_the_checkpoints_is_reordered(exported: list[bytes]) -> None:
    index = _records(exported, "event")[-1][0]
    lines = [*exported[:index], *exported[index + 1 : -1], exported[index], exported[-1]]
    _assert_failure(verify_export(lines), FailureKind.REORDERED)


async def test_an_event_of_another_tenant_is_altered(exported: list[bytes]) -> None:
    index = _event_at(exported, 4)
    lines = [*exported]
    lines[index] = _event_line(
        _rehash({**json.loads(exported[index]), "tenant_id": str(uuid.uuid4())})
    )
    _assert_failure(verify_export(lines), FailureKind.ALTERED, 4)


# --- the audited entry point --------------------------------------------------------------------


async def test_start_export_needs_audit_read_and_records_the_export_after_the_range(
    db, keyring: KeyRing
) -> None:
    tenant = await _busy_tenant(keyring, events=3)
    technician = await make_person(tenant, Role.TECHNICIAN)
    with pytest.raises(Forbidden):
        await start_export(technician.actor, keyring, since=None, until=None, now=NOW)
    auditor = await make_person(tenant, Role.AUDITOR)

    plan = await start_export(auditor.actor, keyring, since=None, until=None, now=NOW)

    [event] = await audit_events(tenant.id, AuditAction.AUDIT_EXPORTED.value)
    assert event["actor_label"] == auditor.email
    assert event["context"] == {
        "from_seq": "1",
        "to_seq": str(plan.to_seq),
        "events": str(plan.events),
    }
    assert event["seq"] == plan.to_seq + 1  # outside the file it describes
    lines = [line async for chunk in export_chunks(plan) for line in [chunk]]
    assert verify_export(b"".join(lines).splitlines(keepends=True)).ok


@pytest.mark.parametrize(
    ("since", "until", "says"),
    [
        (datetime(2026, 12, 1), None, "offset"),
        (NOW, NOW, "before"),
        (NOW, NOW - timedelta(seconds=1), "before"),
    ],
)
async def test_a_bad_time_range_is_refused(db, keyring: KeyRing, since, until, says) -> None:
    with pytest.raises(Invalid, match=says):
        await plan_export(keyring, uuid.uuid4(), since=since, until=until, now=NOW)


def test_a_plan_counts_its_events() -> None:
    plan = ExportPlan(uuid.uuid4(), 5, 4, None, None, NOW)
    assert plan.events == 0
    assert ExportPlan(uuid.uuid4(), 5, 9, None, None, NOW).events == 5


# --- the format document ------------------------------------------------------------------------


def _doc_block(name: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    match = re.search(rf"<!-- {name} -->\s*```[a-z]*\n(.*?)```", text, re.DOTALL)
    assert match, f"docs/audit-format.md has no block marked {name}"
    return match.group(1)


def test_the_documented_example_event_hashes_as_the_document_says() -> None:
    example = json.loads(_doc_block("example-event"))
    canonical = _doc_block("example-canonical").strip().encode()
    documented_hash = _doc_block("example-hash").strip()
    row = {
        **example,
        "id": uuid.UUID(example["id"]),
        "tenant_id": uuid.UUID(example["tenant_id"]),
        "occurred_at": datetime.fromisoformat(example["occurred_at"]),
    }

    assert canonical_bytes(row) == canonical
    assert hashlib.sha256(canonical).hexdigest() == documented_hash
    line = event_line({**row, "hash": documented_hash})
    assert line == _doc_block("example-line").strip().encode()
    without = line.replace(f',"hash":"{documented_hash}"'.encode(), b"")
    assert without == canonical  # the shortcut the document offers to verifiers


def test_the_documented_export_verifies_and_its_checkpoint_message_is_exact() -> None:
    lines = _doc_block("example-export").encode().splitlines(keepends=True)

    report = verify_export(lines)

    assert report.ok, report.failure
    assert (report.events_verified, report.checkpoints_verified) == (2, 1)
    assert lines[2].rstrip(b"\n") == _doc_block("example-line").strip().encode()
    first = json.loads(lines[1])
    assert first["prev_hash"] == GENESIS_HASH
    assert json.loads(lines[2])["prev_hash"] == first["hash"]
    checkpoint = json.loads(lines[3])
    message = checkpoints.checkpoint_message(
        checkpoint["tenant_id"], checkpoint["seq"], checkpoint["hash"], checkpoint["signed_at"]
    )
    assert message == _doc_block("example-checkpoint-message").strip().encode()
    edited = [*lines]
    edited[2] = edited[2].replace(b"203.0.113.7", b"203.0.113.8")
    assert str(verify_export(edited).failure) == (
        "event 2 altered: its contents do not match its hash"
    )
