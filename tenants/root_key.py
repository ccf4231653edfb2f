"""The root key that wraps every tenant key: a file made by `shiftgate init`, or the environment.

A root key has a public id (a hash of it) stored beside everything it wraps, so that during and
after a rotation each wrapped key names the root key that opens it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = [
    "EnvRootKey",
    "FileRootKey",
    "RootKeyError",
    "RootKeyProvider",
    "create_root_key_file",
    "derive_secret",
    "root_key_id",
]

_KEY_BYTES = 32


class RootKeyError(RuntimeError):
    """The root key is missing or malformed; the message says how to mend it."""


class RootKeyProvider(Protocol):
    """Where root keys come from. A KMS-backed provider implements the same calls."""

    def current_root_key(self) -> tuple[str, bytes]:
        """The id and bytes of the key that wraps new tenant keys."""
        ...

    def root_keys(self) -> dict[str, bytes]:
        """Every root key that may still open a wrapped tenant key, by id."""
        ...


def root_key_id(key: bytes) -> str:
    """A public name for a root key (16 hex digits of a hash; reveals nothing of the key)."""
    return hashlib.sha256(b"shiftgate:root-key-id|" + key).hexdigest()[:16]


class FileRootKey:
    """`root.key` holds the current key; `root.key.new` exists only during a rotation."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pending_path = path.with_name(path.name + ".new")

    def current_root_key(self) -> tuple[str, bytes]:
        """During a rotation the pending key already wraps new tenant keys."""
        key = self._read(self.pending_path, required=False) or self._read(self.path, required=True)
        assert key is not None
        return root_key_id(key), key

    def root_keys(self) -> dict[str, bytes]:
        keys = {}
        for path in (self.path, self.pending_path):
            key = self._read(path, required=path == self.path)
            if key is not None:
                keys[root_key_id(key)] = key
        return keys

    def _read(self, path: Path, *, required: bool) -> bytes | None:
        try:
            text = path.read_text().strip()
        except FileNotFoundError:
            if not required:
                return None
            raise RootKeyError(
                f"root key file {path} is missing: run `shiftgate init` first"
            ) from None
        return _decode(text, str(path))

    def previous_root_key_id(self) -> str:
        """The id of `root.key` itself, the key a rotation replaces."""
        key = self._read(self.path, required=True)
        assert key is not None
        return root_key_id(key)

    def begin_rotation(self) -> tuple[str, bytes]:
        """Write the next root key beside the current one (kept if a rotation was cut short)."""
        if not self.pending_path.exists():
            _write_new_key(self.pending_path)
        key = self._read(self.pending_path, required=True)
        assert key is not None
        return root_key_id(key), key

    def finish_rotation(self) -> Path:
        """Make the pending key current; the old one is kept aside for old backups. Returns it."""
        old_key = self._read(self.path, required=True)
        assert old_key is not None
        old_id = root_key_id(old_key)
        retired = self.path.with_name(f"{self.path.name}.{old_id}.retired")
        os.replace(self.path, retired)
        os.replace(self.pending_path, self.path)
        return retired


class EnvRootKey:
    def __init__(self, encoded: str) -> None:
        self._key = _decode(encoded, "SHIFTGATE_ROOT_KEY")

    def current_root_key(self) -> tuple[str, bytes]:
        return root_key_id(self._key), self._key

    def root_keys(self) -> dict[str, bytes]:
        return {root_key_id(self._key): self._key}


def create_root_key_file(path: Path) -> bool:
    """Write a new random root key readable by its owner only; never overwrite. True if made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        _write_new_key(path)
    except FileExistsError:
        return False
    return True


def _write_new_key(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(base64.b64encode(secrets.token_bytes(_KEY_BYTES)).decode() + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def derive_secret(provider: RootKeyProvider, purpose: str) -> bytes:
    """A 32-byte secret for one purpose (CSRF, ...), derived from the current root key."""
    _, key = provider.current_root_key()
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=f"shiftgate:{purpose}".encode()
    ).derive(key)


def _decode(text: str, origin: str) -> bytes:
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise RootKeyError(f"{origin}: the root key is not valid base64") from None
    if len(key) != _KEY_BYTES:
        raise RootKeyError(f"{origin}: the root key must be {_KEY_BYTES} bytes, base64-encoded")
    return key
