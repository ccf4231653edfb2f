"""The decision function: may this partner read this document now, may this grant be made?

Pure and deterministic: plain values in, a `Decision` out, no I/O. Deny always wins, and nothing
is allowed unless a grant says so. Every denial carries stable reason codes and a sentence,
which the audit event and the 403 body both repeat.
"""

from __future__ import annotations

import ipaddress
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

import msgspec

from policies.ceiling import MAX_GRANT_HOURS_LIMIT, Ceiling
from policies.vocabulary import DocumentKind, Sensitivity

__all__ = [
    "MAX_BREAK_GLASS_REASON",
    "Decision",
    "DocumentFacts",
    "GrantFacts",
    "GrantScope",
    "MspRules",
    "ReadRequest",
    "Reason",
    "decide_grant",
    "decide_read",
]

MAX_BREAK_GLASS_REASON = 500
_MIN_BREAK_GLASS_REASON = 10


class GrantScope(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What one grant covers: document kinds, tags (any of; empty = any), a sensitivity
    ceiling. Always within the partnership's ceiling."""

    document_kinds: Annotated[list[DocumentKind], msgspec.Meta(min_length=1)]
    tags: Annotated[list[str], msgspec.Meta(max_length=20)] = msgspec.field(default_factory=list)
    max_sensitivity: Sensitivity = Sensitivity.CONFIDENTIAL


class MspRules(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """An MSP's own rules, on top of every partnership ceiling."""

    never_share_clients: list[uuid.UUID] = msgspec.field(default_factory=list)
    never_share_tags: list[str] = msgspec.field(default_factory=list)
    max_grant_hours: Annotated[int, msgspec.Meta(ge=1, le=MAX_GRANT_HOURS_LIMIT)] = (
        MAX_GRANT_HOURS_LIMIT
    )
    partner_networks: list[str] = msgspec.field(default_factory=list)
    secrets_need_break_glass: bool = True
    reads_per_minute: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 120
    expiry_warning_minutes: Annotated[int, msgspec.Meta(ge=0, le=1440)] = 15  # 0: no warning

    def warning_at(self, ends_at: datetime) -> datetime | None:
        """When both sides are told the grant ends soon; None when the MSP wants no warning."""
        if self.expiry_warning_minutes == 0:
            return None
        return ends_at - timedelta(minutes=self.expiry_warning_minutes)

    def __post_init__(self) -> None:
        for network in self.partner_networks:
            ipaddress.ip_network(network, strict=False)  # ValueError names the bad one


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reasons: tuple[Reason, ...] = ()
    break_glass: bool = False

    @property
    def codes(self) -> list[str]:
        return [reason.code for reason in self.reasons]


@dataclass(frozen=True, slots=True)
class GrantFacts:
    id: uuid.UUID
    status: str
    starts_at: datetime
    ends_at: datetime
    client_id: uuid.UUID
    scope: GrantScope
    partnership_active: bool


@dataclass(frozen=True, slots=True)
class DocumentFacts:
    id: uuid.UUID
    client_id: uuid.UUID | None
    kind: DocumentKind
    tags: frozenset[str]
    sensitivity: Sensitivity
    archived: bool


@dataclass(frozen=True, slots=True)
class ReadRequest:
    now: datetime
    source_address: str | None = None
    break_glass_reason: str | None = None
    reads_last_minute: int = 0


def _deny(code: str, message: str) -> Reason:
    return Reason(code, message)


def _address_in(address: str | None, networks: list[str]) -> bool:
    if address is None:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(net, strict=False) for net in networks)


def check_grant_window(grant: GrantFacts, now: datetime) -> Decision:
    """Whether the grant is in force at `now`: partnership active, not ended, in its window."""
    denials: list[Reason] = []
    if not grant.partnership_active:
        denials.append(_deny("partnership_inactive", "the partnership is not active"))
    if grant.status not in ("active", "scheduled"):
        denials.append(_deny("grant_not_active", f"the grant is {grant.status}"))
    if now < grant.starts_at:
        denials.append(_deny("grant_not_started", "the grant has not started yet"))
    if now >= grant.ends_at:
        denials.append(_deny("grant_ended", "the grant has ended"))
    return Decision(not denials, tuple(denials))


def decide_read(
    grant: GrantFacts | None,
    ceiling: Ceiling | None,
    rules: MspRules,
    document: DocumentFacts,
    request: ReadRequest,
) -> Decision:
    """May the grant's partner read `document` now? Every check runs; any denial wins."""
    if grant is None or ceiling is None:
        return Decision(False, (_deny("no_grant", "no grant covers this read"),))
    denials = list(check_grant_window(grant, request.now).reasons)
    if document.archived:
        denials.append(_deny("document_archived", "the document is archived"))
    if document.client_id is not None and document.client_id != grant.client_id:
        denials.append(_deny("client_out_of_scope", "the document belongs to another client"))
    if document.client_id is not None and document.client_id in rules.never_share_clients:
        denials.append(_deny("never_share_client", "the MSP never shares this client"))
    outside_ceiling = ceiling.clients != "all" and document.client_id not in ceiling.clients
    if document.client_id is not None and outside_ceiling:
        denials.append(_deny("ceiling_client", "the partnership does not cover this client"))
    if document.kind not in grant.scope.document_kinds:
        denials.append(_deny("kind_out_of_scope", f"{document.kind.value} is outside the grant"))
    if document.kind not in ceiling.document_kinds:
        denials.append(_deny("ceiling_kind", f"{document.kind.value} is beyond the ceiling"))
    if grant.scope.tags and not (document.tags & set(grant.scope.tags)):
        denials.append(_deny("tag_out_of_scope", "the document has none of the grant's tags"))
    blocked = document.tags & set(rules.never_share_tags)
    if blocked:
        denials.append(_deny("never_share_tag", f"the MSP never shares tag {min(blocked)!r}"))
    if document.sensitivity.rank > grant.scope.max_sensitivity.rank:
        denials.append(
            _deny("sensitivity_above_scope", "the document is more sensitive than the grant")
        )
    secret = document.sensitivity is Sensitivity.SECRET
    if secret and not ceiling.secrets_allowed:
        denials.append(_deny("secrets_not_allowed", "the partnership never reveals secrets"))
    reason = (request.break_glass_reason or "").strip()
    if secret and rules.secrets_need_break_glass and len(reason) < _MIN_BREAK_GLASS_REASON:
        denials.append(
            _deny(
                "break_glass_required", "a secret needs a break-glass reason (X-Break-Glass-Reason)"
            )
        )
    if len(reason) > MAX_BREAK_GLASS_REASON:
        denials.append(
            _deny("reason_too_long", f"the reason exceeds {MAX_BREAK_GLASS_REASON} characters")
        )
    if rules.partner_networks and not _address_in(request.source_address, rules.partner_networks):
        denials.append(
            _deny(
                "network_not_allowed", "the request comes from outside the MSP's partner networks"
            )
        )
    if request.reads_last_minute > rules.reads_per_minute:
        denials.append(
            _deny(
                "rate_exceeded", f"more than {rules.reads_per_minute} reads a minute on this grant"
            )
        )
    if denials:
        return Decision(False, tuple(denials))
    return Decision(True, (), break_glass=secret)


def decide_grant(
    *,
    scope: GrantScope,
    ceiling: Ceiling,
    rules: MspRules,
    client_id: uuid.UUID,
    starts_at: datetime,
    ends_at: datetime,
    now: datetime,
    partnership_active: bool,
) -> Decision:
    """May a grant with this scope and window be made for this client?"""
    denials: list[Reason] = []
    if not partnership_active:
        denials.append(_deny("partnership_inactive", "the partnership is not active"))
    if ends_at <= starts_at:
        denials.append(_deny("ends_before_starts", "the grant must end after it starts"))
    if ends_at <= now:
        denials.append(_deny("ends_in_past", "the grant would end in the past"))
    longest = min(ceiling.max_grant_hours, rules.max_grant_hours)
    if ends_at - max(starts_at, now) > timedelta(hours=longest):
        denials.append(_deny("too_long", f"a grant may last at most {longest} hours"))
    if ceiling.clients != "all" and client_id not in ceiling.clients:
        denials.append(_deny("ceiling_client", "the partnership does not cover this client"))
    if client_id in rules.never_share_clients:
        denials.append(_deny("never_share_client", "the MSP never shares this client"))
    beyond = sorted(set(scope.document_kinds) - set(ceiling.document_kinds))
    if beyond:
        kinds = ", ".join(kind.value for kind in beyond)
        denials.append(_deny("ceiling_kind", f"beyond the ceiling: {kinds}"))
    if scope.max_sensitivity is Sensitivity.SECRET and not ceiling.secrets_allowed:
        denials.append(_deny("secrets_not_allowed", "the partnership never reveals secrets"))
    if denials:
        return Decision(False, tuple(denials))
    return Decision(True)
