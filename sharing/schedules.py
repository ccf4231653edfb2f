"""An MSP's business-hours schedule and sharing rules, stored per tenant and validated."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from policies.decision import MspRules
from policies.schedule import BusinessHours, shift_end
from sharing.audit import AuditAction, RequestMeta, record
from sharing.tables import Grant, MspRuleSet, Schedule
from tenants.db import write_transaction
from tenants.errors import Invalid, NotFound
from tenants.roles import Actor, Permission

__all__ = [
    "ScheduleView",
    "get_rules",
    "get_schedule",
    "load_rules",
    "load_schedule",
    "proposed_grant_end",
    "set_rules",
    "set_schedule",
]

_NO_REQUEST = RequestMeta()
MAX_BUFFER_MINUTES = 240


class ScheduleView(msgspec.Struct, frozen=True):
    hours: BusinessHours
    handback_buffer_minutes: int
    updated_at: datetime


_NOT_MSP = "only an MSP tenant has business hours and sharing rules"


async def load_schedule(tenant_id: uuid.UUID) -> ScheduleView | None:
    row = (
        await Schedule.select()
        .where(Schedule.tenant_id == tenant_id)
        .first()
        .output(load_json=True)
    )
    if row is None:
        return None
    return ScheduleView(
        hours=msgspec.convert(row["hours"], BusinessHours),
        handback_buffer_minutes=row["handback_buffer_minutes"],
        updated_at=row["updated_at"],
    )


async def get_schedule(actor: Actor) -> ScheduleView:
    schedule = await load_schedule(actor.require_msp(Permission.TENANT_READ, _NOT_MSP))
    if schedule is None:
        raise NotFound("no business hours are set yet")
    return schedule


async def set_schedule(
    actor: Actor,
    hours: BusinessHours,
    *,
    handback_buffer_minutes: int = 0,
    request: RequestMeta = _NO_REQUEST,
) -> ScheduleView:
    tenant_id = actor.require_msp(Permission.PARTNERSHIP_MANAGE, _NOT_MSP)
    if not 0 <= handback_buffer_minutes <= MAX_BUFFER_MINUTES:
        raise Invalid(f"the hand-back buffer is 0 to {MAX_BUFFER_MINUTES} minutes", code="buffer")
    now = datetime.now(UTC)
    values: dict[Any, Any] = {
        Schedule.hours: msgspec.to_builtins(hours),
        Schedule.handback_buffer_minutes: handback_buffer_minutes,
        Schedule.updated_at: now,
    }
    async with write_transaction():
        updated = (
            await Schedule.update(values)
            .where(Schedule.tenant_id == tenant_id)
            .returning(Schedule.id)
        )
        if not updated:
            await Schedule.insert(
                Schedule(
                    id=uuid.uuid4(),
                    tenant_id=tenant_id,
                    hours=msgspec.to_builtins(hours),
                    handback_buffer_minutes=handback_buffer_minutes,
                    updated_at=now,
                )
            )
        await record(
            tenant_id,
            AuditAction.SCHEDULE_CHANGED,
            actor=actor,
            target_type="schedule",
            request=request,
            context={"time_zone": hours.time_zone},
        )
    return await get_schedule(actor)


async def load_rules(tenant_id: uuid.UUID) -> MspRules:
    """The MSP's rules; the defaults until it sets its own."""
    row = (
        await MspRuleSet.select(MspRuleSet.rules)
        .where(MspRuleSet.tenant_id == tenant_id)
        .first()
        .output(load_json=True)
    )
    return MspRules() if row is None else msgspec.convert(row["rules"], MspRules)


async def get_rules(actor: Actor) -> MspRules:
    return await load_rules(actor.require_msp(Permission.TENANT_READ, _NOT_MSP))


async def set_rules(
    actor: Actor, rules: MspRules, *, request: RequestMeta = _NO_REQUEST
) -> MspRules:
    tenant_id = actor.require_msp(Permission.PARTNERSHIP_MANAGE, _NOT_MSP)
    now = datetime.now(UTC)
    async with write_transaction():
        updated = (
            await MspRuleSet.update(
                {MspRuleSet.rules: msgspec.to_builtins(rules), MspRuleSet.updated_at: now}
            )
            .where(MspRuleSet.tenant_id == tenant_id)
            .returning(MspRuleSet.id)
        )
        if not updated:
            await MspRuleSet.insert(
                MspRuleSet(
                    id=uuid.uuid4(),
                    tenant_id=tenant_id,
                    rules=msgspec.to_builtins(rules),
                    updated_at=now,
                )
            )
        await _rewarn_live_grants(tenant_id, rules)
        await record(
            tenant_id, AuditAction.RULES_CHANGED, actor=actor, target_type="rules", request=request
        )
    return await load_rules(tenant_id)


async def _rewarn_live_grants(tenant_id: uuid.UUID, rules: MspRules) -> None:
    """A new warning lead time applies to the live grants not warned yet."""
    live = await Grant.select(Grant.id, Grant.ends_at).where(
        (Grant.tenant_id == tenant_id)
        & Grant.status.is_in(["scheduled", "active"])
        & Grant.warned_at.is_null()
    )
    for grant in live:
        await Grant.update({Grant.warn_at: rules.warning_at(grant["ends_at"])}).where(
            Grant.id == grant["id"]
        )


def proposed_grant_end(
    hours: BusinessHours, handback_buffer_minutes: int, now: datetime
) -> datetime | None:
    """Where a grant handed off at `now` ends unless told otherwise: the next start of business
    hours plus the hand-back buffer; None when the schedule never closes (or never opens)."""
    end = shift_end(hours, now)
    return None if end is None else end + timedelta(minutes=handback_buffer_minutes)
