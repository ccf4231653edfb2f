"""Transactions for the core services, the same on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from piccolo.engine.sqlite import SQLiteEngine, TransactionType

from tenants.tables import Tenant

__all__ = ["write_transaction"]


def write_transaction() -> Any:
    """An `async with` block in which every Piccolo query joins one transaction.

    On SQLite the transaction takes the write lock at once (`BEGIN IMMEDIATE`), so that two
    writers queue instead of failing on a lock upgrade. Nested calls join the outer transaction.
    """
    engine = Tenant._meta.db
    if isinstance(engine, SQLiteEngine):
        return engine.transaction(transaction_type=TransactionType.immediate, allow_nested=True)
    return engine.transaction(allow_nested=True)
