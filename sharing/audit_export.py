"""Verifiable export of a tenant's audit chain as JSON Lines, and the offline verifier.

The file carries the events, the signed checkpoints that cover them and the public keys that
signed those, so that whoever holds it can check it with no access to Shiftgate. The format and
the verification algorithm are described in `docs/audit-format.md`.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
from piccolo.query.functions.aggregate import Max, Min

from sharing.audit import GENESIS_HASH, AuditAction, RequestMeta, record
from sharing.checkpoints import (
    CheckpointView,
    PublicKeyView,
    checkpoints_between,
    public_keys,
    sign_checkpoint,
    verify_checkpoint,
)
from sharing.tables import AuditCheckpoint, AuditEvent, AuditHead
from tenants.errors import Invalid
from tenants.keyring import KeyRing
from tenants.roles import Actor, Permission

__all__ = [
    "EVENT_FIELDS",
    "EXPORT_FORMAT",
    "CheckpointRecord",
    "ExportEnd",
    "ExportFailure",
    "ExportHeader",
    "ExportPlan",
    "ExportReport",
    "FailureKind",
    "KeyRecord",
    "event_line",
    "export_chunks",
    "export_lines",
    "plan_export",
    "start_export",
    "verify_export",
]

EXPORT_FORMAT = "shiftgate-audit-export/1"

EVENT_FIELDS = (
    "action",
    "actor_id",
    "actor_label",
    "actor_type",
    "context",
    "hash",
    "id",
    "occurred_at",
    "outcome",
    "prev_hash",
    "reason",
    "request_id",
    "seq",
    "severity",
    "source_address",
    "target_id",
    "target_type",
    "tenant_id",
)
"""The members of an event line, in the (sorted) order they appear."""

_BATCH = 2000  # events a query: a few MB of rows, whatever the size of the export
_CHECKPOINT_WINDOW = 10_000  # sequence numbers a checkpoint query spans: at most as many rows
_HASH_MEMBER = b'},"hash":"'  # where the hash member starts: right after the context object
_HASH_SPAN = len(b',"hash":""') + 64  # the bytes to take out of a line to get what it hashes


def _utc_text(moment: datetime) -> str:
    """`YYYY-MM-DDTHH:MM:SS.ffffffZ`, as `sharing.audit` writes times (`isoformat` is the
    faster way to the same text, for four-digit years)."""
    moment = moment.astimezone(UTC)
    if moment.year < 1000:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.isoformat(timespec="microseconds")[:-6] + "Z"


# --- The records of the file ------------------------------------------------------------------


class ExportHeader(
    msgspec.Struct,
    frozen=True,
    tag_field="record",
    tag="header",
    forbid_unknown_fields=True,
):
    """The first line. `since` and `until` are the time range asked for (null: unbounded);
    `from_seq` and `to_seq` the events the file holds, widened to the nearest checkpoints."""

    format: str
    tenant_id: uuid.UUID
    from_seq: int
    to_seq: int
    exported_at: str
    since: str | None = None
    until: str | None = None


class CheckpointRecord(
    CheckpointView,
    frozen=True,
    tag_field="record",
    tag="checkpoint",
    forbid_unknown_fields=True,
):
    """A signed checkpoint, as `sharing.checkpoints.CheckpointView`."""


class KeyRecord(
    PublicKeyView,
    frozen=True,
    tag_field="record",
    tag="key",
    forbid_unknown_fields=True,
):
    """A public key of the tenant, as `sharing.checkpoints.PublicKeyView`."""


class ExportEnd(
    msgspec.Struct,
    frozen=True,
    tag_field="record",
    tag="end",
    forbid_unknown_fields=True,
):
    """The last line: without it, or with other counts, the file was cut."""

    events: int
    last_seq: int


_Record = ExportHeader | CheckpointRecord | KeyRecord | ExportEnd


def event_line(row: dict[str, Any]) -> bytes:
    """An event as the file holds it: its canonical encoding (`sharing.audit.canonical_bytes`)
    with its `hash` member added, keys sorted. `row` is a database row; it is changed."""
    # `id` and `tenant_id` may stay UUIDs: msgspec writes them as `str()` does.
    row["occurred_at"] = _utc_text(row["occurred_at"])
    context = row["context"]
    if isinstance(context, str | bytes):
        row["context"] = msgspec.json.decode(context)
    return msgspec.json.encode(row, order="sorted")


# --- Export -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExportPlan:
    """What one export holds: the events `from_seq..to_seq` of one tenant's chain (none when
    `to_seq < from_seq`), fixed before the first byte is written."""

    tenant_id: uuid.UUID
    from_seq: int
    to_seq: int
    since: datetime | None
    until: datetime | None
    exported_at: datetime

    @property
    def events(self) -> int:
        return max(0, self.to_seq - self.from_seq + 1)

    def header(self) -> ExportHeader:
        return ExportHeader(
            format=EXPORT_FORMAT,
            tenant_id=self.tenant_id,
            from_seq=self.from_seq,
            to_seq=self.to_seq,
            exported_at=_utc_text(self.exported_at),
            since=None if self.since is None else _utc_text(self.since),
            until=None if self.until is None else _utc_text(self.until),
        )


def _checked_range(since: datetime | None, until: datetime | None) -> None:
    for name, moment in (("since", since), ("until", until)):
        if moment is not None and moment.utcoffset() is None:
            raise Invalid(
                f"`{name}` needs a UTC offset, e.g. 2026-12-01T00:00:00Z",
                code="naive_time",
            )
    if since is not None and until is not None and since >= until:
        raise Invalid("`since` must be before `until`", code="empty_time_range")


async def _seq_bound(tenant_id: uuid.UUID, *, since: datetime | None = None) -> int | None:
    """The first sequence number of the chain at or after `since` (the first one stored when
    None); None when there is none."""
    query = AuditEvent.select(Min(AuditEvent.seq, alias="seq")).where(
        AuditEvent.tenant_id == tenant_id
    )
    if since is not None:
        query = query.where(AuditEvent.occurred_at >= since)
    row = await query.first()
    return None if row is None or row["seq"] is None else int(row["seq"])


async def _last_before(tenant_id: uuid.UUID, until: datetime | None, head: int) -> int | None:
    if until is None:
        return head
    row = (
        await AuditEvent.select(Max(AuditEvent.seq, alias="seq"))
        .where(
            (AuditEvent.tenant_id == tenant_id)
            & (AuditEvent.occurred_at < until)
            & (AuditEvent.seq <= head)
        )
        .first()
    )
    return None if row is None or row["seq"] is None else int(row["seq"])


async def _checkpoint_seq(tenant_id: uuid.UUID, *, below: int, at_least: int) -> int | None:
    """The newest checkpoint with `at_least <= seq < below`."""
    row = (
        await AuditCheckpoint.select(AuditCheckpoint.seq)
        .where(
            (AuditCheckpoint.tenant_id == tenant_id)
            & (AuditCheckpoint.seq < below)
            & (AuditCheckpoint.seq >= at_least)
        )
        .order_by(AuditCheckpoint.seq, ascending=False)
        .first()
    )
    return None if row is None else int(row["seq"])


async def _closing_checkpoint(tenant_id: uuid.UUID, last: int) -> int | None:
    """The oldest checkpoint with `seq >= last`."""
    row = (
        await AuditCheckpoint.select(AuditCheckpoint.seq)
        .where((AuditCheckpoint.tenant_id == tenant_id) & (AuditCheckpoint.seq >= last))
        .order_by(AuditCheckpoint.seq)
        .first()
    )
    return None if row is None else int(row["seq"])


async def plan_export(
    keyring: KeyRing,
    tenant_id: uuid.UUID,
    *,
    since: datetime | None,
    until: datetime | None,
    now: datetime,
) -> ExportPlan:
    """Fix the events of an export of `since <= occurred_at < until` (either end open).

    The range is widened at both ends to the nearest checkpoints: it starts right after the
    newest checkpoint before it (or at the chain's first event), so that the first event links
    to a signed hash, and ends at the oldest checkpoint at or after its last event, so that the
    last event is signed and a cut tail shows. When no checkpoint covers the last event yet,
    the chain's head is signed now.
    """
    _checked_range(since, until)
    head_row = await AuditHead.select(AuditHead.seq).where(AuditHead.tenant_id == tenant_id).first()
    head = 0 if head_row is None else int(head_row["seq"])
    stored = await _seq_bound(tenant_id)
    first = await _seq_bound(tenant_id, since=since) if since is not None else stored
    last = await _last_before(tenant_id, until, head)
    if stored is None or first is None or last is None or last < first:
        start = head + 1 if first is None else first
        return ExportPlan(tenant_id, start, start - 1, since, until, now)
    anchor = await _checkpoint_seq(tenant_id, below=first, at_least=stored - 1)
    closing = await _closing_checkpoint(tenant_id, last)
    if closing is None:
        signed = await sign_checkpoint(keyring, tenant_id, now)
        closing = last if signed is None else signed.seq
    start = stored if anchor is None else anchor + 1
    return ExportPlan(tenant_id, start, closing, since, until, now)


async def start_export(
    actor: Actor,
    keyring: KeyRing,
    *,
    since: datetime | None,
    until: datetime | None,
    now: datetime,
    request: RequestMeta | None = None,
) -> ExportPlan:
    """Plan an export of the actor's own tenant, and put the export on its record.

    The `audit:exported` event is appended after the range is fixed, so it is never inside the
    export it describes (the next export holds it). If it cannot be written, nothing is exported.
    """
    tenant_id = actor.require(Permission.AUDIT_READ)
    plan = await plan_export(keyring, tenant_id, since=since, until=until, now=now)
    context = {
        "from_seq": str(plan.from_seq),
        "to_seq": str(plan.to_seq),
        "events": str(plan.events),
    }
    if since is not None:
        context["since"] = _utc_text(since)
    if until is not None:
        context["until"] = _utc_text(until)
    await record(
        tenant_id,
        AuditAction.AUDIT_EXPORTED,
        actor=actor,
        target_type="audit_export",
        request=request or RequestMeta(),
        context=context,
    )
    return plan


_SELECT_EVENTS = (
    "SELECT action, actor_id, actor_label, actor_type, context, hash, id, occurred_at, outcome,"
    " prev_hash, reason, request_id, seq, severity, source_address, target_id, target_type,"
    " tenant_id FROM audit_events"
    " WHERE tenant_id = {} AND seq >= {} AND seq <= {} ORDER BY seq LIMIT {}"
)


def _line(record: _Record) -> bytes:
    return msgspec.json.encode(record) + b"\n"


async def _event_chunks(plan: ExportPlan) -> AsyncIterator[tuple[int, bytes]]:
    """The event lines of `plan` a batch at a time, read by `seq` (keyset pagination)."""
    first = plan.from_seq
    while first <= plan.to_seq:
        rows = await AuditEvent.raw(_SELECT_EVENTS, plan.tenant_id, first, plan.to_seq, _BATCH)
        if not rows:
            return
        yield len(rows), b"\n".join([event_line(row) for row in rows]) + b"\n"
        if len(rows) < _BATCH:
            return
        first = int(rows[-1]["seq"]) + 1


async def export_chunks(plan: ExportPlan) -> AsyncIterator[bytes]:
    """The file of `plan`, in chunks of whole lines (one chunk per batch of events)."""
    yield _line(plan.header())
    emitted = 0
    if plan.events:
        async for count, chunk in _event_chunks(plan):
            emitted += count
            yield chunk
        low = max(plan.from_seq - 1, 1)  # the checkpoint just before anchors the first event
        while low <= plan.to_seq:
            high = min(low + _CHECKPOINT_WINDOW - 1, plan.to_seq)
            views = await checkpoints_between(plan.tenant_id, low, high)
            if views:
                yield b"".join(
                    _line(CheckpointRecord(**msgspec.structs.asdict(view))) for view in views
                )
            low = high + 1
    keys = await public_keys(plan.tenant_id)
    yield b"".join(_line(KeyRecord(**msgspec.structs.asdict(key))) for key in keys)
    yield _line(ExportEnd(events=emitted, last_seq=plan.to_seq))


async def export_lines(
    keyring: KeyRing,
    tenant_id: uuid.UUID,
    *,
    since: datetime | None,
    until: datetime | None,
    now: datetime,
) -> AsyncIterator[bytes]:
    """The export of `tenant_id`'s events in `since <= occurred_at < until`, line by line
    (each ending in a newline). Memory stays flat: events are read in batches by `seq`.

    Not audited: `start_export` is the entry point for a person or a token.
    """
    plan = await plan_export(keyring, tenant_id, since=since, until=until, now=now)
    async for chunk in export_chunks(plan):
        for line in chunk.splitlines(keepends=True):
            yield line


# --- Verification -----------------------------------------------------------------------------


class FailureKind(enum.StrEnum):
    ALTERED = "altered"  # an event's contents do not match its hash, or its link
    MISSING = "missing"  # a sequence number is skipped: an event was deleted
    REORDERED = "reordered"  # sequence numbers go backwards: lines were moved
    CUT = "cut"  # the file ends early
    FORGED_CHECKPOINT = "forged_checkpoint"  # bad signature, unknown key, or disagrees
    MALFORMED = "malformed"  # not JSON, or not this format


@dataclass(frozen=True, slots=True)
class ExportFailure:
    """The first thing wrong with a file: where (`seq` of the event or checkpoint, `line` of
    the file, 1-based), what kind, and a sentence that says it."""

    seq: int | None
    kind: FailureKind
    sentence: str
    line: int | None = None

    def __str__(self) -> str:
        if self.kind is FailureKind.FORGED_CHECKPOINT:
            subject = "checkpoint" + ("" if self.seq is None else f" {self.seq}") + " forged"
        elif self.kind is FailureKind.MALFORMED and self.line is not None:
            subject = f"line {self.line} malformed"
        elif self.seq is None:
            subject = f"export {self.kind.value}"
        else:
            subject = f"event {self.seq} {self.kind.value}"
        return f"{subject}: {self.sentence}"


@dataclass(frozen=True, slots=True)
class ExportReport:
    """What `verify_export` found. `ok` only if every check passed; `signers` are the keys
    that signed the checkpoints (compare them with the tenant's published keys)."""

    events_verified: int
    failure: ExportFailure | None = None
    tenant_id: uuid.UUID | None = None
    from_seq: int | None = None
    to_seq: int | None = None
    checkpoints_verified: int = 0
    signers: tuple[PublicKeyView, ...] = ()

    @property
    def ok(self) -> bool:
        return self.failure is None


class _Link(msgspec.Struct):
    """The members of an event line that the chain checks read; the rest is hashed only."""

    seq: int
    prev_hash: str
    hash: str
    tenant_id: str


class _Event(msgspec.Struct, forbid_unknown_fields=True):
    """An event line, strictly: for telling an altered event from a malformed line."""

    action: str
    actor_id: str | None
    actor_label: str
    actor_type: str
    context: dict[str, str]
    hash: str
    id: str
    occurred_at: str
    outcome: str
    prev_hash: str
    reason: str | None
    request_id: str | None
    seq: int
    severity: str
    source_address: str | None
    target_id: str | None
    target_type: str | None
    tenant_id: str


_LINK = msgspec.json.Decoder(_Link)
_EVENT = msgspec.json.Decoder(_Event)
_RECORD = msgspec.json.Decoder(_Record)
_EVENT_START = b'{"action":'
_DIGEST = 32


class _Stop(Exception):
    """Raised inside the verifier with the first failure."""

    def __init__(self, failure: ExportFailure) -> None:
        super().__init__(str(failure))
        self.failure = failure


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _content_hash(event: _Event) -> str:
    fields = msgspec.structs.asdict(event)
    del fields["hash"]
    return hashlib.sha256(msgspec.json.encode(fields, order="sorted")).hexdigest()


class _Verifier:
    def __init__(self, lines: Iterable[bytes], trusted_keys: Iterable[bytes] | None) -> None:
        self._lines: Iterator[bytes] = iter(lines)
        self._trusted = None if trusted_keys is None else {bytes(key) for key in trusted_keys}
        self.lineno = 0
        self.header: ExportHeader | None = None
        self.events = 0
        # digests[32*i : 32*(i+1)] is the chain's hash at seq from_seq - 1 + i
        self.digests = bytearray()
        self.checkpoints: list[tuple[int, CheckpointRecord]] = []
        self.keys: dict[uuid.UUID, tuple[int, KeyRecord]] = {}
        self.end: ExportEnd | None = None
        self.verified_checkpoints = 0
        self.signers: dict[uuid.UUID, KeyRecord] = {}

    # - reading -

    def _next(self) -> bytes | None:
        for raw in self._lines:
            self.lineno += 1
            if raw.strip():
                return raw
        return None

    def _stop(
        self, kind: FailureKind, sentence: str, seq: int | None = None, line: int | None = None
    ) -> _Stop:
        return _Stop(ExportFailure(seq, kind, sentence, self.lineno if line is None else line))

    def _cut_line(self, raw: bytes, what: str) -> _Stop | None:
        """A line that does not parse is a cut if it is the file's unfinished last line."""
        if raw.endswith(b"\n"):
            return None
        if self._next() is not None:
            return None
        return self._stop(FailureKind.CUT, f"the file ends in the middle of {what}")

    def run(self) -> None:
        self._read_header()
        assert self.header is not None
        pending = self._read_events()
        while pending is not None:
            self._read_record(pending)
            pending = self._next()
        self._finish()

    def _read_header(self) -> None:
        raw = self._next()
        if raw is None:
            raise self._stop(FailureKind.MALFORMED, "the file is empty", line=1)
        try:
            header = _RECORD.decode(raw)
        except msgspec.DecodeError as exc:
            raise self._stop(
                FailureKind.MALFORMED, f"the first line is not an export header ({exc})"
            ) from None
        if not isinstance(header, ExportHeader):
            raise self._stop(FailureKind.MALFORMED, "the first line is not an export header")
        if header.format != EXPORT_FORMAT:
            raise self._stop(
                FailureKind.MALFORMED,
                f"the format is {header.format!r}; this verifier reads {EXPORT_FORMAT!r}",
            )
        if header.from_seq < 1 or header.to_seq < header.from_seq - 1:
            raise self._stop(
                FailureKind.MALFORMED,
                f"the header's range {header.from_seq} to {header.to_seq} is not a range",
            )
        self.header = header

    def _read_events(self) -> bytes | None:
        """Check every event line; return the first line after them (None at the end)."""
        header = self.header
        assert header is not None
        tenant = str(header.tenant_id)
        expected = header.from_seq
        prev: str | None = GENESIS_HASH if expected == 1 else None
        digests = self.digests
        if prev is not None:
            digests += bytes(_DIGEST)
        link = _LINK.decode
        sha256 = hashlib.sha256
        lines = self._lines
        lineno = self.lineno
        try:
            for raw in lines:
                lineno += 1
                if not raw.startswith(_EVENT_START):
                    if raw.strip():
                        return raw
                    continue
                line = raw.rstrip(b"\r\n")
                try:
                    event = link(line)
                except msgspec.DecodeError:
                    event = None
                cut = line.find(_HASH_MEMBER) + 1
                digest = sha256(line[:cut] + line[cut + _HASH_SPAN :]).digest()
                if (
                    event is None
                    or event.hash != digest.hex()
                    or event.seq != expected
                    or event.prev_hash != prev
                    or event.tenant_id != tenant
                ):
                    self.lineno = lineno
                    self.events = expected - header.from_seq
                    hashed = event is not None and event.hash == digest.hex()
                    self._odd_event(raw, line, event, hashed, expected, prev, tenant)
                    assert event is not None
                digests += digest
                prev = event.hash
                expected += 1
            return None
        finally:
            self.lineno = max(self.lineno, lineno)
            self.events = expected - header.from_seq

    def _odd_event(
        self,
        raw: bytes,
        line: bytes,
        link: _Link | None,
        hashed: bool,
        expected: int,
        prev: str | None,
        tenant: str,
    ) -> None:
        """Explain why an event line failed the fast checks, or accept it (the first event of a
        range that starts after seq 1, whose previous hash the anchor checkpoint checks)."""
        if link is None or not hashed:
            try:
                event = _EVENT.decode(line)
            except msgspec.DecodeError as exc:
                cut = self._cut_line(raw, f"event {expected}")
                if cut is not None:
                    raise cut from None
                raise self._stop(FailureKind.MALFORMED, f"not an event line ({exc})") from None
            if _content_hash(event) != event.hash:
                # named by its place in the chain: its own `seq` may be what was changed
                raise self._stop(
                    FailureKind.ALTERED, "its contents do not match its hash", seq=expected
                )
            raise self._stop(
                FailureKind.MALFORMED,
                f"event {event.seq} is not in canonical form (its fields match its hash, its "
                "bytes do not)",
            )
        if link.seq != expected:
            self._out_of_sequence(link.seq, expected)
        if link.tenant_id != tenant:
            raise self._stop(
                FailureKind.ALTERED,
                f"it belongs to tenant {link.tenant_id}, not to the exported tenant {tenant}",
                seq=link.seq,
            )
        if prev is None:
            try:
                anchor = bytes.fromhex(link.prev_hash)
            except ValueError:
                anchor = b""
            if len(anchor) != _DIGEST:
                raise self._stop(
                    FailureKind.MALFORMED,
                    "its previous-hash is not a SHA-256 in hex",
                    seq=link.seq,
                )
            self.digests += anchor
            return
        if expected == 1:
            sentence = "it is the chain's first event, but its previous-hash is not zeros"
        else:
            sentence = (
                f"its previous-hash does not match the hash of event {expected - 1}: one of the "
                "two was changed"
            )
        raise self._stop(FailureKind.ALTERED, sentence, seq=link.seq)

    def _out_of_sequence(self, seq: int, expected: int) -> None:
        assert self.header is not None
        if seq < expected:
            if expected == self.header.from_seq:
                raise self._stop(
                    FailureKind.REORDERED,
                    f"the header says the export starts at event {expected}",
                    seq=seq,
                )
            raise self._stop(FailureKind.REORDERED, f"it comes after event {expected - 1}", seq=seq)
        line = self.lineno
        following = self._peek_seq()
        if following is not None and following < seq:
            raise self._stop(
                FailureKind.REORDERED,
                f"it comes before event {following}: the lines are out of order",
                seq=seq,
                line=line,
            )
        if expected == self.header.from_seq:
            sentence = f"the export should start with it but starts at event {seq}"
        elif seq == expected + 1:
            sentence = f"the file skips from event {expected - 1} to event {seq}"
        else:
            sentence = f"the file skips from event {expected - 1} to event {seq} (and more)"
        raise self._stop(FailureKind.MISSING, sentence, seq=expected, line=line)

    def _peek_seq(self) -> int | None:
        raw = self._next()
        if raw is None or not raw.startswith(_EVENT_START):
            return None
        try:
            return _LINK.decode(raw).seq
        except msgspec.DecodeError:
            return None

    def _read_record(self, raw: bytes) -> None:
        if self.end is not None:
            raise self._stop(FailureKind.MALFORMED, "there are lines after the end record")
        if raw.startswith(_EVENT_START):
            try:
                seq: int | None = _LINK.decode(raw).seq
            except msgspec.DecodeError:
                seq = None
            raise self._stop(
                FailureKind.REORDERED,
                "an event line comes after the checkpoint and key lines",
                seq=seq,
            )
        try:
            record = _RECORD.decode(raw)
        except msgspec.DecodeError as exc:
            cut = self._cut_line(raw, "a record")
            if cut is not None:
                raise cut from None
            raise self._stop(
                FailureKind.MALFORMED, f"neither an event nor a known record ({exc})"
            ) from None
        if isinstance(record, CheckpointRecord):
            if self.keys:
                raise self._stop(
                    FailureKind.REORDERED,
                    f"checkpoint {record.seq} comes after the key lines",
                    seq=record.seq,
                )
            if self.checkpoints and record.seq <= self.checkpoints[-1][1].seq:
                raise self._stop(
                    FailureKind.REORDERED,
                    f"checkpoint {record.seq} comes after checkpoint {self.checkpoints[-1][1].seq}",
                    seq=record.seq,
                )
            self.checkpoints.append((self.lineno, record))
        elif isinstance(record, KeyRecord):
            assert self.header is not None
            if record.tenant_id != self.header.tenant_id:
                raise self._stop(
                    FailureKind.MALFORMED, f"key {record.key_id} belongs to another tenant"
                )
            if record.key_id in self.keys:
                raise self._stop(FailureKind.MALFORMED, f"key {record.key_id} is listed twice")
            self.keys[record.key_id] = (self.lineno, record)
        elif isinstance(record, ExportEnd):
            self.end = record
        else:
            raise self._stop(FailureKind.MALFORMED, "a second header")

    def _finish(self) -> None:
        header = self.header
        assert header is not None
        end = self.end
        if end is None:
            raise self._stop(
                FailureKind.CUT, "the file ends before its end record: it was cut short"
            )
        if self.events < end.events:
            raise self._stop(
                FailureKind.CUT,
                f"the end record announces {end.events} events, the file holds {self.events}",
            )
        if self.events > end.events or end.last_seq != header.to_seq:
            raise self._stop(
                FailureKind.MALFORMED, "the end record does not match the header and the events"
            )
        last = header.from_seq + self.events - 1
        if last < header.to_seq:
            raise self._stop(
                FailureKind.CUT,
                f"events {last + 1} to {header.to_seq} are missing from the end of the file",
                seq=last + 1,
            )
        for lineno, checkpoint in self.checkpoints:
            self._check_checkpoint(lineno, checkpoint, last)
        if not self.events:
            return
        signed = {checkpoint.seq for _, checkpoint in self.checkpoints}
        if header.from_seq > 1 and header.from_seq - 1 not in signed:
            raise self._stop(
                FailureKind.MISSING,
                f"no checkpoint at seq {header.from_seq - 1} anchors the first event's "
                "previous-hash: the checkpoint line was removed, or events before it were",
                seq=header.from_seq,
            )
        if last not in signed:
            raise self._stop(
                FailureKind.CUT,
                f"no checkpoint signs the last event ({last}): events after the last "
                "signature may have been cut",
                seq=last,
            )

    def _check_checkpoint(self, lineno: int, checkpoint: CheckpointRecord, last: int) -> None:
        header = self.header
        assert header is not None

        def forged(sentence: str) -> _Stop:
            return self._stop(
                FailureKind.FORGED_CHECKPOINT, sentence, seq=checkpoint.seq, line=lineno
            )

        if checkpoint.tenant_id != header.tenant_id:
            raise forged(f"it belongs to tenant {checkpoint.tenant_id}")
        listed = self.keys.get(checkpoint.key_id)
        if listed is None:
            raise forged(f"it names key {checkpoint.key_id}, which the file does not list")
        key = listed[1]
        try:
            public = _b64(key.public_key)
        except ValueError:
            raise forged(f"key {key.key_id} is not base64url") from None
        if self._trusted is not None and public not in self._trusted:
            raise forged(f"it is signed by key {key.key_id}, which is not among the trusted keys")
        if not verify_checkpoint(public, checkpoint):
            raise forged(f"its signature does not verify with key {key.key_id}")
        if checkpoint.seq > last:
            raise self._stop(
                FailureKind.CUT,
                f"checkpoint {checkpoint.seq} signs events up to {checkpoint.seq}, the file "
                f"ends at {last}: its tail was cut",
                seq=last + 1,
                line=lineno,
            )
        index = checkpoint.seq - (header.from_seq - 1)
        if index < 0:
            raise forged(f"it lies before the exported range ({header.from_seq} to {last})")
        chain = bytes(self.digests[index * _DIGEST : (index + 1) * _DIGEST]).hex()
        if chain != checkpoint.hash:
            raise forged(
                f"its hash disagrees with the chain at event {checkpoint.seq}: events up to "
                "it were altered, or the checkpoint was"
            )
        self.verified_checkpoints += 1
        self.signers.setdefault(key.key_id, key)

    def report(self, failure: ExportFailure | None) -> ExportReport:
        header = self.header
        return ExportReport(
            events_verified=self.events,
            failure=failure,
            tenant_id=None if header is None else header.tenant_id,
            from_seq=None if header is None else header.from_seq,
            to_seq=None if header is None else header.to_seq,
            checkpoints_verified=self.verified_checkpoints,
            signers=tuple(self.signers.values()),
        )


def verify_export(
    lines: Iterable[bytes], *, trusted_keys: Iterable[bytes] | None = None
) -> ExportReport:
    """Verify an export file, given as its lines (a file opened in binary mode will do).

    Pure and offline: it recomputes every event's hash, follows the chain's links and sequence
    numbers, checks every checkpoint's signature with the key it names and its hash against the
    chain, the anchor of the first event and the end of the file. `trusted_keys` (raw 32-byte
    Ed25519 public keys, obtained apart from the file) makes the keys in the file count only if
    they are among them; without it, the file's own keys are taken on trust.
    Returns the first failure found, if any.
    """
    verifier = _Verifier(lines, trusted_keys)
    try:
        verifier.run()
    except _Stop as stop:
        return verifier.report(stop.failure)
    return verifier.report(None)
