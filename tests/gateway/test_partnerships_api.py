"""`/api/v1/partnerships`: the life of a partnership, who may do what, and the audit it leaves."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from sharing.audit import verify_chain
from sharing.tables import AuditEvent, Partnership
from tenants.roles import Role
from tenants.service import TenantInfo
from tests.helpers import (
    AppClient,
    Person,
    csrf_header,
    make_person,
    make_tenant,
    served,
    session_for,
    table_snapshot,
)

ACTIONS = ("accept", "decline", "suspend", "resume", "end")
AUDITED = {
    "accept": "partnership:accepted",
    "decline": "partnership:declined",
    "suspend": "partnership:suspended",
    "resume": "partnership:resumed",
    "end": "partnership:ended",
}


@pytest.fixture
async def client(settings, db) -> AsyncIterator[AppClient]:
    # conftest's `client` runs the app on another event loop: see `tests.helpers.served`.
    async with served(settings) as http:
        yield http


@dataclass
class Side:
    """One party, signed in as its admin in its own cookie jar."""

    tenant: TenantInfo
    admin: Person
    jar: httpx.Cookies


@dataclass
class Parties:
    msp: Side
    noc: Side

    def side(self, name: str) -> Side:
        return self.msp if name == "msp" else self.noc


async def _side(client: AppClient, kind: str) -> Side:
    tenant = await make_tenant(kind)
    admin = await make_person(tenant, Role.ADMIN)
    return Side(tenant, admin, await session_for(client, admin))


@pytest.fixture
async def parties(client) -> Parties:
    return Parties(await _side(client, "msp"), await _side(client, "noc"))


async def call(
    client: AppClient, side: Side, method: str, path: str, body: Any = None
) -> httpx.Response:
    """`side`'s admin makes one request from its portal session."""
    client.cookies = side.jar
    return await client.request(method, path, json=body, headers=csrf_header(client))


def _full_ceiling(hours: int) -> dict[str, Any]:
    """A whole ceiling: PUT replaces it, so every field is given."""
    return {
        "clients": "all",
        "document_kinds": ["sop"],
        "max_grant_hours": hours,
        "secrets_allowed": False,
    }


async def invite(client: AppClient, parties: Parties, **ceiling: Any) -> str:
    body: dict[str, Any] = {"noc": parties.noc.tenant.slug}
    if ceiling:
        body["ceiling"] = ceiling
    response = await call(client, parties.msp, "POST", "/api/v1/partnerships", body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def act(client: AppClient, side: Side, partnership_id: str, action: str) -> httpx.Response:
    return await call(client, side, "POST", f"/api/v1/partnerships/{partnership_id}/{action}")


async def stored(partnership_id: str) -> dict[str, Any]:
    row: dict[str, Any] = (
        await Partnership.select()
        .where(Partnership.id == uuid.UUID(partnership_id))
        .first()
        .output(load_json=True)
    )
    return row


async def partnership_events(tenant_id: uuid.UUID) -> Counter[str]:
    rows = await AuditEvent.select(AuditEvent.action).where(
        (AuditEvent.tenant_id == tenant_id) & AuditEvent.action.like("partnership:%")
    )
    return Counter(row["action"] for row in rows)


async def assert_both_chains(parties: Parties, expected: Counter[str]) -> None:
    """Both tenants' chains hold exactly `expected` partnership events, and verify."""
    for side in (parties.msp, parties.noc):
        assert await partnership_events(side.tenant.id) == expected, side.tenant.kind
        report = await verify_chain(side.tenant.id)
        assert report.ok, report.problem


async def test_the_life_of_a_partnership(client, parties) -> None:
    expected: Counter[str] = Counter()
    msp, noc = parties.msp, parties.noc

    invited = await call(client, msp, "POST", "/api/v1/partnerships", {"noc": noc.tenant.slug})
    assert invited.status_code == 201, invited.text
    pid = invited.json()["id"]
    assert invited.json()["status"] == "invited"
    assert invited.json()["msp"]["id"] == str(msp.tenant.id)
    assert invited.json()["noc"]["id"] == str(noc.tenant.id)
    expected["partnership:invited"] += 1
    await assert_both_chains(parties, expected)
    seen_by_noc = await call(client, noc, "GET", f"/api/v1/partnerships/{pid}")
    assert seen_by_noc.status_code == 200 and seen_by_noc.json()["status"] == "invited"

    own_accept = await act(client, msp, pid, "accept")
    assert own_accept.status_code == 409
    assert own_accept.json()["code"] == "wrong_side"
    assert (await stored(pid))["status"] == "invited"

    steps: list[tuple[Side, str, int, str, Side | None]] = [
        (noc, "accept", 200, "active", None),
        (msp, "suspend", 200, "suspended", msp),
        (noc, "resume", 409, "suspended", msp),  # only the suspending side resumes
        (msp, "resume", 200, "active", None),
        (noc, "suspend", 200, "suspended", noc),
        (msp, "resume", 409, "suspended", noc),
        (noc, "resume", 200, "active", None),
        (noc, "end", 200, "ended", None),
    ]
    for side, action, status, state, suspended_by in steps:
        response = await act(client, side, pid, action)
        assert response.status_code == status, (side.tenant.kind, action, response.text)
        if status == 409:
            assert response.json()["code"] == "wrong_side"
            assert "only the side that suspended" in response.json()["detail"]
        else:
            assert response.json()["status"] == state
            expected[AUDITED[action]] += 1
        row = await stored(pid)
        assert row["status"] == state
        assert row["suspended_by"] == (suspended_by.tenant.id if suspended_by else None)
        await assert_both_chains(parties, expected)

    assert expected == Counter(
        {
            "partnership:invited": 1,
            "partnership:accepted": 1,
            "partnership:suspended": 2,
            "partnership:resumed": 2,
            "partnership:ended": 1,
        }
    )
    events = await AuditEvent.select().where(AuditEvent.action == "partnership:suspended")
    assert {(row["tenant_id"], row["actor_id"]) for row in events} == {
        (tenant, str(person.user_id))
        for tenant in (msp.tenant.id, noc.tenant.id)
        for person in (msp.admin, noc.admin)
    }
    assert {row["target_id"] for row in events} == {pid}


@pytest.mark.parametrize("side_name", ["msp", "noc"])
@pytest.mark.parametrize("action", [*ACTIONS, "ceiling"])
async def test_after_the_end_every_action_is_a_409_that_says_why(
    client, parties, side_name, action
) -> None:
    pid = await invite(client, parties)
    assert (await act(client, parties.noc, pid, "accept")).status_code == 200
    assert (await act(client, parties.msp, pid, "end")).status_code == 200
    before = await table_snapshot()
    side = parties.side(side_name)

    if action == "ceiling":
        response = await call(
            client, side, "PUT", f"/api/v1/partnerships/{pid}/ceiling", _full_ceiling(8)
        )
    else:
        response = await act(client, side, pid, action)

    assert response.status_code == 409, response.text
    problem = response.json()
    assert problem["code"] in {"illegal_transition", "wrong_side"}
    if problem["code"] == "illegal_transition":
        assert "ended" in problem["detail"]
    else:
        assert problem["detail"].startswith("only the")
    assert await table_snapshot() == before


async def test_a_declined_invitation_is_closed_and_a_new_one_may_follow(client, parties) -> None:
    pid = await invite(client, parties)

    declined = await act(client, parties.noc, pid, "decline")

    assert declined.status_code == 200 and declined.json()["status"] == "declined"
    await assert_both_chains(
        parties, Counter({"partnership:invited": 1, "partnership:declined": 1})
    )
    for action in ("accept", "suspend", "end"):
        refused = await act(client, parties.noc, pid, action)
        assert refused.status_code == 409, action
        assert refused.json()["code"] == "illegal_transition"
    second = await invite(client, parties)
    assert second != pid
    assert (await stored(pid))["status"] == "declined"
    assert (await stored(second))["status"] == "invited"


async def test_a_noc_cannot_invite(client, parties) -> None:
    other_noc = await make_tenant("noc")

    response = await call(
        client, parties.noc, "POST", "/api/v1/partnerships", {"noc": other_noc.slug}
    )

    assert response.status_code == 409, response.text
    assert response.json()["code"] == "not_msp"
    assert await Partnership.count() == 0
    assert await partnership_events(parties.noc.tenant.id) == Counter()


@pytest.mark.parametrize(
    ("inviter_kind", "target", "code"),
    [
        ("msp", "unknown", "noc_unknown"),
        ("msp", "msp", "not_noc"),
        ("msp", "self", "not_noc"),
        ("both", "self", "self"),
    ],
)
async def test_an_invitation_to_no_noc_is_a_422_and_writes_nothing(
    client, inviter_kind, target, code
) -> None:
    inviter = await _side(client, inviter_kind)
    slug = {
        "unknown": f"noc-{uuid.uuid4().hex[:8]}",
        "msp": (await make_tenant("msp")).slug,
        "self": inviter.tenant.slug,
    }[target]
    before = await table_snapshot()

    response = await call(client, inviter, "POST", "/api/v1/partnerships", {"noc": slug})

    assert response.status_code == 422, response.text
    assert response.json()["code"] == code
    assert response.json()["detail"]
    assert await table_snapshot() == before
    assert await Partnership.count() == 0


@pytest.mark.parametrize("state", ["invited", "active", "suspended"])
async def test_a_second_invitation_while_one_is_open_is_a_409(client, parties, state) -> None:
    pid = await invite(client, parties)
    if state != "invited":
        assert (await act(client, parties.noc, pid, "accept")).status_code == 200
    if state == "suspended":
        assert (await act(client, parties.noc, pid, "suspend")).status_code == 200

    response = await call(
        client, parties.msp, "POST", "/api/v1/partnerships", {"noc": parties.noc.tenant.slug}
    )

    assert response.status_code == 409, response.text
    assert response.json()["code"] == "partnership_open"
    assert await Partnership.count() == 1


async def test_the_msp_sets_the_ceiling_and_both_chains_record_it(client, parties) -> None:
    pid = await invite(client, parties)
    ceiling = {
        "clients": "all",
        "document_kinds": ["sop", "network"],
        "max_grant_hours": 12,
        "secrets_allowed": True,
    }

    response = await call(
        client, parties.msp, "PUT", f"/api/v1/partnerships/{pid}/ceiling", ceiling
    )

    assert response.status_code == 200, response.text
    assert response.json()["ceiling"] == ceiling
    assert (await stored(pid))["ceiling"] == ceiling
    await assert_both_chains(
        parties, Counter({"partnership:invited": 1, "partnership:ceiling_changed": 1})
    )
    seen_by_noc = await call(client, parties.noc, "GET", f"/api/v1/partnerships/{pid}")
    assert seen_by_noc.json()["ceiling"] == ceiling


async def test_the_noc_cannot_set_the_ceiling(client, parties) -> None:
    pid = await invite(client, parties, max_grant_hours=8)
    before = await stored(pid)

    response = await call(
        client, parties.noc, "PUT", f"/api/v1/partnerships/{pid}/ceiling", _full_ceiling(168)
    )

    assert response.status_code == 409, response.text
    assert response.json()["code"] == "wrong_side"
    assert await stored(pid) == before
    assert before["ceiling"]["max_grant_hours"] == 8


@pytest.mark.parametrize(
    "ceiling",
    [
        {"max_grant_hours": 0},
        {"max_grant_hours": 500},
        {"document_kinds": []},
        {"document_kinds": ["passwords"]},
        {"document_kinds": ["sop", "sop"]},
        {"clients": "some"},
        {"secrets_allowed": "yes"},
        {"max_grant_hours": 8, "reveal_everything": True},
        {"secrets_allowed": None},  # a missing field must not widen the ceiling by default
    ],
)
async def test_an_invalid_ceiling_is_refused_and_the_old_one_stays(
    client, parties, ceiling
) -> None:
    pid = await invite(client, parties, max_grant_hours=8, document_kinds=["sop"])
    before = await stored(pid)
    body = {**_full_ceiling(8), **ceiling}
    body = {key: value for key, value in body.items() if value is not None}

    response = await call(client, parties.msp, "PUT", f"/api/v1/partnerships/{pid}/ceiling", body)

    assert response.status_code in (400, 422), response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["detail"]
    assert await stored(pid) == before
    assert before["ceiling"]["document_kinds"] == ["sop"]
    await assert_both_chains(parties, Counter({"partnership:invited": 1}))


@pytest.mark.parametrize(
    "body",
    [
        {"noc": ""},
        {},
        {"noc": "x" * 64},
        {"noc": "some-noc", "msp": "someone-else"},
        {"noc": "some-noc", "ceiling": {"max_grant_hours": 0}},
        {"noc": "some-noc", "ceiling": {"document_kinds": ["passwords"]}},
    ],
)
async def test_a_malformed_invitation_is_refused_and_writes_nothing(client, parties, body) -> None:
    before = await table_snapshot()

    response = await call(client, parties.msp, "POST", "/api/v1/partnerships", body)

    assert response.status_code in (400, 422), response.text
    assert await table_snapshot() == before


async def test_an_unknown_action_is_a_400_and_changes_nothing(client, parties) -> None:
    pid = await invite(client, parties)
    before = await table_snapshot()

    response = await act(client, parties.noc, pid, "approve")

    assert response.status_code == 400, response.text
    assert "action" in response.json()["detail"]
    assert await table_snapshot() == before
