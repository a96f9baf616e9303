"""Managing accounts and API tokens, as `tracker accounts` and the demo do it: each change
checked, stored and appended to the audit trail under the acting operator (``actor``,
e.g. ``cli:alice``)."""

from __future__ import annotations

from dataclasses import dataclass

from protocols.model import DEVICE_ID, DISTRICT_CODE
from tracker.access.passwords import hash_password, new_api_token, secret_hash
from tracker.storage.audit import AuditEntry
from tracker.storage.store import Store
from web.principal import Role

NAME_CHARS = "letters, digits and . _ @ - (up to 64, starting with a letter or digit)"


class AccountError(ValueError):
    """An account operation that cannot be done as asked; the message says why."""


@dataclass(frozen=True, slots=True)
class Issued:
    token_id: int
    token: str  # shown once: only its hash is kept


def parse_scope(text: str) -> str | None:
    """``city`` → None; a 6-digit district code → itself."""
    if text == "city":
        return None
    if DISTRICT_CODE.fullmatch(text):
        return text
    raise AccountError(f"scope must be 'city' or a 6-digit district code, got {text!r}")


def parse_role(text: str) -> Role:
    try:
        return Role(text)
    except ValueError:
        raise AccountError(f"role must be one of {', '.join(r.value for r in Role)}, got {text!r}") from None


def valid_name(name: str) -> bool:
    """Whether an account could have this name (the table's CHECK, said in Python)."""
    return (0 < len(name) <= 64 and name[0].isascii() and name[0].isalnum()
            and all(c.isascii() and (c.isalnum() or c in "._@-") for c in name))


async def add_account(store: Store, name: str, role: Role, district: str | None, password: str, *, actor: str,
                      source: str = "cli", device: str | None = None) -> int:
    if not valid_name(name):
        raise AccountError(f"account name {name!r}: {NAME_CHARS}")
    if device is not None and (role is not Role.COLLECTOR or not DEVICE_ID.fullmatch(device)):
        raise AccountError("--device names a collector's own handset (a device id), for role collector only")
    try:
        account_id = await store.add_account(name, role.value, district, hash_password(password), device)
    except ValueError as exc:  # WeakPassword, AccountExists
        raise AccountError(str(exc)) from None
    after = {"role": role.value, "scope": district or "city", "device": device, "enabled": True}
    await store.append_audit(AuditEntry(actor=actor, source=source, action="account.create", target=name, after=after))
    return account_id


async def set_password(store: Store, name: str, password: str, *, actor: str, source: str = "cli") -> None:
    try:
        hashed = hash_password(password)
    except ValueError as exc:
        raise AccountError(str(exc)) from None
    if await store.set_password(name, hashed) is None:
        raise AccountError(f"no account named {name!r}")
    await store.append_audit(AuditEntry(actor=actor, source=source, action="account.password", target=name,
                                        detail="password changed; its sessions ended"))


async def set_enabled(store: Store, name: str, enabled: bool, *, actor: str, source: str = "cli") -> None:
    before = await store.set_account_enabled(name, enabled)
    if before is None:
        raise AccountError(f"no account named {name!r}")
    await store.append_audit(AuditEntry(actor=actor, source=source, action="account.enable" if enabled else "account.disable",
                                        target=name, before={"enabled": before["enabled"]}, after={"enabled": enabled}))


async def create_token(store: Store, name: str, label: str, *, actor: str, source: str = "cli") -> Issued:
    account = await store.account(name)
    if account is None:
        raise AccountError(f"no account named {name!r}")
    token = new_api_token()
    token_id = await store.add_token(account["id"], secret_hash(token), label)
    await store.append_audit(AuditEntry(actor=actor, source=source, action="token.create", target=name,
                                        after={"token": token_id, "label": label}))
    return Issued(token_id, token)


async def revoke_token(store: Store, token_id: int, *, actor: str, source: str = "cli") -> str:
    """Revoke; the name of the account it was of."""
    revoked = await store.revoke_token(token_id)
    if revoked is None:
        raise AccountError(f"no live token {token_id}")
    await store.append_audit(AuditEntry(actor=actor, source=source, action="token.revoke", target=revoked["name"],
                                        before={"token": token_id, "label": revoked["label"], "revoked": False},
                                        after={"token": token_id, "revoked": True}))
    return str(revoked["name"])
