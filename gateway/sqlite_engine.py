"""Piccolo's SQLite engine with kept-open connections and an in-process writer queue.

Piccolo's own engine opens a connection (a thread, a file open, pragmas) for every query outside
a transaction, which caps a busy gateway at a few hundred requests a second. This engine keeps a
small pool of connections open (WAL mode lets readers run beside the writer), and lets one write
transaction of this process run at a time, so that writers queue on a lock instead of spinning
on SQLite's busy timeout. Other processes still serialise through `BEGIN IMMEDIATE`.

With WAL, `synchronous=NORMAL` (the default here) syncs at checkpoints rather than at every
commit: a crash of the process loses nothing, a power cut may lose the last commits.
`SHIFTGATE_SQLITE_SYNCHRONOUS=FULL` syncs every commit, at several milliseconds each.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiosqlite
from piccolo.engine.sqlite import SQLiteEngine, SQLiteTransaction, TransactionType, dict_factory

__all__ = ["PooledSQLiteEngine"]


class _Pool:
    def __init__(self, engine: PooledSQLiteEngine, size: int) -> None:
        self._engine = engine
        self._idle: list[aiosqlite.Connection] = []
        self._slots = asyncio.Semaphore(size)
        self._all: list[aiosqlite.Connection] = []

    async def acquire(self) -> aiosqlite.Connection:
        await self._slots.acquire()
        if self._idle:
            return self._idle.pop()
        try:
            connection = await self._engine.open_connection()
        except BaseException:
            self._slots.release()
            raise
        self._all.append(connection)
        return connection

    def release(self, connection: aiosqlite.Connection) -> None:
        self._idle.append(connection)
        self._slots.release()

    async def close(self) -> None:
        for connection in self._all:
            await connection.close()
        self._all.clear()
        self._idle.clear()


class _Lease:
    """A pooled connection lent to a transaction; `close()` gives it back."""

    def __init__(self, pool: _Pool, connection: aiosqlite.Connection) -> None:
        self._pool = pool
        self._connection = connection

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)

    async def close(self) -> None:
        self._pool.release(self._connection)


class _Transaction(SQLiteTransaction):
    """Write transactions of this process take the writer lock for their whole length."""

    engine: PooledSQLiteEngine

    async def __aenter__(self) -> SQLiteTransaction:
        if self._parent is not None:
            return self._parent
        self._holds_lock = self.transaction_type is not TransactionType.deferred
        if self._holds_lock:
            await self.engine.writer_lock().acquire()
        try:
            return await super().__aenter__()
        except BaseException:
            if self._holds_lock:
                self.engine.writer_lock().release()
            raise

    async def __aexit__(self, exception_type: Any, exception: Any, traceback: Any) -> bool:
        if self._parent:
            return exception is None
        try:
            return await super().__aexit__(exception_type, exception, traceback)
        finally:
            if self._holds_lock:
                self.engine.writer_lock().release()


class PooledSQLiteEngine(SQLiteEngine):
    def __init__(
        self,
        path: str,
        *,
        pool_size: int = 8,
        synchronous: str = "NORMAL",
        **connection_kwargs: Any,
    ) -> None:
        super().__init__(path=path, **connection_kwargs)
        if synchronous not in {"NORMAL", "FULL"}:
            raise ValueError("synchronous is NORMAL or FULL")
        self._synchronous = synchronous
        self._pool_size = pool_size
        self._pools: dict[int, _Pool] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    def _pool(self) -> _Pool:
        # connections outlive an event loop, locks and semaphores do not: one pool per loop
        key = id(asyncio.get_running_loop())
        if key not in self._pools:
            self._pools[key] = _Pool(self, self._pool_size)
        return self._pools[key]

    def writer_lock(self) -> asyncio.Lock:
        key = id(asyncio.get_running_loop())
        if key not in self._locks:
            self._locks[key] = asyncio.Lock()
        return self._locks[key]

    async def open_connection(self) -> aiosqlite.Connection:
        connection = await aiosqlite.connect(**self.connection_kwargs)
        connection.row_factory = dict_factory  # type: ignore[assignment]
        await connection.execute("PRAGMA foreign_keys = 1")
        await connection.execute(f"PRAGMA synchronous = {self._synchronous}")
        return connection

    async def close_pool(self) -> None:
        """Close every kept connection, whichever loop opened it: each holds a thread that
        would otherwise keep the process alive."""
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.close()

    async def get_connection(self) -> Any:
        pool = self._pool()
        return _Lease(pool, await pool.acquire())

    def transaction(
        self,
        transaction_type: TransactionType = TransactionType.deferred,
        allow_nested: bool = True,
    ) -> SQLiteTransaction:
        return _Transaction(
            engine=self, transaction_type=transaction_type, allow_nested=allow_nested
        )

    async def _run_in_new_connection(
        self,
        query: str,
        args: list[Any] | None = None,
        query_type: str = "generic",
        table: Any = None,
    ) -> Any:
        pool = self._pool()
        connection = await pool.acquire()
        try:
            async with connection.execute(query, args or []) as cursor:
                rows = await cursor.fetchall()
            await connection.commit()
            return rows
        finally:
            pool.release(connection)

    async def _run_in_existing_connection(
        self,
        connection: Any,
        query: str,
        args: list[Any] | None = None,
        query_type: str = "generic",
        table: Any = None,
    ) -> Any:
        # the pooled connections have their pragmas set once, when opened
        async with connection.execute(query, args or []) as cursor:
            return await cursor.fetchall()
