"""Audited account actions: creating tenants and users, signing in, issuing tenant API tokens."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

import anyio

from sharing.audit import AuditAction, Outcome, RequestMeta, Severity, record
from tenants import service
from tenants.db import write_transaction
from tenants.errors import Conflict, Forbidden, Invalid
from tenants.passwords import check_password_strength, hash_password, verify_password
from tenants.roles import PLATFORM_TENANT_ID, Actor, ActorKind, Permission
from tenants.service import ApiTokenInfo, IssuedToken, TenantInfo, UserInfo

__all__ = [
    "add_member",
    "change_password",
    "create_tenant",
    "create_user",
    "issue_api_token",
    "record_throttled_sign_in",
    "revoke_api_token",
    "sign_in",
    "sign_out",
]

_NO_REQUEST = RequestMeta()


def _now() -> datetime:
    return datetime.now(UTC)


async def create_tenant(
    *, name: str, slug: str, kind: str, time_zone: str, actor: Actor
) -> TenantInfo:
    async with write_transaction():
        tenant = await service.insert_tenant(
            name=name, slug=slug, kind=kind, time_zone=time_zone, now=_now()
        )
        await record(
            tenant.id,
            AuditAction.TENANT_CREATED,
            actor=actor,
            target_type="tenant",
            target_id=tenant.id,
            context={"slug": tenant.slug, "kind": tenant.kind.value},
        )
    return tenant


async def create_user(
    *,
    email: str,
    display_name: str,
    password: str,
    tenant_id: uuid.UUID,
    role: str,
    actor: Actor,
) -> UserInfo:
    """A new user, member of `tenant_id` with `role`, both audited in that tenant's chain."""
    async with write_transaction():
        user = await service.insert_user(
            email=email, display_name=display_name, password=password, now=_now()
        )
        await record(
            tenant_id,
            AuditAction.USER_CREATED,
            actor=actor,
            target_type="user",
            target_id=user.id,
            context={"email": user.email},
        )
        await _grant_membership(tenant_id, user.id, user.email, role, actor)
    return user


async def add_member(*, email: str, tenant_id: uuid.UUID, role: str, actor: Actor) -> None:
    """Make an existing user a member of another tenant."""
    row = await service.user_by_email(email)
    if row is None:
        raise Invalid("no user with that email", code="email")
    async with write_transaction():
        await _grant_membership(tenant_id, row["id"], row["email"], role, actor)


async def _grant_membership(
    tenant_id: uuid.UUID, user_id: uuid.UUID, email: str, role: str, actor: Actor
) -> None:
    await service.insert_membership(tenant_id=tenant_id, user_id=user_id, role=role, now=_now())
    await record(
        tenant_id,
        AuditAction.MEMBERSHIP_GRANTED,
        actor=actor,
        target_type="user",
        target_id=user_id,
        context={"email": email, "role": role},
    )


async def sign_in(email: str, password: str, request: RequestMeta = _NO_REQUEST) -> Actor | None:
    """Check a portal password; audit the outcome in each of the user's tenants. None: refused.

    The reason for a refusal is in the audit log, never in the answer: an unknown email and a
    wrong password look the same to the caller, and take the same time.
    """
    row = await service.user_by_email(email)
    encoded = row["password_hash"] if row is not None else None
    valid = await anyio.to_thread.run_sync(verify_password, password, encoded)
    if row is None:
        await record(
            PLATFORM_TENANT_ID,
            AuditAction.LOGIN_FAILED,
            actor=Actor(kind=ActorKind.USER, id=None, label=service.normalise_email(email)[:254]),
            outcome=Outcome.FAILURE,
            severity=Severity.WARNING,
            reason="unknown email",
            request=request,
        )
        return None
    user_id: uuid.UUID = row["id"]
    person = Actor(kind=ActorKind.USER, id=user_id, label=row["email"])
    memberships = await service.memberships_of(user_id)
    reason = None
    if not valid:
        reason = "wrong password"
    elif row["disabled"]:
        reason = "user disabled"
    elif not memberships:
        reason = "no membership in any tenant"
    async with write_transaction():
        for tenant_id in sorted(m.tenant.id for m in memberships) or [PLATFORM_TENANT_ID]:
            await record(
                tenant_id,
                AuditAction.LOGIN_FAILED if reason else AuditAction.LOGIN_SUCCEEDED,
                actor=person,
                outcome=Outcome.FAILURE if reason else Outcome.SUCCESS,
                severity=Severity.WARNING if reason else Severity.INFO,
                reason=reason,
                request=request,
            )
    if reason:
        return None
    return await service.actor_for_user(user_id, None)


async def record_throttled_sign_in(email: str, request: RequestMeta = _NO_REQUEST) -> None:
    await record(
        PLATFORM_TENANT_ID,
        AuditAction.LOGIN_THROTTLED,
        actor=Actor(kind=ActorKind.USER, id=None, label=service.normalise_email(email)[:254]),
        outcome=Outcome.DENIED,
        severity=Severity.WARNING,
        reason="too many failed sign-ins",
        request=request,
    )


async def sign_out(actor: Actor, request: RequestMeta = _NO_REQUEST) -> None:
    if actor.tenant_id is not None:
        await record(actor.tenant_id, AuditAction.LOGOUT, actor=actor, request=request)


async def issue_api_token(
    actor: Actor,
    *,
    name: str,
    scopes: Iterable[str],
    expires_in_days: int,
    request: RequestMeta = _NO_REQUEST,
) -> IssuedToken:
    """A new API token for the actor's tenant. Only people (admins) issue tokens, never a token."""
    tenant_id = actor.require(Permission.TOKEN_MANAGE)
    if actor.kind not in {ActorKind.USER, ActorKind.SYSTEM}:
        raise Forbidden("API tokens are issued by a signed-in admin", code="user_required")
    async with write_transaction():
        issued = await service.insert_api_token(
            tenant_id=tenant_id,
            name=name,
            scopes=scopes,
            expires_in_days=expires_in_days,
            created_by=actor.id,
            now=_now(),
        )
        await record(
            tenant_id,
            AuditAction.API_TOKEN_CREATED,
            actor=actor,
            target_type="api_token",
            target_id=issued.info.id,
            request=request,
            context={
                "name": issued.info.name,
                "scopes": " ".join(issued.info.scopes),
                "expires_at": issued.info.expires_at.isoformat(),
            },
        )
    return issued


async def revoke_api_token(
    actor: Actor, token_id: uuid.UUID, request: RequestMeta = _NO_REQUEST
) -> ApiTokenInfo:
    tenant_id = actor.require(Permission.TOKEN_MANAGE)
    async with write_transaction():
        info = await service.revoke_api_token_row(tenant_id, token_id, _now())
        await record(
            tenant_id,
            AuditAction.API_TOKEN_REVOKED,
            actor=actor,
            target_type="api_token",
            target_id=token_id,
            request=request,
            context={"name": info.name},
        )
    return info


async def change_password(
    actor: Actor, current: str, new: str, *, request: RequestMeta = _NO_REQUEST
) -> None:
    """A signed-in person replaces their own password, proving the current one first.

    Refusals are `Invalid` with code `current_password` (wrong) or `new_password` (too short,
    too long, or the same as the current one); nothing is written then. The change is audited
    in each of the person's tenants.
    """
    if actor.kind is not ActorKind.USER or actor.id is None:
        raise Forbidden("only a signed-in person changes their own password", code="user_required")
    encoded = await service.password_hash_of(actor.id)
    valid = await anyio.to_thread.run_sync(verify_password, current, encoded)
    if not valid or encoded is None:
        raise Invalid("the current password is wrong", code="current_password")
    if problem := check_password_strength(new):
        raise Invalid(problem, code="new_password")
    if new == current:
        raise Invalid("the new password must differ from the current one", code="new_password")
    new_hash = await anyio.to_thread.run_sync(hash_password, new)
    memberships = await service.memberships_of(actor.id)
    async with write_transaction():
        if not await service.replace_password_hash(actor.id, expected=encoded, new=new_hash):
            raise Conflict("the password was changed meanwhile: try again", code="stale")
        for tenant_id in sorted(m.tenant.id for m in memberships) or [PLATFORM_TENANT_ID]:
            await record(
                tenant_id,
                AuditAction.PASSWORD_CHANGED,
                actor=actor,
                target_type="user",
                target_id=actor.id,
                request=request,
            )
