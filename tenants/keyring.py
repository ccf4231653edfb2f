"""Envelope encryption: the root key wraps each tenant's versioned key-encryption keys (KEKs);
a KEK wraps the data keys (DEKs) that encrypt content. AES-256-GCM at every level.

Every sealed value says what it is: a format byte and the id of the key that opens it, then the
nonce and the ciphertext. The header and the caller's context (tenant, document, revision) are
the associated data, so a value moved to another row or altered by one bit fails to open with
`IntegrityFailure`, never garbage.
"""

from __future__ import annotations

import os
import struct
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tenants.errors import DomainError
from tenants.root_key import RootKeyProvider
from tenants.tables import TenantKey

__all__ = [
    "DataKey",
    "IntegrityFailure",
    "KeyRing",
    "KeyStatus",
    "KeysDestroyed",
    "open_with",
    "seal_with",
]

_FORMAT = 1
_NONCE = 12
_KEY_BYTES = 32


class IntegrityFailure(DomainError):
    """A sealed value does not open: altered, or moved from another row. No plaintext escapes."""

    title = "Integrity check failed"


class KeysDestroyed(DomainError):
    """The tenant's keys were destroyed (crypto-shredded): its content can never be opened."""

    title = "Content destroyed"


class KeyStatus:
    ACTIVE = "active"
    RETIRING = "retiring"
    RETIRED = "retired"
    DESTROYED = "destroyed"


def seal_with(key: bytes, plaintext: bytes, *, header: bytes, context: bytes) -> bytes:
    """`header || nonce || AES-GCM(key, plaintext, aad = header || context)`."""
    nonce = os.urandom(_NONCE)
    return header + nonce + AESGCM(key).encrypt(nonce, plaintext, header + context)


def open_with(key: bytes, sealed: bytes, *, header_size: int, context: bytes, what: str) -> bytes:
    header = sealed[:header_size]
    nonce = sealed[header_size : header_size + _NONCE]
    if len(sealed) < header_size + _NONCE + 16:
        raise IntegrityFailure(f"{what} is truncated", code="integrity")
    try:
        return AESGCM(key).decrypt(nonce, sealed[header_size + _NONCE :], header + context)
    except InvalidTag:
        raise IntegrityFailure(
            f"{what} does not open with its key: it was altered or moved from another row",
            code="integrity",
        ) from None


def _kek_context(tenant_id: uuid.UUID, version: int) -> bytes:
    return b"shiftgate:kek|" + tenant_id.bytes + struct.pack(">I", version)


def _kek_header(root_id: str) -> bytes:
    return bytes([_FORMAT]) + bytes.fromhex(root_id)


_KEK_HEADER_SIZE = 1 + 8
_DEK_HEADER_SIZE = 1 + 4


@dataclass(frozen=True, slots=True)
class DataKey:
    """A fresh data key and its wrapped form (`wrapped` names the KEK version in its header)."""

    key: bytes
    wrapped: bytes
    kek_version: int


class KeyRing:
    """Per-tenant KEKs: created on first use; unwrapped ones are cached in memory only, for
    `cache_seconds`, so that reads need not unwrap on every request."""

    def __init__(self, root: RootKeyProvider, *, cache_seconds: float = 60.0) -> None:
        self._root = root
        self._cache_seconds = cache_seconds
        self._keks: dict[tuple[uuid.UUID, int], tuple[bytes, float]] = {}

    def forget(self, tenant_id: uuid.UUID | None = None) -> None:
        """Drop cached keys (all, or one tenant's): after rotation or destruction."""
        if tenant_id is None:
            self._keks.clear()
            return
        self._keks = {k: v for k, v in self._keks.items() if k[0] != tenant_id}

    # -- key-encryption keys ------------------------------------------------------------

    def wrap_kek(self, tenant_id: uuid.UUID, version: int, kek: bytes) -> tuple[bytes, str]:
        root_id, root = self._root.current_root_key()
        sealed = seal_with(
            root, kek, header=_kek_header(root_id), context=_kek_context(tenant_id, version)
        )
        return sealed, root_id

    def unwrap_kek(self, tenant_id: uuid.UUID, version: int, wrapped: bytes) -> bytes:
        root_id = wrapped[1:_KEK_HEADER_SIZE].hex()
        root = self._root.root_keys().get(root_id)
        if wrapped[:1] != bytes([_FORMAT]) or root is None:
            raise IntegrityFailure(
                f"key {version} of the tenant is wrapped by an unknown root key {root_id}",
                code="root_key_unknown",
            )
        return open_with(
            root,
            wrapped,
            header_size=_KEK_HEADER_SIZE,
            context=_kek_context(tenant_id, version),
            what="the tenant key",
        )

    def rewrap_kek(
        self,
        tenant_id: uuid.UUID,
        version: int,
        wrapped: bytes,
        root_id: str,
        root: bytes,
    ) -> bytes:
        """The same KEK, wrapped by another root key (for root rotation)."""
        kek = self.unwrap_kek(tenant_id, version, wrapped)
        return seal_with(
            root, kek, header=_kek_header(root_id), context=_kek_context(tenant_id, version)
        )

    async def create_kek(self, tenant_id: uuid.UUID) -> int:
        """A new KEK version for the tenant, now the one new data keys are wrapped with."""
        if await TenantKey.exists().where(
            (TenantKey.tenant_id == tenant_id) & (TenantKey.status == KeyStatus.DESTROYED)
        ):
            raise KeysDestroyed("the tenant's keys were destroyed", code="keys_destroyed")
        rows = (
            await TenantKey.select(TenantKey.version)
            .where(TenantKey.tenant_id == tenant_id)
            .order_by(TenantKey.version, ascending=False)
            .limit(1)
        )
        version = rows[0]["version"] + 1 if rows else 1
        wrapped, root_id = self.wrap_kek(tenant_id, version, os.urandom(_KEY_BYTES))
        now = datetime.now(UTC)
        await TenantKey.update(
            {TenantKey.status: KeyStatus.RETIRING, TenantKey.retired_at: now}
        ).where((TenantKey.tenant_id == tenant_id) & (TenantKey.status == KeyStatus.ACTIVE))
        await TenantKey.insert(
            TenantKey(
                id=uuid.uuid4(),
                tenant_id=tenant_id,
                version=version,
                wrapped_key=wrapped,
                root_key_id=root_id,
                status=KeyStatus.ACTIVE,
                created_at=now,
            )
        )
        self.forget(tenant_id)
        return version

    async def claim_current_version(self, tenant_id: uuid.UUID) -> int:
        """The active KEK version, row-locked until the caller's transaction ends.

        Call it inside the write transaction that stores the wrapped data key: a rotation
        (which retires this row) then waits for that transaction, so that no data key is ever
        wrapped by a version after its rotation began. Creates version 1 on first use.
        """
        rows = (
            await TenantKey.update({TenantKey.status: KeyStatus.ACTIVE})
            .where((TenantKey.tenant_id == tenant_id) & (TenantKey.status == KeyStatus.ACTIVE))
            .returning(TenantKey.version)
        )
        if rows:
            return int(rows[0]["version"])
        return await self.create_kek(tenant_id)

    async def kek(self, tenant_id: uuid.UUID, version: int) -> bytes:
        cached = self._keks.get((tenant_id, version))
        if cached and cached[1] > time.monotonic():
            return cached[0]
        row = (
            await TenantKey.select(TenantKey.wrapped_key, TenantKey.status)
            .where((TenantKey.tenant_id == tenant_id) & (TenantKey.version == version))
            .first()
        )
        if row is None or row["wrapped_key"] is None:
            if row is not None and row["status"] == KeyStatus.DESTROYED:
                raise KeysDestroyed("the tenant's keys were destroyed", code="keys_destroyed")
            raise IntegrityFailure(
                f"the tenant key version {version} does not exist", code="kek_missing"
            )
        key = self.unwrap_kek(tenant_id, version, bytes(row["wrapped_key"]))
        self._keks[(tenant_id, version)] = (key, time.monotonic() + self._cache_seconds)
        return key

    # -- data keys ----------------------------------------------------------------------

    async def new_data_key(self, tenant_id: uuid.UUID, context: bytes) -> DataKey:
        """A fresh data key; call inside the transaction that stores `wrapped`."""
        version = await self.claim_current_version(tenant_id)
        dek = os.urandom(_KEY_BYTES)
        return DataKey(dek, await self.wrap_dek(tenant_id, version, dek, context), version)

    async def wrap_dek(
        self, tenant_id: uuid.UUID, version: int, dek: bytes, context: bytes
    ) -> bytes:
        kek = await self.kek(tenant_id, version)
        header = bytes([_FORMAT]) + struct.pack(">I", version)
        return seal_with(kek, dek, header=header, context=b"shiftgate:dek|" + context)

    @staticmethod
    def dek_version(wrapped: bytes) -> int:
        if len(wrapped) < _DEK_HEADER_SIZE or wrapped[0] != _FORMAT:
            raise IntegrityFailure("the data key has an unknown format", code="integrity")
        return int(struct.unpack(">I", wrapped[1:_DEK_HEADER_SIZE])[0])

    async def unwrap_dek(self, tenant_id: uuid.UUID, wrapped: bytes, context: bytes) -> bytes:
        kek = await self.kek(tenant_id, self.dek_version(wrapped))
        return open_with(
            kek,
            wrapped,
            header_size=_DEK_HEADER_SIZE,
            context=b"shiftgate:dek|" + context,
            what="the data key",
        )
