"""Who may take which action on a case: the role's share of the lifecycle, the actor's
district, and for a department's work, membership of the department the case is with.

- commander (指挥中心, the dispatcher): files and rejects, dispatches, decides a returned
  case again, approves or refuses extensions, parks and resumes, sends a collector to
  verify, closes or reopens on the collector's behalf, evaluates;
- supervisor (监督中心, intake and verification): files and rejects, sends verification,
  closes or reopens on the collector's behalf, evaluates;
- a member of the case's department (any account listed for it, usually a viewer):
  handles, returns, asks for an extension;
- the collector sent to verify (by account name or handset): closes or reopens;
- admin: none (it manages the taxonomy and the departments' members, not cases).

A district account acts only on its district's cases, a city account on every one. Pure:
the engine gives the actor's memberships.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from alerts.cases.lifecycle import Action

SYSTEM = "system"

ROLE_ACTIONS: dict[str, frozenset[Action]] = {
    "commander": frozenset({Action.FILE, Action.REJECT, Action.DISPATCH, Action.APPROVE_EXTENSION,
                            Action.REFUSE_EXTENSION, Action.PARK, Action.RESUME, Action.VERIFY, Action.CLOSE,
                            Action.REOPEN, Action.EVALUATE}),
    "supervisor": frozenset({Action.FILE, Action.REJECT, Action.VERIFY, Action.CLOSE, Action.REOPEN,
                             Action.EVALUATE}),
}
DEPARTMENT_ACTIONS = frozenset({Action.HANDLE, Action.RETURN, Action.REQUEST_EXTENSION})
VERIFIER_ACTIONS = frozenset({Action.CLOSE, Action.REOPEN})
CREATORS = frozenset({"commander", "supervisor", SYSTEM})  # and sources acting for a device


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: an account (its name, role and district: None for the city), a source
    acting for a device (role ``system``, ``device`` set), or the service itself."""

    account: str
    role: str
    district: str | None = None
    device: str | None = None
    source: str = ""  # the client's address, or the component acting

    @property
    def scope(self) -> str:
        return "city" if self.district is None else self.district

    def sees(self, district: str | None) -> bool:
        return self.district is None or (district is not None and district == self.district)


SERVICE = Actor(SYSTEM, SYSTEM, None, source="cases")


def membership_refusal(account: str, account_district: str | None, department: str, works_in: str | None) -> str | None:
    """Why ``account`` (of ``account_district``; None: the city's) may not join
    ``department`` (working in ``works_in``; None: city-wide); None when it may. A district
    account sees its district's cases only: in another's department it could act on none."""
    if works_in is None or account_district is None or account_district == works_in:
        return None
    return f"account {account} is {account_district}'s; department {department} works in {works_in}"


def refusal(actor: Actor, action: Action, *, district: str | None, department: str | None, verifier: str | None,
            memberships: Collection[str]) -> str | None:
    """Why ``actor`` may not take ``action`` on a case of ``district`` with ``department``
    and ``verifier``; None when it may."""
    if not actor.sees(district):
        return f"{actor.account} acts for {actor.scope} only; the case is {district or 'the city'}'s"
    if action in ROLE_ACTIONS.get(actor.role, ()):
        return None
    if action in DEPARTMENT_ACTIONS:
        if department is not None and department in memberships:
            return None
        return f"only a member of the department the case is with ({department or 'none yet'}) may {action}"
    if action in VERIFIER_ACTIONS and verifier is not None and verifier in (actor.account, actor.device):
        return None
    return f"a {actor.role} may not {action} a case"
