"""The root key that wraps every other key: a file made by `shiftgate init`, or the environment."""

from __future__ import annotations

import base64
import binascii
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
]

_KEY_BYTES = 32


class RootKeyError(RuntimeError):
    """The root key is missing or malformed; the message says how to mend it."""


class RootKeyProvider(Protocol):
    """Where the root key comes from. A KMS-backed provider implements the same call."""

    def root_key(self) -> bytes: ...


class FileRootKey:
    def __init__(self, path: Path) -> None:
        self._path = path

    def root_key(self) -> bytes:
        try:
            text = self._path.read_text().strip()
        except FileNotFoundError:
            raise RootKeyError(
                f"root key file {self._path} is missing: run `shiftgate init` first"
            ) from None
        return _decode(text, str(self._path))


class EnvRootKey:
    def __init__(self, encoded: str) -> None:
        self._encoded = encoded

    def root_key(self) -> bytes:
        return _decode(self._encoded, "SHIFTGATE_ROOT_KEY")


def create_root_key_file(path: Path) -> bool:
    """Write a new random root key readable by its owner only; never overwrite. True if made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as handle:
        handle.write(base64.b64encode(secrets.token_bytes(_KEY_BYTES)).decode() + "\n")
    return True


def derive_secret(provider: RootKeyProvider, purpose: str) -> bytes:
    """A 32-byte secret for one purpose (CSRF, ...), derived from the root key with HKDF."""
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=f"shiftgate:{purpose}".encode()
    ).derive(provider.root_key())


def _decode(text: str, origin: str) -> bytes:
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise RootKeyError(f"{origin}: the root key is not valid base64") from None
    if len(key) != _KEY_BYTES:
        raise RootKeyError(f"{origin}: the root key must be {_KEY_BYTES} bytes, base64-encoded")
    return key
