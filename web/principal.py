"""Who is asking: the account behind a request or a WebSocket, its role and its scope.

Authentication (the session cookie or a bearer token) puts a ``Principal`` in the ASGI
scope under ``PRINCIPAL_KEY`` before any endpoint runs; endpoints read it with
``principal(connection)`` and scope what they return with ``Principal.sees`` (one device,
alert, grid…) or ``Principal.district`` (a query's filter: None means the whole city).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from starlette.requests import HTTPConnection

PRINCIPAL_KEY = "gridwatch.principal"


class Role(StrEnum):
    ADMIN = "admin"  # users, devices, configuration
    COMMANDER = "commander"  # city or district dispatcher: incidents, commands to devices
    SUPERVISOR = "supervisor"  # patrol plan, exceptions, alerts
    VIEWER = "viewer"  # read only
    COLLECTOR = "collector"  # a person carrying a handset, linked to their device


@dataclass(frozen=True, slots=True)
class Principal:
    account: str  # the login name
    role: Role
    district: str | None  # a 6-digit district code, or None for the city
    account_id: int = 0
    via: str = "session"  # "session" (browser cookie) or "token" (bearer API token)
    device: str | None = None  # a collector's own handset (the one device a collector sees)

    @property
    def scope_label(self) -> str:
        return "city" if self.district is None else self.district

    def sees(self, district: str | None) -> bool:
        """Whether data of ``district`` may leave to this principal. Data of no known
        district (None) is the city's: only city accounts see it."""
        return self.district is None or (district is not None and district == self.district)

    def sees_code(self, code: str) -> bool:
        """Whether a grid, street, community or component code (which all begin with
        their 6-digit district) is in scope."""
        return self.district is None or code.startswith(self.district)


def principal(connection: HTTPConnection) -> Principal:
    """The principal authentication put on this request or WebSocket."""
    found = connection.scope.get(PRINCIPAL_KEY)
    if not isinstance(found, Principal):
        raise LookupError("no principal on this connection: the route is not behind authentication")
    return found
