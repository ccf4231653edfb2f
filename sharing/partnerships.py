"""Partnerships: an MSP invites a NOC, the NOC accepts; either side suspends or ends.

Every change is audited in both tenants' chains in the same transaction as the change.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from policies.ceiling import Ceiling
from sharing.audit import AuditAction, RequestMeta, record
from sharing.tables import Partnership
from tenants import service
from tenants.db import write_transaction
from tenants.errors import Conflict, Invalid, NotFound
from tenants.roles import Actor, Permission

__all__ = [
    "PartnershipAction",
    "PartnershipStatus",
    "PartnershipView",
    "TenantRef",
    "act",
    "end_all_for_tenant",
    "get_partnership",
    "invite",
    "list_partnerships",
    "set_ceiling",
]

_NO_REQUEST = RequestMeta()


class PartnershipStatus(enum.StrEnum):
    INVITED = "invited"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    DECLINED = "declined"
    ENDED = "ended"


class PartnershipAction(enum.StrEnum):
    ACCEPT = "accept"
    DECLINE = "decline"
    SUSPEND = "suspend"
    RESUME = "resume"
    END = "end"


class _Side(enum.Enum):
    MSP = "msp"
    NOC = "noc"
    EITHER = "either"
    SUSPENDER = "suspender"


@dataclass(frozen=True, slots=True)
class _Rule:
    sources: frozenset[PartnershipStatus]
    target: PartnershipStatus
    side: _Side
    audit: AuditAction


_S = PartnershipStatus
_RULES: dict[PartnershipAction, _Rule] = {
    PartnershipAction.ACCEPT: _Rule(
        frozenset({_S.INVITED}), _S.ACTIVE, _Side.NOC, AuditAction.PARTNERSHIP_ACCEPTED
    ),
    PartnershipAction.DECLINE: _Rule(
        frozenset({_S.INVITED}), _S.DECLINED, _Side.NOC, AuditAction.PARTNERSHIP_DECLINED
    ),
    PartnershipAction.SUSPEND: _Rule(
        frozenset({_S.ACTIVE}), _S.SUSPENDED, _Side.EITHER, AuditAction.PARTNERSHIP_SUSPENDED
    ),
    PartnershipAction.RESUME: _Rule(
        frozenset({_S.SUSPENDED}), _S.ACTIVE, _Side.SUSPENDER, AuditAction.PARTNERSHIP_RESUMED
    ),
    PartnershipAction.END: _Rule(
        frozenset({_S.INVITED, _S.ACTIVE, _S.SUSPENDED}),
        _S.ENDED,
        _Side.EITHER,
        AuditAction.PARTNERSHIP_ENDED,
    ),
}
_OPEN = frozenset({_S.INVITED, _S.ACTIVE, _S.SUSPENDED})


class TenantRef(msgspec.Struct, frozen=True):
    id: uuid.UUID
    name: str
    slug: str


class PartnershipView(msgspec.Struct, frozen=True):
    id: uuid.UUID
    msp: TenantRef
    noc: TenantRef
    status: PartnershipStatus
    ceiling: Ceiling
    suspended_by: uuid.UUID | None
    created_at: datetime
    updated_at: datetime


def _now() -> datetime:
    return datetime.now(UTC)


_COLUMNS = (
    Partnership.id,
    Partnership.status,
    Partnership.ceiling,
    Partnership.suspended_by,
    Partnership.created_at,
    Partnership.updated_at,
    Partnership.tenant_id.id,
    Partnership.tenant_id.name,
    Partnership.tenant_id.slug,
    Partnership.noc_tenant_id.id,
    Partnership.noc_tenant_id.name,
    Partnership.noc_tenant_id.slug,
)


def _view(row: dict[str, Any]) -> PartnershipView:
    def ref(prefix: str) -> TenantRef:
        return TenantRef(row[f"{prefix}.id"], row[f"{prefix}.name"], row[f"{prefix}.slug"])

    return PartnershipView(
        id=row["id"],
        msp=ref("tenant_id"),
        noc=ref("noc_tenant_id"),
        status=PartnershipStatus(row["status"]),
        ceiling=msgspec.convert(row["ceiling"], Ceiling),
        suspended_by=row["suspended_by"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _party(tenant_id: uuid.UUID) -> Any:
    return (Partnership.tenant_id == tenant_id) | (Partnership.noc_tenant_id == tenant_id)


async def list_partnerships(actor: Actor) -> list[PartnershipView]:
    """The partnerships the actor's tenant is a party to, on either side."""
    tenant_id = actor.require(Permission.TENANT_READ)
    rows = (
        await Partnership.select(*_COLUMNS)
        .where(_party(tenant_id))
        .order_by(Partnership.created_at, ascending=False)
        .output(load_json=True)
    )
    return [_view(row) for row in rows]


async def get_partnership(actor: Actor, partnership_id: uuid.UUID) -> PartnershipView:
    tenant_id = actor.require(Permission.TENANT_READ)
    return await _load(tenant_id, partnership_id)


async def _load(tenant_id: uuid.UUID, partnership_id: uuid.UUID) -> PartnershipView:
    row = (
        await Partnership.select(*_COLUMNS)
        .where((Partnership.id == partnership_id) & _party(tenant_id))
        .first()
        .output(load_json=True)
    )
    if row is None:
        raise NotFound("no such partnership")
    return _view(row)


async def invite(
    actor: Actor, *, noc_slug: str, ceiling: Ceiling, request: RequestMeta = _NO_REQUEST
) -> PartnershipView:
    """The MSP (the actor's tenant) invites the NOC named by `noc_slug`."""
    tenant_id = actor.require(Permission.PARTNERSHIP_MANAGE)
    msp = await service.get_tenant(tenant_id)
    if not msp.kind.is_msp:
        raise Conflict("only an MSP tenant invites partners", code="not_msp")
    try:
        noc = await service.get_tenant_by_slug(noc_slug)
    except NotFound:
        raise Invalid(f"no NOC tenant with the slug {noc_slug!r}", code="noc_unknown") from None
    if not noc.kind.is_noc:
        raise Invalid(f"{noc_slug!r} is not a NOC tenant", code="not_noc")
    if noc.id == msp.id:
        raise Invalid("a tenant cannot partner with itself", code="self")
    now = _now()
    async with write_transaction():
        existing = await Partnership.exists().where(
            (Partnership.tenant_id == msp.id)
            & (Partnership.noc_tenant_id == noc.id)
            & Partnership.status.is_in([status.value for status in _OPEN])
        )
        if existing:
            raise Conflict(
                f"a partnership with {noc.slug!r} is open already: end it before a new invitation",
                code="partnership_open",
            )
        partnership_id = uuid.uuid4()
        await Partnership.insert(
            Partnership(
                id=partnership_id,
                tenant_id=msp.id,
                noc_tenant_id=noc.id,
                status=PartnershipStatus.INVITED.value,
                ceiling=msgspec.to_builtins(ceiling),
                created_by=actor.id,
                created_at=now,
                updated_at=now,
            )
        )
        await _audit_both(
            msp.id, noc.id, partnership_id, AuditAction.PARTNERSHIP_INVITED, actor, request
        )
    return await _load(msp.id, partnership_id)


async def act(
    actor: Actor,
    partnership_id: uuid.UUID,
    action: PartnershipAction,
    *,
    request: RequestMeta = _NO_REQUEST,
) -> PartnershipView:
    """Apply one state change; an illegal one is a `Conflict` that says why."""
    tenant_id = actor.require(Permission.PARTNERSHIP_MANAGE)
    rule = _RULES[action]
    async with write_transaction():
        current = await _load(tenant_id, partnership_id)
        side = _Side.MSP if current.msp.id == tenant_id else _Side.NOC
        if rule.side is _Side.SUSPENDER and current.suspended_by != tenant_id:
            raise Conflict(
                "only the side that suspended the partnership can resume it", code="wrong_side"
            )
        if rule.side in {_Side.MSP, _Side.NOC} and rule.side is not side:
            raise Conflict(
                f"only the {rule.side.value.upper()} can {action.value} a partnership",
                code="wrong_side",
            )
        if current.status not in rule.sources:
            raise Conflict(
                f"cannot {action.value} a partnership that is {current.status.value}",
                code="illegal_transition",
            )
        changes: dict[Any, Any] = {
            Partnership.status: rule.target.value,
            Partnership.updated_at: _now(),
            Partnership.suspended_by: tenant_id if action is PartnershipAction.SUSPEND else None,
        }
        updated = (
            await Partnership.update(changes)
            .where(
                (Partnership.id == partnership_id) & (Partnership.status == current.status.value)
            )
            .returning(Partnership.id)
        )
        if not updated:
            raise Conflict("the partnership changed meanwhile: try again", code="stale")
        await _audit_both(
            current.msp.id, current.noc.id, partnership_id, rule.audit, actor, request
        )
    return await _load(tenant_id, partnership_id)


async def set_ceiling(
    actor: Actor,
    partnership_id: uuid.UUID,
    ceiling: Ceiling,
    *,
    request: RequestMeta = _NO_REQUEST,
) -> PartnershipView:
    """The MSP changes what may ever be shared. Open partnerships only."""
    tenant_id = actor.require(Permission.PARTNERSHIP_MANAGE)
    async with write_transaction():
        current = await _load(tenant_id, partnership_id)
        if current.msp.id != tenant_id:
            raise Conflict("only the MSP sets the ceiling", code="wrong_side")
        if current.status not in _OPEN:
            raise Conflict(
                f"cannot change the ceiling of a partnership that is {current.status.value}",
                code="illegal_transition",
            )
        await Partnership.update(
            {Partnership.ceiling: msgspec.to_builtins(ceiling), Partnership.updated_at: _now()}
        ).where(Partnership.id == partnership_id)
        await _audit_both(
            current.msp.id,
            current.noc.id,
            partnership_id,
            AuditAction.PARTNERSHIP_CEILING_CHANGED,
            actor,
            request,
        )
    return await _load(tenant_id, partnership_id)


async def end_all_for_tenant(tenant_id: uuid.UUID, actor: Actor) -> int:
    """End every open partnership of a tenant that is closing. Returns how many."""
    rows = await Partnership.select(
        Partnership.id, Partnership.tenant_id, Partnership.noc_tenant_id
    ).where(_party(tenant_id) & Partnership.status.is_in([status.value for status in _OPEN]))
    for row in rows:
        await Partnership.update(
            {
                Partnership.status: PartnershipStatus.ENDED.value,
                Partnership.updated_at: _now(),
                Partnership.suspended_by: None,
            }
        ).where(Partnership.id == row["id"])
        await _audit_both(
            row["tenant_id"],
            row["noc_tenant_id"],
            row["id"],
            AuditAction.PARTNERSHIP_ENDED,
            actor,
            _NO_REQUEST,
        )
    return len(rows)


async def _audit_both(
    msp_id: uuid.UUID,
    noc_id: uuid.UUID,
    partnership_id: uuid.UUID,
    action: AuditAction,
    actor: Actor,
    request: RequestMeta,
) -> None:
    context = {"msp_tenant_id": str(msp_id), "noc_tenant_id": str(noc_id)}
    for tenant_id in sorted((msp_id, noc_id)):  # one lock order everywhere: no deadlock
        await record(
            tenant_id,
            action,
            actor=actor,
            target_type="partnership",
            target_id=partnership_id,
            request=request,
            context=context,
        )
