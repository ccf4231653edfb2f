"""Signed checkpoints of each tenant's audit chain, and the Ed25519 keys that sign them.

A checkpoint says "the chain of tenant T had hash H at sequence number N, at time S", signed
with the tenant's audit key. Whoever holds a checkpoint and the public key can prove that no
event up to N was altered, dropped or reordered since, without trusting Shiftgate's operators:
re-signing a forged chain needs the private key, which is sealed under the tenant's key.
The signed bytes are described in `docs/audit-format.md`.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sharing.audit import AuditAction, Severity, record
from sharing.sealed import open_text, seal_text
from sharing.tables import AuditCheckpoint, AuditEvent, AuditHead, AuditSigningKey
from tenants.db import write_transaction
from tenants.keyring import KeyRing
from tenants.roles import Actor

__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointView",
    "PublicKeyView",
    "archive_anchor",
    "checkpoint_message",
    "checkpoints_between",
    "latest_checkpoint",
    "public_keys",
    "recent_checkpoints",
    "rotate_audit_key",
    "run_checkpoints",
    "sign_checkpoint",
    "sign_checkpoint_at",
    "verify_checkpoint",
]

CHECKPOINT_FORMAT = "shiftgate-audit-checkpoint/1"
_KIND = "audit-key"


def _utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CheckpointView(msgspec.Struct, frozen=True):
    """A checkpoint as published and exported; `signature` is base64url without padding."""

    tenant_id: uuid.UUID
    seq: int
    hash: str
    signed_at: str
    key_id: uuid.UUID
    signature: str


class PublicKeyView(msgspec.Struct, frozen=True):
    """A tenant's audit signing key; `public_key` is the raw 32 bytes, base64url."""

    key_id: uuid.UUID
    tenant_id: uuid.UUID
    algorithm: str
    public_key: str
    created_at: str
    retired_at: str | None


def checkpoint_message(
    tenant_id: uuid.UUID | str, seq: int, chain_hash: str, signed_at: str
) -> bytes:
    """The bytes a checkpoint's signature covers: canonical JSON (sorted keys, no spaces)."""
    return msgspec.json.encode(
        {
            "format": CHECKPOINT_FORMAT,
            "tenant_id": str(tenant_id),
            "seq": seq,
            "hash": chain_hash,
            "signed_at": signed_at,
        },
        order="sorted",
    )


def verify_checkpoint(public_key: bytes, checkpoint: CheckpointView) -> bool:
    message = checkpoint_message(
        checkpoint.tenant_id, checkpoint.seq, checkpoint.hash, checkpoint.signed_at
    )
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(_unb64(checkpoint.signature), message)
    except (InvalidSignature, ValueError):
        return False
    return True


async def _create_key(keyring: KeyRing, tenant_id: uuid.UUID, now: datetime) -> uuid.UUID:
    key_id = uuid.uuid4()
    private = Ed25519PrivateKey.generate()
    raw = private.private_bytes_raw()
    sealed = await seal_text(keyring, tenant_id, _KIND, key_id, _b64(raw))
    await AuditSigningKey.insert(
        AuditSigningKey(
            id=key_id,
            tenant_id=tenant_id,
            public_key=private.public_key().public_bytes_raw(),
            kek_version=sealed.kek_version,
            wrapped_dek=sealed.wrapped_dek,
            private_sealed=sealed.sealed,
            created_at=now,
        )
    )
    return key_id


async def _signing_key(
    keyring: KeyRing, tenant_id: uuid.UUID, now: datetime
) -> tuple[uuid.UUID, Ed25519PrivateKey]:
    """The tenant's current key, made on first use. Call inside a write transaction."""
    row = (
        await AuditSigningKey.select()
        .where((AuditSigningKey.tenant_id == tenant_id) & AuditSigningKey.retired_at.is_null())
        .order_by(AuditSigningKey.created_at, ascending=False)
        .first()
    )
    if row is None:
        key_id = await _create_key(keyring, tenant_id, now)
        row = await AuditSigningKey.select().where(AuditSigningKey.id == key_id).first()
        assert row is not None
    text = await open_text(
        keyring,
        tenant_id,
        _KIND,
        row["id"],
        bytes(row["wrapped_dek"]),
        bytes(row["private_sealed"]),
    )
    return row["id"], Ed25519PrivateKey.from_private_bytes(_unb64(text))


def _view(row: dict[str, Any]) -> CheckpointView:
    return CheckpointView(
        tenant_id=row["tenant_id"],
        seq=int(row["seq"]),
        hash=row["hash"],
        signed_at=_utc_text(row["signed_at"]),
        key_id=row["key_id"],
        signature=_b64(bytes(row["signature"])),
    )


async def sign_checkpoint(
    keyring: KeyRing, tenant_id: uuid.UUID, now: datetime
) -> CheckpointView | None:
    """A checkpoint of the tenant's chain as it stands; the existing one if the head has not
    moved; None for an empty chain. Two signers racing for one head leave one checkpoint."""
    async with write_transaction():
        # A no-op update takes the head's row lock: signers of one chain queue here (and the
        # chain cannot move while its head is signed).
        heads = (
            await AuditHead.update({AuditHead.seq: AuditHead.seq})
            .where(AuditHead.tenant_id == tenant_id)
            .returning(AuditHead.seq, AuditHead.hash)
        )
        if not heads or heads[0]["seq"] == 0:
            return None
        head = heads[0]
        existing = (
            await AuditCheckpoint.select()
            .where((AuditCheckpoint.tenant_id == tenant_id) & (AuditCheckpoint.seq == head["seq"]))
            .first()
        )
        if existing is not None:
            return _view(existing)
        key_id, private = await _signing_key(keyring, tenant_id, now)
        signed_at = _utc_text(now)
        signature = private.sign(
            checkpoint_message(tenant_id, head["seq"], head["hash"], signed_at)
        )
        await AuditCheckpoint.insert(
            AuditCheckpoint(
                id=uuid.uuid4(),
                tenant_id=tenant_id,
                seq=head["seq"],
                hash=head["hash"],
                signed_at=now,
                key_id=key_id,
                signature=signature,
            )
        ).on_conflict(action="DO NOTHING")
        row = (
            await AuditCheckpoint.select()
            .where((AuditCheckpoint.tenant_id == tenant_id) & (AuditCheckpoint.seq == head["seq"]))
            .first()
        )
        assert row is not None
        return _view(row)


_DUE_SQL = """
SELECT h.tenant_id, h.seq, c.seq AS signed_seq, c.signed_at
FROM audit_heads h
JOIN tenants t ON t.id = h.tenant_id
LEFT JOIN audit_checkpoints c ON c.tenant_id = h.tenant_id
     AND c.seq = (SELECT max(seq) FROM audit_checkpoints m WHERE m.tenant_id = h.tenant_id)
WHERE h.seq > 0 AND t.deleted_at IS NULL
"""


@dataclass(frozen=True, slots=True)
class _Due:
    tenant_id: uuid.UUID
    behind: int
    last_signed: datetime | None


async def run_checkpoints(
    keyring: KeyRing,
    now: datetime,
    *,
    every: int = 1000,
    interval: timedelta = timedelta(seconds=60),
) -> int:
    """Sign a checkpoint for every tenant whose chain grew by `every` events since its last
    one, or grew at all and was last signed `interval` ago. Returns how many were signed."""
    signed = 0
    for due in await _due():
        if due.behind <= 0:
            continue
        stale = due.last_signed is None or now - due.last_signed >= interval
        if (stale or due.behind >= every) and await sign_checkpoint(keyring, due.tenant_id, now):
            signed += 1
    return signed


async def _due() -> list[_Due]:
    rows = await AuditHead.raw(_DUE_SQL)
    found = []
    for row in rows:
        signed_at = row["signed_at"]
        if isinstance(signed_at, str):  # SQLite hands back text outside a declared column
            signed_at = datetime.fromisoformat(signed_at)
        if signed_at is not None and signed_at.tzinfo is None:
            signed_at = signed_at.replace(tzinfo=UTC)
        tenant_id = row["tenant_id"]
        found.append(
            _Due(
                tenant_id=tenant_id if isinstance(tenant_id, uuid.UUID) else uuid.UUID(tenant_id),
                behind=int(row["seq"]) - int(row["signed_seq"] or 0),
                last_signed=signed_at,
            )
        )
    return found


async def recent_checkpoints(tenant_id: uuid.UUID, limit: int) -> list[CheckpointView]:
    """The tenant's newest `limit` checkpoints, newest first."""
    rows = (
        await AuditCheckpoint.select()
        .where(AuditCheckpoint.tenant_id == tenant_id)
        .order_by(AuditCheckpoint.seq, ascending=False)
        .limit(limit)
    )
    return [_view(row) for row in rows]


async def latest_checkpoint(tenant_id: uuid.UUID) -> CheckpointView | None:
    newest = await recent_checkpoints(tenant_id, 1)
    return newest[0] if newest else None


async def checkpoints_between(tenant_id: uuid.UUID, first: int, last: int) -> list[CheckpointView]:
    """The checkpoints with `first <= seq <= last`, oldest first."""
    rows = (
        await AuditCheckpoint.select()
        .where(
            (AuditCheckpoint.tenant_id == tenant_id)
            & (AuditCheckpoint.seq >= first)
            & (AuditCheckpoint.seq <= last)
        )
        .order_by(AuditCheckpoint.seq)
    )
    return [_view(row) for row in rows]


async def public_keys(tenant_id: uuid.UUID) -> list[PublicKeyView]:
    """Every audit key the tenant ever had, the retired ones too (old checkpoints name them)."""
    rows = (
        await AuditSigningKey.select(
            AuditSigningKey.id,
            AuditSigningKey.tenant_id,
            AuditSigningKey.public_key,
            AuditSigningKey.created_at,
            AuditSigningKey.retired_at,
        )
        .where(AuditSigningKey.tenant_id == tenant_id)
        .order_by(AuditSigningKey.created_at)
    )
    return [
        PublicKeyView(
            key_id=row["id"],
            tenant_id=row["tenant_id"],
            algorithm="Ed25519",
            public_key=_b64(bytes(row["public_key"])),
            created_at=_utc_text(row["created_at"]),
            retired_at=None if row["retired_at"] is None else _utc_text(row["retired_at"]),
        )
        for row in rows
    ]


async def rotate_audit_key(
    keyring: KeyRing, tenant_id: uuid.UUID, *, actor: Actor, now: datetime | None = None
) -> uuid.UUID:
    """A new signing key for the tenant; the old ones are retired but stay published."""
    now = now or datetime.now(UTC)
    async with write_transaction():
        await AuditSigningKey.update({AuditSigningKey.retired_at: now}).where(
            (AuditSigningKey.tenant_id == tenant_id) & AuditSigningKey.retired_at.is_null()
        )
        key_id = await _create_key(keyring, tenant_id, now)
        await record(
            tenant_id,
            AuditAction.AUDIT_KEY_ROTATED,
            actor=actor,
            target_type="audit_key",
            target_id=key_id,
            severity=Severity.WARNING,
        )
    return key_id


async def archive_anchor(tenant_id: uuid.UUID, seq: int) -> str | None:
    """The chain hash at `seq` if a checkpoint there was signed by one of the tenant's keys: the
    start of a chain whose events up to `seq` were archived. None if no valid checkpoint."""
    row = (
        await AuditCheckpoint.select()
        .where((AuditCheckpoint.tenant_id == tenant_id) & (AuditCheckpoint.seq == seq))
        .first()
    )
    if row is None:
        return None
    key = (
        await AuditSigningKey.select(AuditSigningKey.public_key)
        .where((AuditSigningKey.id == row["key_id"]) & (AuditSigningKey.tenant_id == tenant_id))
        .first()
    )
    if key is None or not verify_checkpoint(bytes(key["public_key"]), _view(row)):
        return None
    return str(row["hash"])


async def sign_checkpoint_at(
    keyring: KeyRing, tenant_id: uuid.UUID, seq: int, now: datetime
) -> CheckpointView:
    """A checkpoint at an earlier point of the chain (where an archive cuts it), after checking
    that the chain up to there is intact: a signature must never cover a broken chain."""
    from sharing.audit import verify_chain

    async with write_transaction():
        report = await verify_chain(tenant_id)
        if report.broken_at is not None and report.broken_at <= seq:
            raise ValueError(f"the chain is broken at event {report.broken_at}: {report.problem}")
        existing = (
            await AuditCheckpoint.select()
            .where((AuditCheckpoint.tenant_id == tenant_id) & (AuditCheckpoint.seq == seq))
            .first()
        )
        if existing is not None:
            return _view(existing)
        event = (
            await AuditEvent.select(AuditEvent.hash)
            .where((AuditEvent.tenant_id == tenant_id) & (AuditEvent.seq == seq))
            .first()
        )
        if event is None:
            raise ValueError(f"event {seq} is not in the database")
        key_id, private = await _signing_key(keyring, tenant_id, now)
        signed_at = _utc_text(now)
        signature = private.sign(checkpoint_message(tenant_id, seq, event["hash"], signed_at))
        row = AuditCheckpoint(
            id=uuid.uuid4(),
            tenant_id=tenant_id,
            seq=seq,
            hash=event["hash"],
            signed_at=now,
            key_id=key_id,
            signature=signature,
        )
        await AuditCheckpoint.insert(row)
        stored = await AuditCheckpoint.select().where(AuditCheckpoint.id == row.id).first()
        assert stored is not None
        return _view(stored)
