"""The decision function: each rule denies on its own, deny always wins, reasons are stable."""

from __future__ import annotations

import dataclasses
import ipaddress
import random
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import msgspec
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from policies.ceiling import Ceiling
from policies.decision import (
    MAX_BREAK_GLASS_REASON,
    Decision,
    DocumentFacts,
    GrantFacts,
    GrantScope,
    MspRules,
    ReadRequest,
    check_grant_window,
    decide_grant,
    decide_read,
)
from policies.vocabulary import DocumentKind, Sensitivity

T = TypeVar("T")

NOW = datetime(2026, 6, 3, 12, 0, tzinfo=UTC)
CLIENT = uuid.UUID("00000000-0000-4000-8000-000000000001")
OTHER_CLIENT = uuid.UUID("00000000-0000-4000-8000-000000000002")
THIRD_CLIENT = uuid.UUID("00000000-0000-4000-8000-000000000003")
MICROSECOND = timedelta(microseconds=1)
GOOD_REASON = "P1 outage at the client, firewall down"

K = DocumentKind
S = Sensitivity

# Every code the decision functions emit (collected from policies/decision.py).
READ_CODES = frozenset(
    {
        "no_grant",
        "partnership_inactive",
        "grant_not_active",
        "grant_not_started",
        "grant_ended",
        "document_archived",
        "client_out_of_scope",
        "never_share_client",
        "ceiling_client",
        "kind_out_of_scope",
        "ceiling_kind",
        "tag_out_of_scope",
        "never_share_tag",
        "sensitivity_above_scope",
        "secrets_not_allowed",
        "break_glass_required",
        "reason_too_long",
        "network_not_allowed",
        "rate_exceeded",
    }
)
GRANT_CODES = frozenset(
    {
        "partnership_inactive",
        "ends_before_starts",
        "ends_in_past",
        "too_long",
        "ceiling_client",
        "never_share_client",
        "ceiling_kind",
        "secrets_not_allowed",
    }
)


@dataclasses.dataclass(frozen=True)
class ReadCase:
    """All inputs of decide_read, in one value (`BASE` below is an allowed read)."""

    grant: GrantFacts | None
    ceiling: Ceiling | None
    rules: MspRules
    document: DocumentFacts
    request: ReadRequest

    def decide(self) -> Decision:
        return decide_read(self.grant, self.ceiling, self.rules, self.document, self.request)


def _grant(**changes: object) -> GrantFacts:
    grant = GrantFacts(
        id=uuid.UUID("00000000-0000-4000-8000-0000000000aa"),
        status="active",
        starts_at=NOW - timedelta(hours=2),
        ends_at=NOW + timedelta(hours=6),
        client_id=CLIENT,
        scope=GrantScope(
            document_kinds=[K.SOP, K.RUNBOOK, K.CREDENTIAL], max_sensitivity=S.CONFIDENTIAL
        ),
        partnership_active=True,
    )
    return dataclasses.replace(grant, **changes)


def _document(**changes: object) -> DocumentFacts:
    document = DocumentFacts(
        id=uuid.UUID("00000000-0000-4000-8000-0000000000dd"),
        client_id=CLIENT,
        kind=K.SOP,
        tags=frozenset({"firewall", "backup"}),
        sensitivity=S.STANDARD,
        archived=False,
    )
    return dataclasses.replace(document, **changes)


BASE = ReadCase(
    grant=_grant(),
    ceiling=Ceiling(),
    rules=MspRules(),
    document=_document(),
    request=ReadRequest(now=NOW),
)


def _with(case: ReadCase = BASE, **parts: object) -> ReadCase:
    return dataclasses.replace(case, **parts)


def _scope(**changes: object) -> GrantScope:
    assert BASE.grant is not None
    return msgspec.structs.replace(BASE.grant.scope, **changes)


def _secret_case(**request: object) -> ReadCase:
    """A secret credential that the ceiling and the scope both admit."""
    return _with(
        grant=_grant(scope=_scope(max_sensitivity=S.SECRET)),
        ceiling=Ceiling(secrets_allowed=True),
        document=_document(kind=K.CREDENTIAL, sensitivity=S.SECRET),
        request=ReadRequest(now=NOW, **request),  # type: ignore[arg-type]
    )


# --- decide_read: one rule at a time --------------------------------------------------------


def test_base_read_is_allowed() -> None:
    decision = BASE.decide()
    assert decision == Decision(True, (), break_glass=False)
    assert decision.codes == []


ALLOWED_READS = [
    pytest.param(_with(grant=_grant(status="scheduled")), id="scheduled-grant-in-window"),
    pytest.param(_with(grant=_grant(starts_at=NOW)), id="now-equals-starts-at"),
    pytest.param(_with(grant=_grant(ends_at=NOW + MICROSECOND)), id="ends-at-minus-1us"),
    pytest.param(_with(document=_document(client_id=None)), id="document-of-no-client"),
    pytest.param(_with(grant=_grant(scope=_scope(tags=["backup", "vpn"]))), id="one-tag-in-common"),
    pytest.param(
        _with(grant=_grant(scope=_scope(max_sensitivity=S.CONFIDENTIAL))),
        id="standard-under-confidential",
    ),
    pytest.param(
        _with(document=_document(sensitivity=S.CONFIDENTIAL)), id="confidential-at-scope-max"
    ),
    pytest.param(_with(ceiling=Ceiling(clients=[CLIENT])), id="client-listed-in-ceiling"),
    pytest.param(
        _with(ceiling=Ceiling(document_kinds=[K.SOP])), id="kind-is-the-only-ceiling-kind"
    ),
    pytest.param(_with(rules=MspRules(never_share_tags=["vpn"])), id="other-tag-never-shared"),
    pytest.param(
        _with(rules=MspRules(never_share_clients=[OTHER_CLIENT])), id="other-client-never-shared"
    ),
    pytest.param(
        _with(
            rules=MspRules(partner_networks=["203.0.113.0/24", "2001:db8::/32"]),
            request=ReadRequest(now=NOW, source_address="203.0.113.77"),
        ),
        id="address-in-partner-network",
    ),
    pytest.param(
        _with(
            rules=MspRules(partner_networks=["203.0.113.0/24", "2001:db8::/32"]),
            request=ReadRequest(now=NOW, source_address="2001:db8::5"),
        ),
        id="ipv6-address-in-partner-network",
    ),
    pytest.param(
        _with(
            rules=MspRules(reads_per_minute=10), request=ReadRequest(now=NOW, reads_last_minute=10)
        ),
        id="reads-at-the-limit",
    ),
    pytest.param(
        _with(request=ReadRequest(now=NOW, break_glass_reason="x" * MAX_BREAK_GLASS_REASON)),
        id="reason-of-500",
    ),
]


@pytest.mark.parametrize("case", ALLOWED_READS)
def test_reads_on_the_allowed_side_of_each_edge(case: ReadCase) -> None:
    assert case.decide() == Decision(True, (), break_glass=False)


DENIED_READS = [
    pytest.param(_with(grant=None), "no_grant", id="no-grant"),
    pytest.param(_with(ceiling=None), "no_grant", id="no-ceiling"),
    pytest.param(_with(grant=_grant(status="revoked")), "grant_not_active", id="revoked"),
    pytest.param(_with(grant=_grant(status="expired")), "grant_not_active", id="expired"),
    pytest.param(_with(grant=_grant(status="suspended")), "grant_not_active", id="suspended"),
    pytest.param(_with(grant=_grant(status="")), "grant_not_active", id="no-status"),
    pytest.param(
        _with(grant=_grant(starts_at=NOW + MICROSECOND)), "grant_not_started", id="before-start"
    ),
    pytest.param(_with(grant=_grant(ends_at=NOW)), "grant_ended", id="at-ends-at"),
    pytest.param(
        _with(grant=_grant(ends_at=NOW - timedelta(days=1), starts_at=NOW - timedelta(days=2))),
        "grant_ended",
        id="long-ended",
    ),
    pytest.param(
        _with(grant=_grant(partnership_active=False)),
        "partnership_inactive",
        id="partnership-inactive",
    ),
    pytest.param(
        _with(document=_document(client_id=OTHER_CLIENT)),
        "client_out_of_scope",
        id="other-client",
    ),
    pytest.param(
        _with(ceiling=Ceiling(clients=[OTHER_CLIENT, THIRD_CLIENT])),
        "ceiling_client",
        id="client-outside-ceiling",
    ),
    pytest.param(
        _with(document=_document(kind=K.NETWORK)), "kind_out_of_scope", id="kind-outside-scope"
    ),
    pytest.param(
        _with(ceiling=Ceiling(document_kinds=[K.RUNBOOK, K.CREDENTIAL])),
        "ceiling_kind",
        id="kind-outside-ceiling",
    ),
    pytest.param(
        _with(grant=_grant(scope=_scope(tags=["vpn", "dns"]))),
        "tag_out_of_scope",
        id="no-tag-in-scope",
    ),
    pytest.param(
        _with(grant=_grant(scope=_scope(tags=["vpn"])), document=_document(tags=frozenset())),
        "tag_out_of_scope",
        id="untagged-doc-vs-tagged-scope",
    ),
    pytest.param(
        _with(rules=MspRules(never_share_tags=["backup"])), "never_share_tag", id="never-share-tag"
    ),
    pytest.param(
        _with(rules=MspRules(never_share_clients=[CLIENT])),
        "never_share_client",
        id="never-share-client",
    ),
    pytest.param(
        _with(
            grant=_grant(scope=_scope(max_sensitivity=S.STANDARD)),
            document=_document(sensitivity=S.CONFIDENTIAL),
        ),
        "sensitivity_above_scope",
        id="confidential-over-standard",
    ),
    pytest.param(
        _with(
            _secret_case(break_glass_reason=GOOD_REASON),
            grant=_grant(scope=_scope(max_sensitivity=S.CONFIDENTIAL)),
        ),
        "sensitivity_above_scope",
        id="secret-over-confidential",
    ),
    pytest.param(
        _with(_secret_case(break_glass_reason=GOOD_REASON), ceiling=Ceiling(secrets_allowed=False)),
        "secrets_not_allowed",
        id="secret-beyond-ceiling",
    ),
    pytest.param(_secret_case(), "break_glass_required", id="secret-without-reason"),
    pytest.param(
        _secret_case(break_glass_reason="123456789"), "break_glass_required", id="reason-of-9"
    ),
    pytest.param(
        _secret_case(break_glass_reason="   short    \t\n "),
        "break_glass_required",
        id="reason-short-once-stripped",
    ),
    pytest.param(
        _with(request=ReadRequest(now=NOW, break_glass_reason="x" * (MAX_BREAK_GLASS_REASON + 1))),
        "reason_too_long",
        id="reason-of-501",
    ),
    pytest.param(
        _secret_case(break_glass_reason="x" * (MAX_BREAK_GLASS_REASON + 1)),
        "reason_too_long",
        id="secret-reason-of-501",
    ),
    pytest.param(
        _with(
            rules=MspRules(partner_networks=["203.0.113.0/24"]),
            request=ReadRequest(now=NOW, source_address="198.51.100.7"),
        ),
        "network_not_allowed",
        id="address-outside-networks",
    ),
    pytest.param(
        _with(rules=MspRules(partner_networks=["203.0.113.0/24"]), request=ReadRequest(now=NOW)),
        "network_not_allowed",
        id="no-address-with-networks",
    ),
    pytest.param(
        _with(
            rules=MspRules(partner_networks=["203.0.113.0/24"]),
            request=ReadRequest(now=NOW, source_address="203.0.113.7.evil"),
        ),
        "network_not_allowed",
        id="malformed-address",
    ),
    pytest.param(
        _with(
            rules=MspRules(partner_networks=["203.0.113.0/24"]),
            request=ReadRequest(now=NOW, source_address="::ffff:198.51.100.7"),
        ),
        "network_not_allowed",
        id="mapped-ipv6-outside",
    ),
    pytest.param(
        _with(
            rules=MspRules(reads_per_minute=10), request=ReadRequest(now=NOW, reads_last_minute=11)
        ),
        "rate_exceeded",
        id="reads-over-limit",
    ),
    pytest.param(_with(document=_document(archived=True)), "document_archived", id="archived"),
]


@pytest.mark.parametrize(("case", "code"), DENIED_READS)
def test_each_rule_denies_on_its_own(case: ReadCase, code: str) -> None:
    decision = case.decide()
    assert not decision.allowed
    assert not decision.break_glass
    assert decision.codes == [code]
    assert all(reason.message for reason in decision.reasons)


def test_all_violations_are_reported() -> None:
    case = _with(
        grant=_grant(status="revoked", ends_at=NOW, partnership_active=False),
        ceiling=Ceiling(clients=[THIRD_CLIENT], document_kinds=[K.NOTE]),
        rules=MspRules(
            never_share_clients=[OTHER_CLIENT],
            never_share_tags=["firewall"],
            partner_networks=["10.0.0.0/8"],
            reads_per_minute=1,
        ),
        document=_document(
            client_id=OTHER_CLIENT, kind=K.NETWORK, sensitivity=S.SECRET, archived=True
        ),
        request=ReadRequest(now=NOW, source_address="192.0.2.1", reads_last_minute=5),
    )
    decision = case.decide()
    assert not decision.allowed
    assert set(decision.codes) == {
        "partnership_inactive",
        "grant_not_active",
        "grant_ended",
        "document_archived",
        "client_out_of_scope",
        "never_share_client",
        "ceiling_client",
        "kind_out_of_scope",
        "ceiling_kind",
        "never_share_tag",
        "sensitivity_above_scope",
        "secrets_not_allowed",
        "break_glass_required",
        "network_not_allowed",
        "rate_exceeded",
    }
    assert len(decision.codes) == len(set(decision.codes))


def test_never_share_tag_reason_names_the_smallest_tag() -> None:
    # many blocked tags, so that a reason naming whichever one a set yields first would differ
    tags = [f"tag-{n:02d}" for n in range(30, 0, -1)]
    case = _with(rules=MspRules(never_share_tags=tags), document=_document(tags=frozenset(tags)))
    decision = case.decide()
    assert decision.codes == ["never_share_tag"]
    assert decision.reasons[0].message == "the MSP never shares tag 'tag-01'"


def test_secret_with_a_reason_is_a_break_glass_read() -> None:
    decision = _secret_case(break_glass_reason=GOOD_REASON).decide()
    assert decision == Decision(True, (), break_glass=True)


def test_secret_with_a_reason_of_exactly_ten_is_allowed() -> None:
    assert _secret_case(break_glass_reason="  0123456789  ").decide().allowed


def test_secret_without_reason_when_the_msp_does_not_ask_for_one() -> None:
    case = _with(_secret_case(), rules=MspRules(secrets_need_break_glass=False))
    assert case.decide() == Decision(True, (), break_glass=True)


def test_check_grant_window_edges() -> None:
    grant = _grant()
    assert check_grant_window(grant, grant.starts_at).allowed
    assert check_grant_window(grant, grant.ends_at - MICROSECOND).allowed
    assert check_grant_window(grant, grant.starts_at - MICROSECOND).codes == ["grant_not_started"]
    assert check_grant_window(grant, grant.ends_at).codes == ["grant_ended"]


# --- decide_grant ---------------------------------------------------------------------------

GRANT_BASE: dict[str, object] = {
    "scope": GrantScope(document_kinds=[K.SOP, K.RUNBOOK], max_sensitivity=S.CONFIDENTIAL),
    "ceiling": Ceiling(max_grant_hours=16),
    "rules": MspRules(max_grant_hours=24),
    "client_id": CLIENT,
    "starts_at": NOW,
    "ends_at": NOW + timedelta(hours=8),
    "now": NOW,
    "partnership_active": True,
}


def _decide_grant(**changes: object) -> Decision:
    return decide_grant(**{**GRANT_BASE, **changes})  # type: ignore[arg-type]


ALLOWED_GRANTS = [
    pytest.param({}, id="base"),
    pytest.param({"ends_at": NOW + timedelta(hours=16)}, id="exactly-ceiling-hours"),
    pytest.param(
        {"ceiling": Ceiling(max_grant_hours=48), "rules": MspRules(max_grant_hours=8)},
        id="exactly-rules-hours",
    ),
    pytest.param(
        {"starts_at": NOW - timedelta(hours=10), "ends_at": NOW + timedelta(hours=16)},
        id="started-earlier-counted-from-now",
    ),
    pytest.param(
        {"starts_at": NOW + timedelta(days=2), "ends_at": NOW + timedelta(days=2, hours=16)},
        id="scheduled-later",
    ),
    pytest.param({"ceiling": Ceiling(clients=[CLIENT, OTHER_CLIENT])}, id="client-in-ceiling"),
    pytest.param(
        {
            "scope": GrantScope(document_kinds=[K.CREDENTIAL], max_sensitivity=S.SECRET),
            "ceiling": Ceiling(secrets_allowed=True),
        },
        id="secrets-when-allowed",
    ),
    pytest.param({"ceiling": Ceiling(document_kinds=[K.RUNBOOK, K.SOP])}, id="kinds-equal-ceiling"),
]


@pytest.mark.parametrize("changes", ALLOWED_GRANTS)
def test_grants_on_the_allowed_side_of_each_edge(changes: dict[str, object]) -> None:
    assert _decide_grant(**changes) == Decision(True)


DENIED_GRANTS = [
    pytest.param(
        {"ceiling": Ceiling(document_kinds=[K.SOP])}, "ceiling_kind", id="kinds-wider-than-ceiling"
    ),
    pytest.param(
        {"scope": GrantScope(document_kinds=[K.CREDENTIAL], max_sensitivity=S.SECRET)},
        "secrets_not_allowed",
        id="secrets-not-allowed",
    ),
    pytest.param(
        {"ends_at": NOW + timedelta(hours=16) + MICROSECOND}, "too_long", id="over-ceiling-hours"
    ),
    pytest.param(
        {
            "ceiling": Ceiling(max_grant_hours=48),
            "rules": MspRules(max_grant_hours=8),
            "ends_at": NOW + timedelta(hours=9),
        },
        "too_long",
        id="over-rules-hours",
    ),
    pytest.param(
        {"starts_at": NOW + timedelta(hours=2), "ends_at": NOW + timedelta(hours=1)},
        "ends_before_starts",
        id="ends-before-starts",
    ),
    pytest.param(
        {"starts_at": NOW + timedelta(hours=2), "ends_at": NOW + timedelta(hours=2)},
        "ends_before_starts",
        id="ends-at-starts",
    ),
    pytest.param(
        {"starts_at": NOW - timedelta(hours=3), "ends_at": NOW - timedelta(hours=1)},
        "ends_in_past",
        id="ends-in-past",
    ),
    pytest.param(
        {"starts_at": NOW - timedelta(hours=3), "ends_at": NOW},
        "ends_in_past",
        id="ends-now",
    ),
    pytest.param(
        {"ceiling": Ceiling(clients=[OTHER_CLIENT])}, "ceiling_client", id="client-outside-ceiling"
    ),
    pytest.param(
        {"rules": MspRules(never_share_clients=[CLIENT])},
        "never_share_client",
        id="never-share-client",
    ),
    pytest.param({"partnership_active": False}, "partnership_inactive", id="partnership-inactive"),
]


@pytest.mark.parametrize(("changes", "code"), DENIED_GRANTS)
def test_each_grant_rule_denies_on_its_own(changes: dict[str, object], code: str) -> None:
    decision = _decide_grant(**changes)
    assert not decision.allowed
    assert decision.codes == [code]
    assert all(reason.message for reason in decision.reasons)


@pytest.mark.parametrize(
    ("ceiling_hours", "rules_hours", "smaller"), [(16, 24, 16), (48, 8, 8), (12, 12, 12)]
)
def test_the_smaller_maximum_wins(ceiling_hours: int, rules_hours: int, smaller: int) -> None:
    limits = {
        "ceiling": Ceiling(max_grant_hours=ceiling_hours),
        "rules": MspRules(max_grant_hours=rules_hours),
    }
    assert _decide_grant(**limits, ends_at=NOW + timedelta(hours=smaller)).allowed
    decision = _decide_grant(**limits, ends_at=NOW + timedelta(hours=smaller, seconds=1))
    assert decision.codes == ["too_long"]
    assert f"at most {smaller} hours" in decision.reasons[0].message


def test_grant_kinds_beyond_ceiling_are_named() -> None:
    decision = _decide_grant(
        scope=GrantScope(document_kinds=[K.SOP, K.NOTE, K.NETWORK]),
        ceiling=Ceiling(document_kinds=[K.SOP]),
    )
    assert decision.codes == ["ceiling_kind"]
    assert "network" in decision.reasons[0].message
    assert "note" in decision.reasons[0].message


def test_all_grant_violations_are_reported() -> None:
    decision = _decide_grant(
        scope=GrantScope(document_kinds=[K.CREDENTIAL], max_sensitivity=S.SECRET),
        ceiling=Ceiling(clients=[OTHER_CLIENT], document_kinds=[K.SOP]),
        rules=MspRules(never_share_clients=[CLIENT]),
        starts_at=NOW - timedelta(hours=1),
        ends_at=NOW - timedelta(hours=2),
        partnership_active=False,
    )
    assert set(decision.codes) == {
        "partnership_inactive",
        "ends_before_starts",
        "ends_in_past",
        "ceiling_client",
        "never_share_client",
        "ceiling_kind",
        "secrets_not_allowed",
    }


# --- properties -----------------------------------------------------------------------------

CLIENTS = (CLIENT, OTHER_CLIENT, THIRD_CLIENT)
TAGS = ("firewall", "backup", "vpn", "dns")
NETWORKS = ("203.0.113.0/24", "198.51.100.0/25", "2001:db8::/32", "10.0.0.0/8")
ADDRESSES = ("203.0.113.9", "198.51.100.200", "2001:db8::1", "10.1.2.3", "192.0.2.1", "bogus")
STATUSES = ("active", "scheduled", "revoked", "expired", "suspended")

_kinds = st.lists(st.sampled_from(list(K)), min_size=1, max_size=4, unique=True)
_tags = st.frozensets(st.sampled_from(TAGS), max_size=3)
_minutes = st.integers(-600, 600).map(lambda minutes: NOW + timedelta(minutes=minutes))
_reasons = st.one_of(
    st.none(),
    st.text(alphabet=" ab\t", max_size=14),
    st.integers(MAX_BREAK_GLASS_REASON - 2, MAX_BREAK_GLASS_REASON + 2).map(lambda n: "r" * n),
    st.just(GOOD_REASON),
)

_scopes = st.builds(
    GrantScope,
    document_kinds=_kinds,
    tags=st.lists(st.sampled_from(TAGS), max_size=2, unique=True),
    max_sensitivity=st.sampled_from(list(S)),
)
_ceilings = st.builds(
    Ceiling,
    clients=st.one_of(st.just("all"), st.lists(st.sampled_from(CLIENTS), max_size=2, unique=True)),
    document_kinds=_kinds,
    max_grant_hours=st.integers(1, 168),
    secrets_allowed=st.booleans(),
)
_rules = st.builds(
    MspRules,
    never_share_clients=st.lists(st.sampled_from(CLIENTS), max_size=1),
    never_share_tags=st.lists(st.sampled_from(TAGS), max_size=3, unique=True),
    max_grant_hours=st.integers(1, 168),
    partner_networks=st.lists(st.sampled_from(NETWORKS), max_size=2, unique=True),
    secrets_need_break_glass=st.booleans(),
    reads_per_minute=st.integers(1, 5),
)
_grants = st.builds(
    GrantFacts,
    id=st.just(uuid.UUID(int=7)),
    status=st.sampled_from(STATUSES),
    starts_at=_minutes,
    ends_at=_minutes,
    client_id=st.sampled_from(CLIENTS),
    scope=_scopes,
    partnership_active=st.booleans(),
)
_documents = st.builds(
    DocumentFacts,
    id=st.just(uuid.UUID(int=8)),
    client_id=st.one_of(st.none(), st.sampled_from(CLIENTS)),
    kind=st.sampled_from(list(K)),
    tags=_tags,
    sensitivity=st.sampled_from(list(S)),
    archived=st.booleans(),
)
_requests = st.builds(
    ReadRequest,
    now=_minutes,
    source_address=st.one_of(st.none(), st.sampled_from(ADDRESSES)),
    break_glass_reason=_reasons,
    reads_last_minute=st.integers(0, 6),
)
_read_cases = st.builds(
    ReadCase,
    grant=st.one_of(st.none(), _grants, _grants, _grants),
    ceiling=st.one_of(st.none(), _ceilings, _ceilings, _ceilings),
    rules=_rules,
    document=_documents,
    request=_requests,
)


@st.composite
def _allowed_read_cases(draw: st.DrawFn) -> ReadCase:
    """A read that every rule lets through, built from the rules rather than filtered."""
    kinds = draw(_kinds)
    kind = draw(st.sampled_from(kinds))
    client = draw(st.sampled_from(CLIENTS))
    sensitivity = draw(st.sampled_from(list(S)))
    shared_tag = draw(st.sampled_from(TAGS))
    starts_at = draw(_minutes)
    ends_at = starts_at + timedelta(minutes=draw(st.integers(1, 600)))
    window = (ends_at - starts_at) // MICROSECOND
    now = starts_at + MICROSECOND * draw(st.integers(0, window - 1))
    network = draw(st.sampled_from(NETWORKS))
    address = {
        "203.0.113.0/24": "203.0.113.9",
        "198.51.100.0/25": "198.51.100.1",
        "2001:db8::/32": "2001:db8::1",
        "10.0.0.0/8": "10.1.2.3",
    }[network]
    limit = draw(st.integers(1, 5))
    grant = GrantFacts(
        id=uuid.UUID(int=7),
        status=draw(st.sampled_from(("active", "scheduled"))),
        starts_at=starts_at,
        ends_at=ends_at,
        client_id=client,
        scope=GrantScope(
            document_kinds=kinds,
            tags=draw(st.sampled_from(([], [shared_tag]))),
            max_sensitivity=draw(st.sampled_from([s for s in S if s.rank >= sensitivity.rank])),
        ),
        partnership_active=True,
    )
    ceiling = Ceiling(
        clients=draw(st.sampled_from(("all", [client]))),
        document_kinds=sorted({kind, *draw(_kinds)}),
        secrets_allowed=sensitivity is S.SECRET or draw(st.booleans()),
    )
    rules = MspRules(
        never_share_clients=[c for c in CLIENTS if c != client][: draw(st.integers(0, 2))],
        never_share_tags=[t for t in TAGS if t != shared_tag][: draw(st.integers(0, 1))],
        partner_networks=draw(st.sampled_from(([], [network]))),
        reads_per_minute=limit,
    )
    document = DocumentFacts(
        id=uuid.UUID(int=8),
        client_id=draw(st.sampled_from((None, client))),
        kind=kind,
        tags=frozenset({shared_tag}),
        sensitivity=sensitivity,
        archived=False,
    )
    request = ReadRequest(
        now=now,
        source_address=address,
        break_glass_reason=draw(st.sampled_from((GOOD_REASON, "0123456789"))),
        reads_last_minute=draw(st.integers(0, limit)),
    )
    return ReadCase(grant, ceiling, rules, document, request)


@st.composite
def _mixed_read_cases(draw: st.DrawFn) -> ReadCase:
    """Parts of an allowed read mixed with parts of a random one: many allowed outcomes, and
    denials by one or a few rules at a time."""
    allowed, other = draw(_allowed_read_cases()), draw(_read_cases)
    parts = {}
    for part in ("grant", "ceiling", "rules", "document", "request"):
        mine = getattr(other, part)
        parts[part] = mine if mine is not None and draw(st.integers(0, 3)) == 0 else None
    return _with(allowed, **{part: value for part, value in parts.items() if value is not None})


_any_read_cases = st.one_of(_read_cases, _mixed_read_cases())


def _in_networks(address: str | None, networks: list[str]) -> bool:
    if address is None or address == "bogus":
        return False
    ip = ipaddress.ip_address(address)
    return any(ip in ipaddress.ip_network(network) for network in networks)


def _expected_read_codes(case: ReadCase) -> set[str]:
    """The specification, rule by rule, written independently of policies/decision.py."""
    grant, ceiling, rules, doc, request = (
        case.grant,
        case.ceiling,
        case.rules,
        case.document,
        case.request,
    )
    if grant is None or ceiling is None:
        return {"no_grant"}
    reason = (request.break_glass_reason or "").strip()
    secret = doc.sensitivity is S.SECRET
    order = list(S)
    has_client = doc.client_id is not None
    violated = {
        "partnership_inactive": not grant.partnership_active,
        "grant_not_active": grant.status not in ("active", "scheduled"),
        "grant_not_started": request.now < grant.starts_at,
        "grant_ended": request.now >= grant.ends_at,
        "document_archived": doc.archived,
        "client_out_of_scope": has_client and doc.client_id != grant.client_id,
        "never_share_client": has_client and doc.client_id in rules.never_share_clients,
        "ceiling_client": has_client
        and ceiling.clients != "all"
        and doc.client_id not in ceiling.clients,
        "kind_out_of_scope": doc.kind not in grant.scope.document_kinds,
        "ceiling_kind": doc.kind not in ceiling.document_kinds,
        "tag_out_of_scope": bool(grant.scope.tags) and doc.tags.isdisjoint(grant.scope.tags),
        "never_share_tag": not doc.tags.isdisjoint(rules.never_share_tags),
        "sensitivity_above_scope": order.index(doc.sensitivity)
        > order.index(grant.scope.max_sensitivity),
        "secrets_not_allowed": secret and not ceiling.secrets_allowed,
        "break_glass_required": secret and rules.secrets_need_break_glass and len(reason) < 10,
        "reason_too_long": len(reason) > MAX_BREAK_GLASS_REASON,
        "network_not_allowed": bool(rules.partner_networks)
        and not _in_networks(request.source_address, rules.partner_networks),
        "rate_exceeded": request.reads_last_minute > rules.reads_per_minute,
    }
    return {code for code, broken in violated.items() if broken}


@settings(max_examples=400, deadline=None)
@given(_any_read_cases)
def test_read_decision_matches_the_rules(case: ReadCase) -> None:
    decision = case.decide()
    event("allowed" if decision.allowed else f"denied by {len(decision.reasons)}")
    expected = _expected_read_codes(case)
    assert set(decision.codes) == expected
    assert len(decision.codes) == len(expected)  # each rule reports once
    assert decision.allowed is (not expected)
    assert decision.break_glass is (decision.allowed and case.document.sensitivity is S.SECRET)
    if decision.allowed:
        assert decision.reasons == ()
    else:
        assert decision.reasons
        assert all(reason.code in READ_CODES and reason.message for reason in decision.reasons)


@settings(max_examples=300, deadline=None)
@given(_any_read_cases)
def test_allowed_read_satisfies_every_rule(case: ReadCase) -> None:
    decision = case.decide()
    if not decision.allowed:
        return
    grant, ceiling, rules, doc, request = (
        case.grant,
        case.ceiling,
        case.rules,
        case.document,
        case.request,
    )
    assert grant is not None
    assert ceiling is not None
    assert grant.partnership_active
    assert grant.status in ("active", "scheduled")
    assert grant.starts_at <= request.now < grant.ends_at
    assert not doc.archived
    assert doc.kind in grant.scope.document_kinds
    assert doc.kind in ceiling.document_kinds
    assert doc.sensitivity.rank <= grant.scope.max_sensitivity.rank
    assert doc.client_id is None or doc.client_id == grant.client_id
    assert doc.client_id is None or ceiling.clients == "all" or doc.client_id in ceiling.clients
    assert doc.client_id not in rules.never_share_clients
    assert not grant.scope.tags or doc.tags & set(grant.scope.tags)
    assert not doc.tags & set(rules.never_share_tags)
    assert request.reads_last_minute <= rules.reads_per_minute
    if doc.sensitivity is S.SECRET:
        assert ceiling.secrets_allowed
        if rules.secrets_need_break_glass:
            assert len((request.break_glass_reason or "").strip()) >= 10


@settings(max_examples=200, deadline=None)
@given(_read_cases, st.sampled_from(("grant", "ceiling", "both")))
def test_no_grant_is_never_allowed(case: ReadCase, missing: str) -> None:
    if missing in ("grant", "both"):
        case = _with(case, grant=None)
    if missing in ("ceiling", "both"):
        case = _with(case, ceiling=None)
    decision = case.decide()
    assert not decision.allowed
    assert not decision.break_glass
    assert decision.codes == ["no_grant"]
    assert decision.reasons[0].message


def _grant_of(case: ReadCase) -> GrantFacts:
    assert case.grant is not None
    return case.grant


def _ceiling_of(case: ReadCase) -> Ceiling:
    assert case.ceiling is not None
    return case.ceiling


def _regrant(case: ReadCase, **changes: object) -> ReadCase:
    return _with(case, grant=dataclasses.replace(_grant_of(case), **changes))


def _rescope(case: ReadCase, **changes: object) -> ReadCase:
    return _regrant(case, scope=msgspec.structs.replace(_grant_of(case).scope, **changes))


def _reclient(case: ReadCase, **changes: object) -> ReadCase:
    """The document of the grant's client, and changed rules or ceiling."""
    document = dataclasses.replace(case.document, client_id=_grant_of(case).client_id)
    return _with(case, document=document, **changes)


def _other_kind(case: ReadCase) -> DocumentKind:
    return next(kind for kind in K if kind != case.document.kind)


# Each change adds exactly one broken rule to an allowed read, and keeps what earlier changes did.
DENIALS: dict[str, Callable[[ReadCase], ReadCase]] = {
    "partnership_inactive": lambda c: _regrant(c, partnership_active=False),
    "grant_not_active": lambda c: _regrant(c, status="revoked"),
    "grant_not_started": lambda c: _regrant(c, starts_at=c.request.now + MICROSECOND),
    "grant_ended": lambda c: _regrant(c, ends_at=c.request.now),
    "document_archived": lambda c: _with(
        c, document=dataclasses.replace(c.document, archived=True)
    ),
    "never_share_client": lambda c: _reclient(
        c,
        rules=msgspec.structs.replace(
            c.rules, never_share_clients=[*c.rules.never_share_clients, _grant_of(c).client_id]
        ),
    ),
    "ceiling_client": lambda c: _reclient(
        c,
        ceiling=msgspec.structs.replace(
            _ceiling_of(c), clients=[x for x in CLIENTS if x != _grant_of(c).client_id]
        ),
    ),
    "kind_out_of_scope": lambda c: _rescope(c, document_kinds=[_other_kind(c)]),
    "ceiling_kind": lambda c: _with(
        c, ceiling=msgspec.structs.replace(_ceiling_of(c), document_kinds=[_other_kind(c)])
    ),
    "tag_out_of_scope": lambda c: _rescope(c, tags=["not-on-the-document"]),
    "never_share_tag": lambda c: _with(
        c,
        rules=msgspec.structs.replace(
            c.rules, never_share_tags=[*c.rules.never_share_tags, min(c.document.tags)]
        ),
    ),
    "reason_too_long": lambda c: _with(
        c, request=dataclasses.replace(c.request, break_glass_reason="r" * 501)
    ),
    "network_not_allowed": lambda c: _with(
        c, rules=msgspec.structs.replace(c.rules, partner_networks=["192.0.2.0/24"])
    ),
    "rate_exceeded": lambda c: _with(
        c,
        request=dataclasses.replace(c.request, reads_last_minute=c.rules.reads_per_minute + 1),
    ),
}


@settings(max_examples=300, deadline=None)
@given(_allowed_read_cases(), st.data())
def test_deny_wins(case: ReadCase, data: st.DataObject) -> None:
    assert case.decide().allowed  # the builder really builds allowed reads
    chosen = data.draw(st.lists(st.sampled_from(sorted(DENIALS)), min_size=1, unique=True))
    for code in chosen:
        single = DENIALS[code](case).decide()
        assert not single.allowed
        assert single.codes == [code]
    combined = case
    for code in chosen:
        combined = DENIALS[code](combined)
    decision = combined.decide()
    assert not decision.allowed
    assert set(decision.codes) == set(chosen)


@settings(max_examples=200, deadline=None)
@given(_read_cases, st.randoms(use_true_random=False))
def test_read_decision_does_not_depend_on_order(case: ReadCase, rng: random.Random) -> None:
    """The same facts with lists and sets built in another order: the same decision, to the
    word (a reason must not name whichever tag a set happens to yield first)."""

    def shuffled(items: Iterable[T]) -> list[T]:
        items = list(items)
        rng.shuffle(items)
        return items

    rules = msgspec.structs.replace(
        case.rules,
        never_share_tags=shuffled(case.rules.never_share_tags),
        never_share_clients=shuffled(case.rules.never_share_clients),
        partner_networks=shuffled(case.rules.partner_networks),
    )
    document = dataclasses.replace(case.document, tags=frozenset(shuffled(case.document.tags)))
    reordered = _with(case, rules=rules, document=document)
    if case.grant is not None:
        reordered = _rescope(
            reordered,
            tags=shuffled(case.grant.scope.tags),
            document_kinds=shuffled(case.grant.scope.document_kinds),
        )
    assert reordered.decide() == case.decide()


_grant_requests = st.fixed_dictionaries(
    {
        "scope": _scopes,
        "ceiling": _ceilings,
        "rules": _rules,
        "client_id": st.sampled_from(CLIENTS),
        "starts_at": _minutes,
        "ends_at": st.integers(-600, 168 * 60 + 120).map(lambda m: NOW + timedelta(minutes=m)),
        "now": st.just(NOW),
        "partnership_active": st.booleans(),
    }
)


@settings(max_examples=400, deadline=None)
@given(_grant_requests)
def test_grant_decision_matches_the_rules(request: dict[str, Any]) -> None:
    decision = decide_grant(**request)
    scope, ceiling, rules = request["scope"], request["ceiling"], request["rules"]
    starts_at, ends_at, now = request["starts_at"], request["ends_at"], request["now"]
    longest = timedelta(hours=min(ceiling.max_grant_hours, rules.max_grant_hours))
    client = request["client_id"]
    violated = {
        "partnership_inactive": not request["partnership_active"],
        "ends_before_starts": ends_at <= starts_at,
        "ends_in_past": ends_at <= now,
        "too_long": ends_at - max(starts_at, now) > longest,
        "ceiling_client": ceiling.clients != "all" and client not in ceiling.clients,
        "never_share_client": client in rules.never_share_clients,
        "ceiling_kind": not set(scope.document_kinds) <= set(ceiling.document_kinds),
        "secrets_not_allowed": scope.max_sensitivity is S.SECRET and not ceiling.secrets_allowed,
    }
    expected = {code for code, broken in violated.items() if broken}
    assert set(decision.codes) == expected
    assert len(decision.codes) == len(expected)
    assert decision.allowed is (not expected)
    assert not decision.break_glass
    assert all(reason.code in GRANT_CODES and reason.message for reason in decision.reasons)
    if decision.allowed:
        # what a grant may cover never exceeds its partnership's ceiling or the MSP's rules
        assert set(scope.document_kinds) <= set(ceiling.document_kinds)
        assert now < ends_at
        assert starts_at < ends_at
        assert ends_at - max(starts_at, now) <= longest  # a grant's length counts from now on
        assert ceiling.secrets_allowed or scope.max_sensitivity is not S.SECRET
