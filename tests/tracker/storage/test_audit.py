"""The audit trail on a real PostgreSQL: rows are appended with their before/after state,
read newest first and filtered; the database refuses to update, delete or truncate them."""

from __future__ import annotations

import json

import asyncpg
import pytest
import trio_asyncio

from tracker.storage.audit import AuditEntry
from tracker.storage.store import open_store


async def test_entries_are_appended_and_read_back_newest_first_with_their_state(database):
    async with open_store(database) as store:
        first = await store.append_audit(AuditEntry(actor="ops", action="login", source="10.0.0.7:5123", role="admin",
                                                    scope="city"))
        second = await store.append_audit(AuditEntry(actor="ops", action="plan.replace", target="plan 3",
                                                     before={"version": 2}, after={"version": 3, "名称": "早班"}))
        await store.append_audit(AuditEntry(actor="zhang", action="login_failed", outcome="refused"))
        assert second > first
        rows = await store.audit_entries(actor="ops")
        assert [r["action"] for r in rows] == ["plan.replace", "login"]
        assert rows[0]["target"] == "plan 3"
        assert rows[1]["source"] == "10.0.0.7:5123" and rows[1]["scope"] == "city"
        assert [r["actor"] for r in await store.audit_entries(action="login")] == ["zhang", "ops"]
        assert [r["id"] for r in await store.audit_entries(before_id=second)] == [first]


async def test_what_a_client_sent_is_kept_even_with_nan_infinity_or_nul_characters(database):
    async with open_store(database) as store:
        await store.append_audit(AuditEntry(actor="li\x00", action="plan.exception", outcome="refused", target="t\x00",
                                            detail="bad \x00 day", source="10.0.0.1:1",
                                            after={"exception": {"day": float("inf"), "n": [float("nan"), 1.5],
                                                                 "k\x00": "v\x00"}}))
        (row,) = await store.audit_entries()
    assert json.loads(row["after"]) == {"exception": {"day": "inf", "n": ["nan", 1.5], "k\ufffd": "v\ufffd"}}
    assert (row["actor"], row["target"], row["detail"]) == ("li\ufffd", "t\ufffd", "bad \ufffd day")


@pytest.mark.parametrize("statement", [
    "UPDATE audit SET actor = 'someone else'",
    "DELETE FROM audit",
    "TRUNCATE audit",
])
async def test_the_database_refuses_to_change_or_remove_audit_rows(database, statement):
    async with open_store(database) as store:
        await store.append_audit(AuditEntry(actor="ops", action="device.add", target="c0001"))

        async def attempt() -> None:
            con = await asyncpg.connect(database)
            try:
                await con.execute(statement)
            finally:
                await con.close()

        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await trio_asyncio.aio_as_trio(attempt)()
        rows = await store.audit_entries()
        assert [(r["actor"], r["action"]) for r in rows] == [("ops", "device.add")]
