"""Short texts sealed like document content (handoff summaries, hand-back notes): each record
has its own data key, wrapped by the owning MSP's key, bound to the record's id."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from tenants.keyring import KeyRing, open_with, seal_with

__all__ = ["SealedText", "open_text", "record_context", "seal_text"]

_FORMAT = 1


def record_context(kind: str, tenant_id: uuid.UUID, record_id: uuid.UUID) -> bytes:
    return kind.encode() + b"|" + tenant_id.bytes + record_id.bytes


@dataclass(frozen=True, slots=True)
class SealedText:
    kek_version: int
    wrapped_dek: bytes
    sealed: bytes


async def seal_text(
    keyring: KeyRing, tenant_id: uuid.UUID, kind: str, record_id: uuid.UUID, text: str
) -> SealedText:
    """Call inside the transaction that stores the result."""
    context = record_context(kind, tenant_id, record_id)
    data_key = await keyring.new_data_key(tenant_id, context)
    header = bytes([_FORMAT]) + record_id.bytes
    sealed = seal_with(data_key.key, text.encode(), header=header, context=context)
    return SealedText(data_key.kek_version, data_key.wrapped, sealed)


async def open_text(
    keyring: KeyRing,
    tenant_id: uuid.UUID,
    kind: str,
    record_id: uuid.UUID,
    wrapped_dek: bytes,
    sealed: bytes,
) -> str:
    context = record_context(kind, tenant_id, record_id)
    key = await keyring.unwrap_dek(tenant_id, wrapped_dek, context)
    return open_with(key, sealed, header_size=17, context=context, what=f"the {kind}").decode()
