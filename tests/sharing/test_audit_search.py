"""Searching a tenant's own audit chain: every filter narrows to exactly what it names, pages
walk the chain once, and no search ever reaches another tenant's events."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from sharing.audit import AuditAction, Outcome, Severity
from sharing.audit_search import (
    CSV_COLUMNS,
    AuditEventView,
    AuditQuery,
    Order,
    csv_chunks,
    iter_matching,
    matching_events,
    neutralise,
    search,
)
from sharing.clock import ManualClock
from tenants.errors import Forbidden, Invalid
from tenants.roles import Actor, ActorKind, Role, TokenScope
from tests.audit_scene import (
    EXTENSION_REASON,
    FORMULA_EMAIL,
    HOSTILE_REASON,
    REASON,
    AuditScene,
    build_scene,
    chain,
)
from tests.helpers import STORY_START, make_person, served_at


@pytest.fixture
async def scene(settings, db) -> AsyncIterator[AuditScene]:
    async with served_at(settings, ManualClock(STORY_START)) as http:
        yield await build_scene(http)


async def _all(actor: Actor, query: AuditQuery, limit: int = 500) -> list[AuditEventView]:
    """Every page of a search, in the order the pages come."""
    found: list[AuditEventView] = []
    cursor = None
    while True:
        page = await search(actor, query, cursor=cursor, limit=limit)
        found += page.events
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


def _seqs(events: list[Any]) -> list[int]:
    return [event.seq if isinstance(event, AuditEventView) else event["seq"] for event in events]


def _names(row: dict[str, Any], value: str, key: str, target_type: str) -> bool:
    return row["context"].get(key) == value or (
        row["target_type"] == target_type and row["target_id"] == value
    )


async def _expect(
    actor: Actor, query: AuditQuery, tenant: uuid.UUID, keep: Callable[[dict[str, Any]], bool]
) -> list[dict[str, Any]]:
    """Search with `query`, and check it finds exactly the chain's events that `keep` keeps
    (newest first); returns those events."""
    expected = [row for row in reversed(await chain(tenant)) if keep(row)]
    assert expected, "a filter that matches nothing here proves nothing"
    assert _seqs(await _all(actor, query)) == _seqs(expected)
    return expected


async def test_without_filters_a_search_is_the_whole_own_chain_newest_first(scene) -> None:
    auditor = scene.msp_auditor.actor
    rows = await chain(scene.msp.tenant.id)

    page = await search(auditor, AuditQuery(), limit=500)

    assert _seqs(page.events) == list(range(len(rows), 0, -1))
    assert page.next_cursor is None
    newest = page.events[0]
    assert (newest.tenant_id, newest.hash) == (scene.msp.tenant.id, rows[-1]["hash"])
    assert newest.prev_hash == rows[-2]["hash"]
    assert (await search(auditor, AuditQuery(order=Order.ASC), limit=1)).events[0].seq == 1


async def test_action_outcome_and_severity_narrow_the_search(scene) -> None:
    auditor, msp = scene.msp_auditor.actor, scene.msp.tenant.id

    glass = await _expect(
        auditor,
        AuditQuery(action=(AuditAction.BREAK_GLASS,)),
        msp,
        lambda row: row["action"] == "document:break_glass",
    )
    assert sorted(row["reason"] for row in glass) == sorted([REASON, HOSTILE_REASON])
    assert {row["actor_label"] for row in glass} == {scene.noc.client_id}

    several = (AuditAction.BREAK_GLASS, AuditAction.PARTNER_DOCUMENT_READ)
    reads = await _expect(
        auditor,
        AuditQuery(action=several),
        msp,
        lambda row: row["action"] in {"document:break_glass", "document:partner_read"},
    )
    assert len(reads) == 4  # two break-glass, the network, and the other NOC's SOP

    denied = await _expect(
        auditor,
        AuditQuery(outcome=Outcome.DENIED),
        msp,
        lambda row: row["outcome"] == "denied",
    )
    assert {row["target_id"] for row in denied} == {
        str(scene.msp.documents["credential"]),
        str(scene.msp.documents["other_client"]),
    }

    await _expect(
        auditor,
        AuditQuery(severity=Severity.HIGH),
        msp,
        lambda row: row["severity"] == "high",
    )
    both = await _all(auditor, AuditQuery(severity=Severity.HIGH, outcome=Outcome.DENIED))
    assert both == []


async def test_grant_document_and_client_filters_find_every_event_that_names_them(scene) -> None:
    auditor, msp, docs = scene.msp_auditor.actor, scene.msp.tenant.id, scene.msp.documents

    of_grant = await _expect(
        auditor,
        AuditQuery(grant_id=uuid.UUID(scene.grant)),
        msp,
        lambda row: _names(row, scene.grant, "grant_id", "grant"),
    )
    assert {row["action"] for row in of_grant} >= {
        "grant:created",
        "grant:bundle_read",
        "document:partner_read",
        "document:read_denied",
        "document:break_glass",
        "notes:posted",
        "grant:extension_requested",
    }

    credential = str(docs["credential"])
    of_document = await _expect(
        auditor,
        AuditQuery(document_id=docs["credential"]),
        msp,
        lambda row: _names(row, credential, "document_id", "document"),
    )
    assert [row["action"] for row in reversed(of_document)] == [
        "document:created",  # the MSP's own event: the document is its target
        "document:read_denied",
        "document:break_glass",
        "document:break_glass",
    ]

    contoso, fabrikam = str(scene.msp.contoso), str(scene.msp.fabrikam)
    contoso_docs = {str(docs[name]) for name in docs if name != "other_client"}
    both_grants = {scene.grant, scene.other_noc_grant}

    def about_contoso(row: dict[str, Any]) -> bool:
        return (
            row["context"].get("client_id") == contoso
            or (row["target_type"] == "client" and row["target_id"] == contoso)
            or row["context"].get("grant_id") in both_grants
            or (row["target_type"] == "document" and row["target_id"] in contoso_docs)
        )

    of_client = await _expect(auditor, AuditQuery(client_id=scene.msp.contoso), msp, about_contoso)
    actions = {row["action"] for row in of_client}
    assert {"client:created", "document:created", "grant:created", "grant:bundle_read"} <= actions
    assert fabrikam not in str([row["target_id"] for row in of_client])
    of_fabrikam = await _all(auditor, AuditQuery(client_id=scene.msp.fabrikam))
    assert {(e.action, e.target_id) for e in of_fabrikam} == {
        ("client:created", fabrikam),
        ("document:created", str(docs["other_client"])),
        ("document:read_denied", str(docs["other_client"])),  # the NOC tried to read it
    }


async def test_an_incident_reference_takes_in_events_that_only_name_its_grant(scene) -> None:
    auditor, msp = scene.msp_auditor.actor, scene.msp.tenant.id

    incident = await _expect(
        auditor,
        AuditQuery(psa_reference="PSA-4411"),
        msp,
        lambda row: row["context"].get("grant_id") == scene.grant,
    )
    # The extension request's context names only the grant; it belongs to the incident all
    # the same.
    [extension] = [row for row in incident if row["action"] == "grant:extension_requested"]
    assert "psa_reference" not in extension["context"]
    assert extension["reason"] == EXTENSION_REASON
    other = await _all(auditor, AuditQuery(psa_reference="PSA-4413"))
    assert {event.context["grant_id"] for event in other} == {scene.other_noc_grant}
    assert await _all(auditor, AuditQuery(psa_reference="PSA-0000")) == []


async def test_the_actor_filter_takes_an_id_or_a_label_in_any_case(scene) -> None:
    auditor, msp = scene.msp_auditor.actor, scene.msp.tenant.id

    by_label = await _expect(
        auditor,
        AuditQuery(actor=scene.noc.client_id.upper()),
        msp,
        lambda row: row["actor_label"] == scene.noc.client_id,
    )
    client_pk = by_label[0]["actor_id"]
    assert _seqs(await _all(auditor, AuditQuery(actor=client_pk))) == _seqs(by_label)

    await _expect(
        auditor,
        AuditQuery(actor="=1+2@FORMULA.test"),
        msp,
        lambda row: row["actor_label"] == FORMULA_EMAIL,
    )
    assert await _all(auditor, AuditQuery(actor="nobody@example.test")) == []


async def test_since_and_until_bound_the_time_of_the_events(scene) -> None:
    auditor, msp = scene.msp_auditor.actor, scene.msp.tenant.id
    rows = await chain(msp)
    since = rows[len(rows) // 3]["occurred_at"]
    until = rows[2 * len(rows) // 3]["occurred_at"]

    await _expect(
        auditor,
        AuditQuery(since=since, until=until),
        msp,
        lambda row: since <= row["occurred_at"] < until,
    )
    await _expect(auditor, AuditQuery(since=since), msp, lambda row: row["occurred_at"] >= since)
    late = rows[-1]["occurred_at"] + timedelta(seconds=1)
    assert await _all(auditor, AuditQuery(since=late)) == []


async def test_the_partner_filter_keeps_what_concerns_that_partner_only(scene) -> None:
    msp_auditor, msp = scene.msp_auditor.actor, scene.msp.tenant.id
    noc_id, other_noc_id = str(scene.noc.tenant.id), str(scene.other_noc.tenant.id)

    def with_noc(row: dict[str, Any]) -> bool:
        return (
            row["context"].get("grant_id") == scene.grant
            or noc_id in (row["context"].get("msp_tenant_id"), row["context"].get("noc_tenant_id"))
            or row["actor_label"] == scene.noc.client_id
        )

    found = await _expect(msp_auditor, AuditQuery(partner=scene.noc.tenant.slug), msp, with_noc)
    assert {"partnership:invited", "partnership:accepted", "grant:created"} <= {
        row["action"] for row in found
    }
    assert scene.other_noc_grant not in str(found) and other_noc_id not in str(found)
    theirs = await _all(msp_auditor, AuditQuery(partner=scene.other_noc.tenant.slug))
    assert scene.grant not in str(theirs) and noc_id not in str(theirs)
    assert scene.other_noc_grant in str(theirs)

    # The NOC sees the MSP's incident, not the other MSP's incident of the same reference.
    noc_auditor = scene.noc_auditor.actor
    both = await _all(noc_auditor, AuditQuery(psa_reference="PSA-4411"))
    assert {e.context.get("grant_id") for e in both} >= {scene.grant, scene.other_msp_grant}
    ours = await _all(
        noc_auditor, AuditQuery(psa_reference="PSA-4411", partner=scene.msp.tenant.slug)
    )
    assert ours and {e.context.get("grant_id") for e in ours} == {scene.grant}


async def test_a_partner_filter_naming_a_stranger_finds_nothing_and_says_nothing(scene) -> None:
    auditor = scene.msp_auditor.actor
    for slug in (scene.other_msp.tenant.slug, "no-such-tenant", scene.msp.tenant.slug):
        page = await search(auditor, AuditQuery(partner=slug))
        assert (page.events, page.next_cursor) == ([], None), slug
    page = await search(scene.noc_auditor.actor, AuditQuery(partner=scene.other_noc.tenant.slug))
    assert page.events == []


@pytest.mark.parametrize("order", [Order.DESC, Order.ASC])
async def test_pages_walk_every_event_exactly_once(scene, order) -> None:
    auditor, msp = scene.msp_auditor.actor, scene.msp.tenant.id
    everything = _seqs(await chain(msp))
    expected = everything if order is Order.ASC else everything[::-1]

    walked: list[int] = []
    cursor = None
    pages = 0
    while True:
        page = await search(auditor, AuditQuery(order=order), cursor=cursor, limit=7)
        assert len(page.events) <= 7
        walked += _seqs(page.events)
        pages += 1
        if pages == 2:  # the chain grows meanwhile: no page shifts or repeats
            await make_person(scene.msp.tenant, Role.TECHNICIAN)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor

    assert len(walked) == len(set(walked))
    grown = _seqs(await chain(msp))
    if order is Order.ASC:
        assert walked == grown  # the new events come last, and are reached
    else:
        assert walked == expected  # newest first from where it started
    assert pages == -(-len(walked) // 7)


async def test_pages_of_a_filtered_search_hold_only_matching_events(scene) -> None:
    auditor = scene.msp_auditor.actor
    query = AuditQuery(grant_id=uuid.UUID(scene.grant), order=Order.ASC)
    whole = _seqs((await search(auditor, query, limit=500)).events)

    paged = _seqs(await _all(auditor, query, limit=2))

    assert paged == whole and len(whole) > 4


async def test_the_stream_yields_what_the_pages_hold(scene) -> None:
    query = AuditQuery(psa_reference="PSA-4411")
    paged = await _all(scene.msp_auditor.actor, query)

    streamed = [event async for event in iter_matching(scene.msp.tenant.id, query, batch=3)]

    assert streamed == paged
    assert [e async for e in matching_events(scene.msp_auditor.actor, query)] == paged


async def test_each_side_searches_its_own_chain_only(scene) -> None:
    msp_events = await _all(scene.msp_auditor.actor, AuditQuery())
    noc_events = await _all(scene.noc_auditor.actor, AuditQuery())

    assert {e.tenant_id for e in msp_events} == {scene.msp.tenant.id}
    assert {e.tenant_id for e in noc_events} == {scene.noc.tenant.id}
    msp_text, noc_text = str(msp_events), str(noc_events)
    # The other MSP never shows in Northwind's chain; the other NOC never in NightOwl's.
    for stranger in (scene.other_msp.tenant.id, scene.other_msp_grant):
        assert str(stranger) not in msp_text
    for stranger in (scene.other_noc.tenant.id, scene.other_noc_grant, scene.other_noc.client_id):
        assert str(stranger) not in noc_text
    # What the MSP does on its own (documents, sign-ins) is not in the NOC's chain ...
    assert {e.action for e in msp_events} >= {"document:created", "login:succeeded"}
    noc_actions = {e.action for e in noc_events}
    assert "document:created" not in noc_actions and FORMULA_EMAIL not in noc_text
    # ... and what the NOC does on its own (tokens, its clients) is not in the MSP's.
    assert {"token:issued", "oauth_client:registered"} <= noc_actions
    assert not {"token:issued", "oauth_client:registered"} & {e.action for e in msp_events}
    # Every read the NOC made of the MSP's content is in both chains.
    reads = {"grant:bundle_read", "document:partner_read", "document:read_denied"}
    reads |= {"document:break_glass"}
    mine = [
        (e.action, e.target_id, e.reason)
        for e in msp_events
        if e.action in reads and e.actor_label == scene.noc.client_id
    ]
    theirs = [
        (e.action, e.target_id, e.reason)
        for e in noc_events
        if e.action in reads and e.context.get("grant_id") == scene.grant
    ]
    assert mine == theirs and len(mine) == 6


async def test_only_audit_readers_search(scene) -> None:
    technician = await make_person(scene.msp.tenant, Role.TECHNICIAN)
    noc_technician = await make_person(scene.noc.tenant, Role.TECHNICIAN)
    for person in (technician, noc_technician):
        with pytest.raises(Forbidden):
            await search(person.actor, AuditQuery())
        with pytest.raises(Forbidden):
            matching_events(person.actor, AuditQuery())

    def token(*scopes: TokenScope) -> Actor:
        return Actor(
            kind=ActorKind.API_TOKEN,
            id=uuid.uuid4(),
            label="token:test",
            tenant_id=scene.msp.tenant.id,
            tenant_kind=scene.msp.tenant.kind,
            scopes=frozenset(scopes),
        )

    with pytest.raises(Forbidden):
        await search(token(TokenScope.READ, TokenScope.WRITE, TokenScope.HANDOFF), AuditQuery())
    assert (await search(token(TokenScope.AUDIT), AuditQuery())).events


@pytest.mark.parametrize(
    ("query", "cursor", "limit"),
    [
        (AuditQuery(since=datetime(2026, 12, 23, 17, 0)), None, 50),  # no offset
        (AuditQuery(until=datetime(2026, 12, 23, 17, 0)), None, 50),
        (
            AuditQuery(since=STORY_START, until=STORY_START - timedelta(hours=1)),
            None,
            50,
        ),
        (AuditQuery(actor=""), None, 50),
        (AuditQuery(psa_reference="x" * 101), None, 50),
        (AuditQuery(), "not-a-cursor", 50),
        (AuditQuery(), "c2VxOi0x", 50),  # "seq:-1"
        (AuditQuery(), "c2VxOjk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5", 50),  # past a BIGINT
        (AuditQuery(), None, 0),
        (AuditQuery(), None, 501),
    ],
)
async def test_bad_searches_are_refused_with_a_reason(db, query, cursor, limit) -> None:
    auditor = Actor(
        kind=ActorKind.USER,
        id=uuid.uuid4(),
        label="auditor@example.test",
        tenant_id=uuid.uuid4(),
        role=Role.AUDITOR,
    )
    with pytest.raises(Invalid) as refused:
        await search(auditor, query, cursor=cursor, limit=limit)
    assert refused.value.detail


def test_cells_that_a_spreadsheet_would_run_are_neutralised() -> None:
    for cell in ("=1+2", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1"):
        assert neutralise(cell) == "'" + cell
    for cell in ("", "plain", "1-2", "a=b", "'=quoted already"):
        assert neutralise(cell) == cell


async def test_the_csv_has_no_chain_fields_and_no_live_formula(scene) -> None:
    query = AuditQuery(order=Order.ASC)
    events = [e async for e in iter_matching(scene.msp.tenant.id, query)]

    text = "".join([chunk async for chunk in csv_chunks(iter_matching(scene.msp.tenant.id, query))])

    rows = list(csv.DictReader(io.StringIO(text)))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert not {"hash", "prev_hash"} & set(rows[0])
    assert [int(row["seq"]) for row in rows] == [e.seq for e in events]
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@")), value
    [glass] = [row for row in rows if row["reason"].startswith("'=HYPERLINK")]
    assert glass["reason"] == "'" + HOSTILE_REASON
    assert glass["grant_id"] == scene.grant
    assert glass["document_id"] == str(scene.msp.documents["credential"])
    assert glass["psa_reference"] == "PSA-4411"
    assert glass["action"] == "document:break_glass"
    assert {row["actor_label"] for row in rows if row["action"] == "login:succeeded"} >= {
        "'" + FORMULA_EMAIL
    }
    [created] = [
        row for row in rows if row["action"] == "grant:created" and row["grant_id"] == scene.grant
    ]
    rest = created["context"]
    assert '"noc_tenant_id"' in rest and '"grant_id"' not in rest
