"""`tracker accounts`, run as a real process against the test database: accounts and tokens
made, listed, disabled and revoked, secrets printed once and stored only hashed, every
change in the audit trail as ``cli:<os user>``; mistakes are one line and exit status 1."""

from __future__ import annotations

import getpass
import json
import os
import re
import sys

import trio

from tests.harness import REPO, store_task
from tracker.access.passwords import password_matches, secret_hash
from tracker.app.demo import DEMO_ACCOUNTS, ensure_demo_accounts


async def tracker(dsn: str, *args: str) -> tuple[int, str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TRACKER_")}
    environ["TRACKER_DATABASE__DSN"] = dsn
    with trio.fail_after(60):
        done = await trio.run_process([sys.executable, "-m", "tracker", "accounts", *args], cwd=REPO, env=environ,
                                      capture_stdout=True, capture_stderr=True, check=False)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def test_accounts_and_tokens_from_the_command_line(database, tmp_path):
    (tmp_path / "pw").write_text("a chosen password 123\n", encoding="utf-8")
    code, out, _ = await tracker(database, "add", "zhang.wei", "--role", "commander", "--scope", "620105")
    assert code == 0 and out.startswith("account zhang.wei (commander, 620105) created\n")
    generated = re.search(r"password: (\S+)   \(shown once\)", out)
    assert generated is not None
    assert (await tracker(database, "add", "li", "--role", "viewer", "--scope", "city", "--password-file",
                          str(tmp_path / "pw")))[1] == "account li (viewer, city) created\n"
    code, out, _ = await tracker(database, "token", "create", "li", "--label", "grafana")
    token_id, token = re.fullmatch(r"token (\d+) for li: (gwt_\S+)   \(shown once\)\n", out).groups()  # type: ignore[union-attr]
    assert (await tracker(database, "disable", "zhang.wei"))[1] == "account zhang.wei disabled\n"
    listed = (await tracker(database, "list"))[1].splitlines()
    assert listed == ["li                   viewer     city   enabled  1 token(s)",
                      "zhang.wei            commander  620105 DISABLED 0 token(s)"]
    assert (await tracker(database, "token", "revoke", token_id))[1] == f"token {token_id} of li revoked\n"
    code, out, _ = await tracker(database, "passwd", "li", "--password-file", str(tmp_path / "pw"))
    assert (code, out) == (0, "password of li changed; its sessions ended\n")
    mistakes = [await tracker(database, *args) for args in (
        ("add", "li", "--role", "viewer", "--scope", "city"),
        ("add", "wu", "--role", "mayor", "--scope", "city"),
        ("add", "wu", "--role", "viewer", "--scope", "6201"),
        ("add", "wu", "--role", "viewer", "--scope", "city", "--device", "c0001"),
        ("token", "revoke", token_id),
        ("disable", "nobody"),
    )]
    async with trio.open_nursery() as nursery:
        store = await nursery.start(store_task, database)
        rows = {r["name"]: r for r in await store.fetch("SELECT * FROM accounts")}
        tokens = await store.fetch("SELECT secret_hash, revoked_at FROM api_tokens")
        audit = await store.audit_entries(limit=20)
        nursery.cancel_scope.cancel()
    assert password_matches(rows["zhang.wei"]["password_hash"], generated.group(1))
    assert password_matches(rows["li"]["password_hash"], "a chosen password 123")
    assert (rows["zhang.wei"]["district"], rows["zhang.wei"]["enabled"], rows["li"]["district"]) == ("620105", False, None)
    assert [bytes(t["secret_hash"]) for t in tokens] == [secret_hash(token)] and tokens[0]["revoked_at"] is not None
    assert [m[2] for m in mistakes] == [
        "tracker: error: an account named 'li' exists\n",
        "tracker: error: role must be one of admin, commander, supervisor, viewer, collector, got 'mayor'\n",
        "tracker: error: scope must be 'city' or a 6-digit district code, got '6201'\n",
        "tracker: error: --device names a collector's own handset (a device id), for role collector only\n",
        f"tracker: error: no live token {token_id}\n",
        "tracker: error: no account named 'nobody'\n",
    ]
    assert {m[0] for m in mistakes} == {1}
    assert [(e["action"], e["target"]) for e in reversed(audit)] == [
        ("account.create", "zhang.wei"), ("account.create", "li"), ("token.create", "li"), ("account.disable", "zhang.wei"),
        ("token.revoke", "li"), ("account.password", "li")]
    assert {(e["actor"], e["source"]) for e in audit} == {(f"cli:{getpass.getuser()}", "cli")}
    assert (json.loads(audit[2]["before"]), json.loads(audit[2]["after"])) == ({"enabled": True}, {"enabled": False})


async def test_the_demo_makes_its_logins_once_and_prints_each_on_one_line(database):
    passwords = {f"web/{a.name}": f"kept-password-{n:04d}" for n, a in enumerate(DEMO_ACCOUNTS)}
    async with trio.open_nursery() as nursery:
        store = await nursery.start(store_task, database)
        lines = await ensure_demo_accounts(store, passwords)
        again = await ensure_demo_accounts(store, passwords)
        passwords["web/admin"] = "a password kept anew"  # the secrets file was replaced
        await ensure_demo_accounts(store, passwords)
        admin = await store.account("admin")
        created = await store.audit_entries(action="account.create")
        nursery.cancel_scope.cancel()
    assert lines == [
        "  login  admin / kept-password-0000  (admin, city)",
        "  login  dispatch / kept-password-0001  (commander, city)",
        "  login  anning.dispatch / kept-password-0002  (commander, 620105)",
        "  login  qilihe.supervisor / kept-password-0003  (supervisor, 620103)",
        "  login  hotline / kept-password-0004  (commander, city)",
        "  login  anning.hw / kept-password-0005  (viewer, 620105)",
    ]
    assert again == lines and len(created) == 6
    assert password_matches(admin["password_hash"], "a password kept anew")
