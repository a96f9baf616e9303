"""The dynamic security plugin's file as the starter (and `tracker broker-accounts`)
writes it: the plugin's own password hash, the built-in roles, accounts added since kept."""

from __future__ import annotations

import base64
import hashlib
import json
import stat

import pytest

from tracker.devcity.dynsec_file import dynsec_config, write_dynsec_file
from tracker.ingest.dynsec_roles import ALL_DEVICES_ROLE, CONTROL_ROLE, SERVICE_ROLE


def test_passwords_are_stored_as_the_plugin_hashes_them():
    config = dynsec_config(None, {"gridwatch": "svc"}, {"gridwatch": SERVICE_ROLE})
    (client,) = config["clients"]
    digest = hashlib.pbkdf2_hmac("sha512", b"svc", base64.b64decode(client["salt"]), client["iterations"], 64)
    assert base64.b64decode(client["password"]) == digest
    assert client["roles"] == [{"rolename": SERVICE_ROLE}]
    assert config["defaultACLAccess"] == {"publishClientSend": False, "publishClientReceive": True, "subscribe": False,
                                          "unsubscribe": True}


def test_a_production_file_has_no_account_publishing_for_every_device(tmp_path):
    path = tmp_path / "dynsec.json"
    write_dynsec_file(path, {"gridwatch": "a", "gridwatch-control": "b"}, {"gridwatch": SERVICE_ROLE, "gridwatch-control": CONTROL_ROLE})
    config = json.loads(path.read_text())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    held = {role["rolename"] for client in config["clients"] for role in client["roles"]}
    assert held == {SERVICE_ROLE, CONTROL_ROLE} and ALL_DEVICES_ROLE not in held


def test_rewriting_keeps_devices_and_replaces_the_starting_accounts(tmp_path):
    path = tmp_path / "dynsec.json"
    write_dynsec_file(path, {"gridwatch": "one"}, {"gridwatch": SERVICE_ROLE})
    config = json.loads(path.read_text())
    config["clients"].append({"username": "c0001", "roles": [{"rolename": "device:c0001"}]})
    config["roles"].append({"rolename": "device:c0001", "acls": []})
    path.write_text(json.dumps(config))
    write_dynsec_file(path, {"gridwatch": "two"}, {"gridwatch": SERVICE_ROLE})
    again = json.loads(path.read_text())
    assert sorted(c["username"] for c in again["clients"]) == ["c0001", "gridwatch"]
    assert "device:c0001" in {r["rolename"] for r in again["roles"]}
    (service,) = [c for c in again["clients"] if c["username"] == "gridwatch"]
    assert service["password"] != next(c for c in config["clients"] if c["username"] == "gridwatch")["password"]


def test_an_unknown_role_or_a_damaged_file_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no role 'root'"):
        dynsec_config(None, {"x": "y"}, {"x": "root"})
    path = tmp_path / "dynsec.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="remove it to start afresh"):
        write_dynsec_file(path, {"x": "y"}, {})
