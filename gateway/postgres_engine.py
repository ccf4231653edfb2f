"""Piccolo's PostgreSQL engine with one connection pool per event loop.

An asyncpg pool belongs to the event loop that made it. A gateway process has one loop, but a
test that drives the app through litestar's test client runs the app on another loop than its
own: each loop gets its own pool, and a loop without one connects per query.
"""

from __future__ import annotations

import asyncio
from typing import Any

from piccolo.engine.postgres import PostgresEngine

__all__ = ["LoopPoolPostgresEngine"]


def _loop_key() -> int | None:
    try:
        return id(asyncio.get_running_loop())
    except RuntimeError:
        return None


class LoopPoolPostgresEngine(PostgresEngine):
    def __init__(self, config: dict[str, Any], **kwargs: Any) -> None:
        self._pools: dict[int | None, Any] = {}
        super().__init__(config=config, **kwargs)

    async def check_version(self) -> None:
        """Piccolo checks the server version when the engine is made, which connects: making an
        engine must open no connection (`open_database` connects, and reports failures)."""

    @property
    def pool(self) -> Any:
        return self._pools.get(_loop_key())

    @pool.setter
    def pool(self, value: Any) -> None:
        if value is None:
            self._pools.pop(_loop_key(), None)
        else:
            self._pools[_loop_key()] = value
