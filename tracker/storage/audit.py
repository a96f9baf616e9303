"""One entry of the audit trail (table ``audit``, append-only), as every writer builds it:
the web edge for its users' actions, the CLI for an operator's, the service for its own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class AuditEntry:
    actor: str  # the account's name; "cli:<os user>" from the command line; "system"
    action: str  # dotted verb: login, login_failed, logout, plan.replace, device.add …
    target: str = ""  # what was acted on: an account, a device id, a plan version …
    source: str = ""  # the client's address, "cli", or the acting component
    role: str | None = None
    scope: str | None = None  # "city" or a district code
    outcome: str = "ok"  # ok | refused | failed
    before: Any = None  # JSON-able state before the action (None: nothing, or not known)
    after: Any = None
    detail: str = ""
