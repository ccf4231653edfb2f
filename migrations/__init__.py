"""Piccolo migrations, one folder per app. Helpers shared by the hand-written ones live here."""

from __future__ import annotations

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

__all__ = ["index_migration"]


def index_migration(
    *, migration_id: str, app_name: str, description: str, statements: tuple[str, ...]
) -> MigrationManager:
    """A migration that only creates indexes.

    Composite indexes (each led by `tenant_id`) are plain SQL: Piccolo's `Unique` constraint is
    added with ALTER TABLE, which SQLite cannot do. Raw steps run before a migration's table
    steps, so indexes always come in a migration of their own, after the tables.
    """
    manager = MigrationManager(
        migration_id=migration_id, app_name=app_name, description=description
    )

    async def create_indexes() -> None:
        from piccolo.engine import engine_finder

        engine = engine_finder()
        assert engine is not None
        for statement in statements:
            await engine.run_ddl(statement)

    manager.add_raw(create_indexes)
    return manager
