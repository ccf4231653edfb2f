"""Tenants, users, memberships and API tokens: rows in, plain values out; callers audit."""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import msgspec

from tenants.errors import Conflict, Invalid, NotFound
from tenants.passwords import check_password_strength, hash_password
from tenants.roles import Actor, ActorKind, Role, TenantKind, TokenScope
from tenants.tables import ApiToken, Membership, Tenant, User

__all__ = [
    "API_TOKEN_PREFIX",
    "ApiTokenInfo",
    "IssuedToken",
    "MembershipInfo",
    "TenantInfo",
    "UserInfo",
    "actor_for_token",
    "actor_for_user",
    "get_tenant",
    "get_tenant_by_slug",
    "insert_api_token",
    "insert_membership",
    "insert_tenant",
    "insert_user",
    "list_api_tokens",
    "memberships_of",
    "normalise_email",
    "password_hash_of",
    "replace_password_hash",
    "revoke_api_token_row",
    "user_by_email",
]

API_TOKEN_PREFIX = "sgt_"
"""Every tenant API token starts with this, so that a leaked one is recognisable by scanners."""

_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
_MAX_TOKEN_DAYS = 366


class TenantInfo(msgspec.Struct, frozen=True):
    id: uuid.UUID
    name: str
    slug: str
    kind: TenantKind
    time_zone: str
    created_at: datetime


class UserInfo(msgspec.Struct, frozen=True):
    id: uuid.UUID
    email: str
    display_name: str
    created_at: datetime


class MembershipInfo(msgspec.Struct, frozen=True):
    tenant: TenantInfo
    role: Role


class ApiTokenInfo(msgspec.Struct, frozen=True):
    id: uuid.UUID
    name: str
    hint: str
    scopes: list[TokenScope]
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


class IssuedToken(msgspec.Struct, frozen=True):
    """A new token: `secret` is shown once and never stored."""

    info: ApiTokenInfo
    secret: str


def normalise_email(email: str) -> str:
    return email.strip().lower()


def _tenant_info(row: dict[str, Any]) -> TenantInfo:
    return msgspec.convert(row, TenantInfo, strict=False, from_attributes=False)


async def get_tenant(tenant_id: uuid.UUID) -> TenantInfo:
    row = (
        await Tenant.select().where((Tenant.id == tenant_id) & Tenant.deleted_at.is_null()).first()
    )
    if row is None:
        raise NotFound("no such tenant")
    return _tenant_info(row)


async def get_tenant_by_slug(slug: str) -> TenantInfo:
    row = (
        await Tenant.select()
        .where((Tenant.slug == slug.strip().lower()) & Tenant.deleted_at.is_null())
        .first()
    )
    if row is None:
        raise NotFound(f"no tenant with the slug {slug!r}")
    return _tenant_info(row)


async def insert_tenant(
    *, name: str, slug: str, kind: str, time_zone: str, now: datetime
) -> TenantInfo:
    name, slug = name.strip(), slug.strip().lower()
    if not 1 <= len(name) <= 200:
        raise Invalid("the tenant name needs 1 to 200 characters", code="name")
    if not _SLUG.match(slug):
        raise Invalid(
            "the slug must be 1-63 lower-case letters, digits or inner hyphens", code="slug"
        )
    try:
        tenant_kind = TenantKind(kind)
    except ValueError:
        raise Invalid("the tenant kind must be one of msp, noc, both", code="kind") from None
    _check_zone(time_zone)
    if await Tenant.exists().where(Tenant.slug == slug):
        raise Conflict(f"a tenant with the slug {slug!r} exists already", code="slug_taken")
    tenant = Tenant(
        id=uuid.uuid4(),
        name=name,
        slug=slug,
        kind=tenant_kind.value,
        time_zone=time_zone,
        created_at=now,
    )
    await tenant.save()
    return _tenant_info(tenant.to_dict())


def _check_zone(time_zone: str) -> None:
    if time_zone not in available_timezones():
        raise Invalid(
            f"unknown time zone {time_zone!r}: use an IANA name such as Europe/Berlin",
            code="time_zone",
        )
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise Invalid(f"unknown time zone {time_zone!r}", code="time_zone") from None


async def insert_user(*, email: str, display_name: str, password: str, now: datetime) -> UserInfo:
    email = normalise_email(email)
    if not _EMAIL.match(email) or len(email) > 254:
        raise Invalid("the email address is not valid", code="email")
    if problem := check_password_strength(password):
        raise Invalid(problem, code="password")
    if await User.exists().where(User.email == email):
        raise Conflict("a user with that email exists already", code="email_taken")
    user = User(
        id=uuid.uuid4(),
        email=email,
        display_name=display_name.strip()[:200] or email,
        password_hash=hash_password(password),
        created_at=now,
    )
    await user.save()
    return UserInfo(user.id, user.email, user.display_name, user.created_at)


async def user_by_email(email: str) -> dict[str, Any] | None:
    """The user row (with its password hash) for sign-in, or None."""
    row: dict[str, Any] | None = (
        await User.select().where(User.email == normalise_email(email)).first()
    )
    return row


async def insert_membership(
    *, tenant_id: uuid.UUID, user_id: uuid.UUID, role: str, now: datetime
) -> None:
    try:
        Role(role)
    except ValueError:
        raise Invalid(
            "the role must be one of owner, admin, technician, auditor", code="role"
        ) from None
    exists = await Membership.exists().where(
        (Membership.tenant_id == tenant_id) & (Membership.user_id == user_id)
    )
    if exists:
        raise Conflict("the user is a member of this tenant already", code="member_exists")
    await Membership.insert(
        Membership(id=uuid.uuid4(), tenant_id=tenant_id, user_id=user_id, role=role, created_at=now)
    )


async def memberships_of(user_id: uuid.UUID) -> list[MembershipInfo]:
    rows = (
        await Membership.select(
            Membership.role,
            *Membership.tenant_id.all_columns(),
        )
        .where((Membership.user_id == user_id) & Membership.tenant_id.deleted_at.is_null())
        .order_by(Membership.tenant_id.name)
    )
    result = []
    for row in rows:
        tenant = {key.removeprefix("tenant_id."): value for key, value in row.items()}
        result.append(MembershipInfo(tenant=_tenant_info(tenant), role=Role(row["role"])))
    return result


async def actor_for_user(user_id: uuid.UUID, tenant_id: uuid.UUID | None) -> Actor | None:
    """The user acting in `tenant_id` (or their first tenant); None if unknown or disabled."""
    user = await User.select(User.email, User.disabled).where(User.id == user_id).first()
    if user is None or user["disabled"]:
        return None
    memberships = await memberships_of(user_id)
    chosen = next((m for m in memberships if m.tenant.id == tenant_id), None)
    if chosen is None and memberships:
        chosen = memberships[0]
    if chosen is None:
        return Actor(kind=ActorKind.USER, id=user_id, label=user["email"])
    return Actor(
        kind=ActorKind.USER,
        id=user_id,
        label=user["email"],
        tenant_id=chosen.tenant.id,
        tenant_kind=chosen.tenant.kind,
        role=chosen.role,
    )


def _token_digest(secret: str) -> str:
    # Tokens carry 256 random bits: a fast hash suffices, and lets the lookup use an index.
    return hashlib.sha256(secret.encode()).hexdigest()


def _token_info(row: dict[str, Any]) -> ApiTokenInfo:
    return msgspec.convert(row, ApiTokenInfo, strict=False)


async def insert_api_token(
    *,
    tenant_id: uuid.UUID,
    name: str,
    scopes: Iterable[str],
    expires_in_days: int,
    created_by: uuid.UUID | None,
    now: datetime,
) -> IssuedToken:
    name = name.strip()
    if not 1 <= len(name) <= 100:
        raise Invalid("the token name needs 1 to 100 characters", code="name")
    try:
        scope_set = sorted({TokenScope(scope) for scope in scopes})
    except ValueError:
        raise Invalid(
            "token scopes must be among read, write, handoff, audit", code="scopes"
        ) from None
    if not scope_set:
        raise Invalid("a token needs at least one scope", code="scopes")
    if not 1 <= expires_in_days <= _MAX_TOKEN_DAYS:
        raise Invalid(f"a token expires after 1 to {_MAX_TOKEN_DAYS} days", code="expires_in_days")
    secret = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = {
        "id": uuid.uuid4(),
        "tenant_id": tenant_id,
        "name": name,
        "token_hash": _token_digest(secret),
        "hint": secret[: len(API_TOKEN_PREFIX) + 4],
        "scopes": [scope.value for scope in scope_set],
        "created_by": created_by,
        "created_at": now,
        "expires_at": now + timedelta(days=expires_in_days),
        "revoked_at": None,
    }
    await ApiToken.insert(ApiToken(**row))  # type: ignore[arg-type]
    return IssuedToken(info=_token_info(row), secret=secret)


async def list_api_tokens(tenant_id: uuid.UUID) -> list[ApiTokenInfo]:
    rows = (
        await ApiToken.select(exclude_secrets=True)
        .where(ApiToken.tenant_id == tenant_id)
        .order_by(ApiToken.created_at, ascending=False)
        .output(load_json=True)
    )
    return [_token_info(row) for row in rows]


async def revoke_api_token_row(
    tenant_id: uuid.UUID, token_id: uuid.UUID, now: datetime
) -> ApiTokenInfo:
    rows = (
        await ApiToken.update({ApiToken.revoked_at: now})
        .where(
            (ApiToken.id == token_id)
            & (ApiToken.tenant_id == tenant_id)
            & ApiToken.revoked_at.is_null()
        )
        .returning(*ApiToken.all_columns(exclude=[ApiToken.token_hash]))
    )
    if not rows:
        if await ApiToken.exists().where(
            (ApiToken.id == token_id) & (ApiToken.tenant_id == tenant_id)
        ):
            raise Conflict("the token is revoked already", code="already_revoked")
        raise NotFound("no such token")
    row = dict(rows[0])
    if isinstance(row["scopes"], str):
        row["scopes"] = msgspec.json.decode(row["scopes"])
    return _token_info(row)


async def actor_for_token(secret: str, now: datetime) -> Actor | None:
    """The tenant a bearer API token acts for, or None if unknown, expired or revoked."""
    if not secret.startswith(API_TOKEN_PREFIX) or len(secret) > 128:
        return None
    row = (
        await ApiToken.select(
            ApiToken.id,
            ApiToken.name,
            ApiToken.scopes,
            ApiToken.expires_at,
            ApiToken.revoked_at,
            ApiToken.tenant_id,
            ApiToken.tenant_id.kind,
            ApiToken.tenant_id.deleted_at,
        )
        .where(ApiToken.token_hash == _token_digest(secret))
        .first()
        .output(load_json=True)
    )
    if row is None or row["revoked_at"] is not None or row["expires_at"] <= now:
        return None
    if row["tenant_id.deleted_at"] is not None:
        return None
    return Actor(
        kind=ActorKind.API_TOKEN,
        id=row["id"],
        label=f"token:{row['name']}",
        tenant_id=row["tenant_id"],
        tenant_kind=TenantKind(row["tenant_id.kind"]),
        scopes=frozenset(TokenScope(scope) for scope in row["scopes"]),
    )


async def password_hash_of(user_id: uuid.UUID) -> str | None:
    """The stored password hash of an enabled user, or None (unknown or disabled)."""
    row = (
        await User.select(User.password_hash)
        .where((User.id == user_id) & User.disabled.eq(False))
        .first()
    )
    return None if row is None else str(row["password_hash"])


async def replace_password_hash(user_id: uuid.UUID, *, expected: str, new: str) -> bool:
    """Store `new` if the user's hash is still `expected` (no change slipped in meanwhile)."""
    updated = (
        await User.update({User.password_hash: new})
        .where((User.id == user_id) & (User.password_hash == expected))
        .returning(User.id)
    )
    return bool(updated)
