"""The dynamic security plugin's file for a broker this project starts (demo, tests,
benchmarks): the accounts the starter provisions, the roles they hold, and whatever the
plugin added since (devices provisioned at run time), which a later start keeps.

A production broker gets the same file from `tracker broker-accounts FILE` (the service's
and the control account, never the all-devices one); see README, "Provisioning devices".
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tracker.ingest.dynsec_roles import (
    ALL_DEVICES_ROLE,
    CONTROL_ROLE,
    DEFAULT_ACL_ACCESS,
    ROLE_ACLS,
    SERVICE_ROLE,
    hashed_password,
)

SERVICE_ACCOUNT = "gridwatch"
CONTROL_ACCOUNT = "gridwatch-control"
SIMULATOR_ACCOUNT = "simulator"

# the accounts' conventional names and what they hold, unless a starter says otherwise
DEFAULT_ROLES = {SERVICE_ACCOUNT: SERVICE_ROLE, CONTROL_ACCOUNT: CONTROL_ROLE, SIMULATOR_ACCOUNT: ALL_DEVICES_ROLE}
ROLES = tuple(ROLE_ACLS)


def dynsec_config(previous: dict[str, Any] | None, users: Mapping[str, str], roles: Mapping[str, str | None]) -> dict[str, Any]:
    """``previous`` (the plugin's file as it left it, or None) with ``users`` set to these
    passwords and roles, the built-in roles as this code defines them, and the default
    ACL access refusing what no role allows. Other clients and roles are kept."""
    for name, role in roles.items():
        if role is not None and role not in ROLE_ACLS:
            raise ValueError(f"account {name!r}: no role {role!r} (known: {', '.join(ROLES)})")
    config = dict(previous or {})
    clients = [c for c in config.get("clients", []) if c.get("username") not in users]
    for name, password in users.items():
        role = roles.get(name)
        clients.append({"username": name, "textName": f"gridwatch {role or 'account without a role'}",
                        **hashed_password(password), "roles": [{"rolename": role}] if role else []})
    kept_roles = [r for r in config.get("roles", []) if r.get("rolename") not in ROLE_ACLS]
    config["clients"] = clients
    config["roles"] = kept_roles + [{"rolename": name, "acls": acls} for name, acls in ROLE_ACLS.items()]
    config["defaultACLAccess"] = {entry["acltype"]: entry["allow"] for entry in DEFAULT_ACL_ACCESS}
    config.setdefault("groups", [])
    return config


def write_dynsec_file(path: Path, users: Mapping[str, str], roles: Mapping[str, str | None]) -> None:
    """Write (or update, keeping what the plugin added) the plugin's file at ``path``,
    owner-only from its first byte."""
    previous = None
    if path.exists():
        try:
            previous = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ValueError(f"not the plugin's JSON ({exc}): remove it to start afresh") from None
    text = json.dumps(dynsec_config(previous, users, roles), indent=1) + "\n"
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(partial, path)
