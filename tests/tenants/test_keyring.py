"""Envelope encryption: sealed values say what they are and open only where they belong."""

from __future__ import annotations

import base64
import secrets
from pathlib import Path

import pytest

from tenants.keyring import IntegrityFailure, KeyRing, KeyStatus, open_with, seal_with
from tenants.root_key import EnvRootKey, FileRootKey, RootKeyError, create_root_key_file
from tenants.tables import TenantKey
from tests.helpers import make_tenant

KEY = secrets.token_bytes(32)


def test_sealed_value_opens_with_its_key_header_and_context() -> None:
    sealed = seal_with(KEY, b"switch password", header=b"\x01abcd", context=b"doc-1")
    assert sealed.startswith(b"\x01abcd")
    assert b"switch password" not in sealed
    assert open_with(KEY, sealed, header_size=5, context=b"doc-1", what="x") == b"switch password"


@pytest.mark.parametrize("position", [0, 3, 6, 20, -1])
def test_any_flipped_byte_is_an_integrity_failure(position: int) -> None:
    sealed = bytearray(seal_with(KEY, b"secret body", header=b"\x01abcd", context=b"doc-1"))
    sealed[position] ^= 0x01
    with pytest.raises(IntegrityFailure) as failure:
        open_with(KEY, bytes(sealed), header_size=5, context=b"doc-1", what="the body")
    assert "secret body" not in str(failure.value)
    assert "altered or moved" in failure.value.detail


def test_a_value_moved_to_another_context_does_not_open() -> None:
    sealed = seal_with(KEY, b"body", header=b"\x01", context=b"doc-1")
    with pytest.raises(IntegrityFailure):
        open_with(KEY, sealed, header_size=1, context=b"doc-2", what="the body")


def test_truncated_value_is_an_integrity_failure() -> None:
    with pytest.raises(IntegrityFailure):
        open_with(KEY, b"\x01short", header_size=1, context=b"", what="the body")


async def test_tenant_key_is_created_on_first_use_and_stored_wrapped(db) -> None:
    tenant = await make_tenant()
    root = EnvRootKey(base64.b64encode(secrets.token_bytes(32)).decode())
    keyring = KeyRing(root)
    data_key = await keyring.new_data_key(tenant.id, b"ctx")
    assert data_key.kek_version == 1
    rows = await TenantKey.select().where(TenantKey.tenant_id == tenant.id)
    assert len(rows) == 1
    assert rows[0]["status"] == KeyStatus.ACTIVE
    assert rows[0]["root_key_id"] == root.current_root_key()[0]
    assert len(bytes(rows[0]["wrapped_key"])) == 1 + 8 + 12 + 32 + 16
    fresh = KeyRing(root)  # no cache: unwraps from the database
    assert await fresh.unwrap_dek(tenant.id, data_key.wrapped, b"ctx") == data_key.key
    with pytest.raises(IntegrityFailure):
        await fresh.unwrap_dek(tenant.id, data_key.wrapped, b"other ctx")


async def test_another_root_key_cannot_open_tenant_keys(db) -> None:
    tenant = await make_tenant()
    root = EnvRootKey(base64.b64encode(secrets.token_bytes(32)).decode())
    data_key = await KeyRing(root).new_data_key(tenant.id, b"ctx")
    stranger = KeyRing(EnvRootKey(base64.b64encode(secrets.token_bytes(32)).decode()))
    with pytest.raises(IntegrityFailure) as failure:
        await stranger.unwrap_dek(tenant.id, data_key.wrapped, b"ctx")
    assert failure.value.code == "root_key_unknown"


async def test_data_key_of_one_tenant_does_not_open_under_another(db) -> None:
    first, second = await make_tenant(), await make_tenant()
    keyring = KeyRing(EnvRootKey(base64.b64encode(secrets.token_bytes(32)).decode()))
    data_key = await keyring.new_data_key(first.id, b"ctx")
    await keyring.new_data_key(second.id, b"ctx")
    with pytest.raises(IntegrityFailure):
        await keyring.unwrap_dek(second.id, data_key.wrapped, b"ctx")


def test_root_key_file_is_private_and_rotation_keeps_both_keys_reachable(tmp_path: Path) -> None:
    path = tmp_path / "root.key"
    assert create_root_key_file(path)
    assert not create_root_key_file(path)  # never overwritten
    assert path.stat().st_mode & 0o777 == 0o600
    provider = FileRootKey(path)
    old_id, old_key = provider.current_root_key()
    new_id, new_key = provider.begin_rotation()
    assert new_id != old_id
    assert provider.root_keys() == {old_id: old_key, new_id: new_key}
    assert provider.begin_rotation() == (new_id, new_key)  # resumable
    retired = provider.finish_rotation()
    assert provider.current_root_key() == (new_id, new_key)
    assert retired.read_text().strip() == base64.b64encode(old_key).decode()
    assert old_id in retired.name


def test_missing_or_malformed_root_key_says_how_to_mend(tmp_path: Path) -> None:
    with pytest.raises(RootKeyError, match="shiftgate init"):
        FileRootKey(tmp_path / "absent.key").current_root_key()
    with pytest.raises(RootKeyError, match="base64"):
        EnvRootKey("not base64!")
    with pytest.raises(RootKeyError, match="32 bytes"):
        EnvRootKey(base64.b64encode(b"short").decode())
