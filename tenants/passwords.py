"""Password hashing with scrypt (memory-hard), self-describing hashes, constant-time checks."""

from __future__ import annotations

import base64
import hmac
import secrets

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

__all__ = ["MIN_PASSWORD_LENGTH", "check_password_strength", "hash_password", "verify_password"]

MIN_PASSWORD_LENGTH = 12
_MAX_PASSWORD_LENGTH = 1024
# 2**15 * 8 * 128 bytes = 32 MiB per hash: memory-hard, about 0.1 s on a small server core.
_N, _R, _P = 2**15, 8, 1
_SALT_BYTES, _KEY_BYTES = 16, 32


def check_password_strength(password: str) -> str | None:
    """Return what is wrong with a new password, or None when it is acceptable."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"the password needs at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > _MAX_PASSWORD_LENGTH:
        return f"the password may have at most {_MAX_PASSWORD_LENGTH} characters"
    return None


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(_SALT_BYTES)
    key = _derive(password, salt, _N, _R, _P)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, encoded: str | None) -> bool:
    """Check `password` against `encoded`; with no hash (unknown user) spend the same time, fail."""
    if encoded is None:
        _derive(password, b"\0" * _SALT_BYTES, _N, _R, _P)
        return False
    try:
        scheme, n, r, p, salt, expected = encoded.split("$")
        if scheme != "scrypt":
            return False
        key = _derive(password, _unb64(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(key, _unb64(expected))


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    data = password.encode()[: _MAX_PASSWORD_LENGTH * 4]
    return Scrypt(salt=salt, length=_KEY_BYTES, n=n, r=r, p=p).derive(data)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
