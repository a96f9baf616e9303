"""Is the database at the schema this code was written for? Checked before it is used."""

from __future__ import annotations

from tracker.storage.store import Store, migrations


class SchemaError(RuntimeError):
    """The database's schema version is not this code's: older (run `tracker db migrate`)
    or newer (written by a later release)."""


async def schema_version(store: Store) -> int:
    """The version the database is at; 0 when it was never migrated."""
    rows = await store.fetch("SELECT to_regclass('schema_version') IS NOT NULL AS present")
    return await store.schema_version() if rows[0]["present"] else 0


async def check_schema(store: Store) -> int:
    """The database's schema version, when it is the latest this code knows; else SchemaError."""
    version = await schema_version(store)
    latest = migrations()[-1][0]
    if version < latest:
        raise SchemaError(f"database schema is at version {version}, this code needs {latest}: run `tracker db migrate`")
    if version > latest:
        raise SchemaError(f"database schema is at version {version}, newer than this code knows ({latest}): "
                          "run the release that migrated it")
    return version
