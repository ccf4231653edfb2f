"""Signed checkpoints of a tenant's chain: they verify with the published key, and only then."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from sharing import checkpoints
from sharing.audit import AuditAction, record
from sharing.tables import AuditCheckpoint, AuditSigningKey
from tenants.db import write_transaction
from tenants.keyring import KeyRing
from tenants.roles import Actor
from tenants.root_key import EnvRootKey
from tests.helpers import make_tenant

NOW = datetime(2026, 12, 23, 17, 0, tzinfo=UTC)


@pytest.fixture
def keyring(settings) -> KeyRing:
    return KeyRing(EnvRootKey(settings.root_key))


def _raw(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


async def _grow(tenant_id, count: int) -> None:
    for _ in range(count):
        await record(tenant_id, AuditAction.RULES_CHANGED, actor=Actor.system("test"))


async def _key(tenant_id, key_id) -> bytes:
    keys = {key.key_id: key for key in await checkpoints.public_keys(tenant_id)}
    return _raw(keys[key_id].public_key)


async def test_a_checkpoint_verifies_with_the_published_key_and_a_changed_one_does_not(
    db, keyring: KeyRing
) -> None:
    tenant = await make_tenant()
    await _grow(tenant.id, 2)
    signed = await checkpoints.sign_checkpoint(keyring, tenant.id, NOW)
    assert signed is not None
    assert signed.seq == 3  # tenant:created and two more
    public = await _key(tenant.id, signed.key_id)
    assert checkpoints.verify_checkpoint(public, signed)

    for change in (
        {"seq": 2},
        {"hash": "0" * 64},
        {"signed_at": "2026-12-23T18:00:00.000000Z"},
        {"tenant_id": (await make_tenant()).id},
    ):
        forged = msgspec.structs.replace(signed, **change)
        assert not checkpoints.verify_checkpoint(public, forged), change

    other = await make_tenant()
    await _grow(other.id, 1)
    theirs = await checkpoints.sign_checkpoint(keyring, other.id, NOW)
    assert theirs is not None
    assert not checkpoints.verify_checkpoint(await _key(other.id, theirs.key_id), signed)


async def test_the_private_key_is_stored_sealed(db, keyring: KeyRing) -> None:
    tenant = await make_tenant()
    signed = await checkpoints.sign_checkpoint(keyring, tenant.id, NOW)
    assert signed is not None
    async with write_transaction():
        _, private = await checkpoints._signing_key(keyring, tenant.id, NOW)
    raw = private.private_bytes_raw()
    row = await AuditSigningKey.select().where(AuditSigningKey.id == signed.key_id).first()
    assert row is not None
    stored = b"".join(
        bytes(value) for value in row.values() if isinstance(value, bytes | memoryview)
    )
    for encoding in (raw, base64.urlsafe_b64encode(raw).rstrip(b"="), raw.hex().encode()):
        assert encoding not in stored


async def test_one_head_gets_one_checkpoint_however_many_sign_it(db, keyring: KeyRing) -> None:
    tenant = await make_tenant()
    results = await asyncio.gather(
        *[checkpoints.sign_checkpoint(keyring, tenant.id, NOW) for _ in range(4)]
    )
    assert len({result.signature for result in results if result is not None}) == 1
    assert await AuditCheckpoint.count().where(AuditCheckpoint.tenant_id == tenant.id) == 1


async def test_checkpoints_come_every_n_events_or_after_the_interval(db, keyring: KeyRing) -> None:
    tenant = await make_tenant()
    minute = timedelta(seconds=60)
    assert await checkpoints.run_checkpoints(keyring, NOW, every=5, interval=minute) >= 1
    first = await checkpoints.latest_checkpoint(tenant.id)
    assert first is not None

    await _grow(tenant.id, 4)
    await checkpoints.run_checkpoints(keyring, NOW, every=5, interval=minute)
    assert (await checkpoints.latest_checkpoint(tenant.id)) == first  # neither 5 nor 60 s

    await _grow(tenant.id, 1)
    await checkpoints.run_checkpoints(keyring, NOW, every=5, interval=minute)
    after_five = await checkpoints.latest_checkpoint(tenant.id)
    assert after_five is not None
    assert after_five.seq == first.seq + 5

    await _grow(tenant.id, 1)
    await checkpoints.run_checkpoints(keyring, NOW + minute - timedelta(seconds=1), every=5)
    assert (await checkpoints.latest_checkpoint(tenant.id)) == after_five
    await checkpoints.run_checkpoints(keyring, NOW + minute, every=5, interval=minute)
    latest = await checkpoints.latest_checkpoint(tenant.id)
    assert latest is not None
    assert latest.seq == after_five.seq + 1

    quiet = await checkpoints.run_checkpoints(keyring, NOW + 10 * minute, every=5)
    assert (await checkpoints.latest_checkpoint(tenant.id)) == latest  # nothing new to sign
    assert quiet == 0


async def test_rotation_keeps_old_keys_published_and_old_checkpoints_valid(
    db, keyring: KeyRing
) -> None:
    tenant = await make_tenant()
    before = await checkpoints.sign_checkpoint(keyring, tenant.id, NOW)
    assert before is not None
    new_key = await checkpoints.rotate_audit_key(
        keyring, tenant.id, actor=Actor.system("test"), now=NOW + timedelta(seconds=30)
    )
    after = await checkpoints.sign_checkpoint(keyring, tenant.id, NOW + timedelta(minutes=1))
    assert after is not None
    assert after.key_id == new_key != before.key_id

    keys = await checkpoints.public_keys(tenant.id)
    assert [key.key_id for key in keys] == [before.key_id, new_key]
    assert keys[0].retired_at is not None
    assert keys[1].retired_at is None
    assert checkpoints.verify_checkpoint(await _key(tenant.id, before.key_id), before)
    assert checkpoints.verify_checkpoint(await _key(tenant.id, new_key), after)
    assert not checkpoints.verify_checkpoint(await _key(tenant.id, new_key), before)


async def test_an_empty_chain_has_no_checkpoint(db, keyring: KeyRing) -> None:
    from uuid import uuid4

    assert await checkpoints.sign_checkpoint(keyring, uuid4(), NOW) is None
