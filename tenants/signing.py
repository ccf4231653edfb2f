"""The gateway's access-token signing keys (ES256), sealed by the root key, rotated with overlap.

The JWKS publishes the current key and every retired key whose tokens may still be alive.
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from joserfc.jwk import ECKey

from tenants.db import write_transaction
from tenants.keyring import open_with, seal_with
from tenants.root_key import RootKeyProvider
from tenants.tables import SigningKey

__all__ = ["SIGNING_ALG", "PublishedKey", "TokenSigner"]

SIGNING_ALG = "ES256"
_FORMAT = 1
_CACHE_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class PublishedKey:
    kid: str
    public_jwk: dict[str, Any]
    retired_at: datetime | None


def _context(kid: str) -> bytes:
    return b"shiftgate:signing-key|" + kid.encode()


class TokenSigner:
    """Signs with the newest key; knows every key whose tokens may still be alive.

    `max_token_seconds` bounds how long a retired key stays published: tokens live at most that
    long, and a process may keep signing with a just-retired key for `_CACHE_SECONDS`.
    """

    def __init__(self, root: RootKeyProvider, *, max_token_seconds: int) -> None:
        self._root = root
        self._published_for = timedelta(seconds=max_token_seconds + 2 * _CACHE_SECONDS)
        self._signing: tuple[str, ECKey, float] | None = None
        self._public: dict[str, ECKey] = {}
        self._public_until = 0.0

    def _seal(self, kid: str, key: ECKey) -> tuple[bytes, str]:
        root_id, root = self._root.current_root_key()
        private = msgspec.json.encode(key.as_dict(private=True))
        header = bytes([_FORMAT]) + bytes.fromhex(root_id)
        return seal_with(root, private, header=header, context=_context(kid)), root_id

    def _unseal(self, kid: str, sealed: bytes) -> ECKey:
        root = self._root.root_keys().get(sealed[1:9].hex())
        if root is None:
            raise RuntimeError(f"signing key {kid} is sealed by an unknown root key")
        private = open_with(root, sealed, header_size=9, context=_context(kid), what="signing key")
        return ECKey.import_key(msgspec.json.decode(private))

    async def rotate(self, now: datetime | None = None) -> str:
        """A new signing key; the previous one retires (still published for its tokens)."""
        now = now or datetime.now(UTC)
        kid = f"sg-{now:%Y%m%d}-{secrets.token_hex(4)}"
        key = ECKey.generate_key("P-256", parameters={"kid": kid, "alg": SIGNING_ALG, "use": "sig"})
        sealed, root_id = self._seal(kid, key)
        # one transaction: a reader never sees the old key retired and the new one not yet there
        async with write_transaction():
            await SigningKey.update({SigningKey.retired_at: now}).where(
                SigningKey.retired_at.is_null()
            )
            await SigningKey.insert(
                SigningKey(
                    id=uuid.uuid4(),
                    kid=kid,
                    alg=SIGNING_ALG,
                    private_sealed=sealed,
                    root_key_id=root_id,
                    public_jwk=key.as_dict(private=False),
                    created_at=now,
                )
            )
        self._signing = None
        self._public_until = 0.0
        return kid

    async def signing_key(self) -> tuple[str, ECKey]:
        """The current key (made on first use), cached briefly in memory."""
        cached = self._signing
        if cached and cached[2] > time.monotonic():
            return cached[0], cached[1]
        row = await SigningKey.select().where(SigningKey.retired_at.is_null()).first()
        if row is None:
            async with write_transaction():  # concurrent first uses: the first one makes the key
                if not await SigningKey.exists().where(SigningKey.retired_at.is_null()):
                    await self.rotate()
            row = await SigningKey.select().where(SigningKey.retired_at.is_null()).first()
            assert row is not None
        key = self._unseal(row["kid"], bytes(row["private_sealed"]))
        self._signing = (row["kid"], key, time.monotonic() + _CACHE_SECONDS)
        return row["kid"], key

    async def published(self, now: datetime | None = None) -> list[PublishedKey]:
        """The keys in the JWKS: the current one and those retired within the token lifetime."""
        now = now or datetime.now(UTC)
        rows = (
            await SigningKey.select(SigningKey.kid, SigningKey.public_jwk, SigningKey.retired_at)
            .where(
                SigningKey.retired_at.is_null()
                | (SigningKey.retired_at > now - self._published_for)
            )
            .order_by(SigningKey.created_at, ascending=False)
            .output(load_json=True)
        )
        return [PublishedKey(row["kid"], row["public_jwk"], row["retired_at"]) for row in rows]

    async def verification_key(self, kid: str) -> ECKey | None:
        """The public key for `kid` if it is published; looked up again when unknown."""
        if self._public_until < time.monotonic() or kid not in self._public:
            self._public = {
                key.kid: ECKey.import_key(key.public_jwk) for key in await self.published()
            }
            self._public_until = time.monotonic() + _CACHE_SECONDS
        return self._public.get(kid)

    def rewrap(self, kid: str, sealed: bytes, root_id: str, root: bytes) -> bytes:
        """The same private key, sealed by another root key (for root rotation)."""
        key = self._unseal(kid, sealed)
        private = msgspec.json.encode(key.as_dict(private=True))
        header = bytes([_FORMAT]) + bytes.fromhex(root_id)
        return seal_with(root, private, header=header, context=_context(kid))
