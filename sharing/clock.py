"""Whose time decides: the database's on PostgreSQL (one clock for every replica), the
process's on SQLite (one machine anyway); tests inject a clock they move by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

from piccolo.engine.postgres import PostgresEngine

from tenants.tables import Tenant

__all__ = ["Clock", "DatabaseClock", "ManualClock"]


@runtime_checkable
class Clock(Protocol):
    async def now(self) -> datetime: ...


class DatabaseClock:
    """`statement_timestamp()` on PostgreSQL; the process clock (UTC) on SQLite."""

    async def now(self) -> datetime:
        engine = Tenant._meta.db
        if isinstance(engine, PostgresEngine):
            rows = await engine.run_ddl("SELECT statement_timestamp() AS now")
            moment: datetime = rows[0]["now"]
            return moment.astimezone(UTC)
        return datetime.now(UTC)


class ManualClock:
    """A clock that stands still until moved: for tests of time-boxed behaviour."""

    def __init__(self, start: datetime) -> None:
        self._now = start.astimezone(UTC)

    async def now(self) -> datetime:
        return self._now

    def set(self, moment: datetime) -> None:
        self._now = moment.astimezone(UTC)

    def advance(self, delta: timedelta) -> None:
        self._now += delta
