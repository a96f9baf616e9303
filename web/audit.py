"""Recording a request's action in the audit trail: who (the principal), from where (the
client's address), what, and the state before and after."""

from __future__ import annotations

from typing import Any

from starlette.requests import HTTPConnection

from web.context import context
from web.principal import PRINCIPAL_KEY, Principal


def client_address(connection: HTTPConnection) -> str:
    client = connection.client
    return f"{client.host}:{client.port}" if client is not None else ""


async def audited(connection: HTTPConnection, action: str, target: str = "", *, before: Any = None, after: Any = None,
                  outcome: str = "ok", detail: str = "", actor: str | None = None,
                  by: Principal | None = None) -> None:
    """Append ``action`` on ``target`` by this connection's principal, or ``by`` (who an
    API key in the body names), or ``actor`` (a login attempt that has none yet). Does
    nothing where the service keeps no trail."""
    trail = context(connection).audit
    if trail is None:
        return
    who = by if by is not None else connection.scope.get(PRINCIPAL_KEY)
    principal = who if isinstance(who, Principal) else None
    await trail(actor=actor or (principal.account if principal else "anonymous"), action=action, target=target,
                source=client_address(connection), role=principal.role.value if principal else None,
                scope=principal.scope_label if principal else None, outcome=outcome, before=before, after=after,
                detail=detail)
