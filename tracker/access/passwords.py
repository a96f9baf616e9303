"""Passwords and bearer secrets.

A password is chosen by a person, so it is hashed with Argon2 (slow on purpose: a stolen
table costs an attacker that much per guess). A session cookie or an API token is 32
random bytes nobody chose: guessing is hopeless, so SHA-256 is enough and cheap enough to
check on every request.
"""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

TOKEN_PREFIX = "gwt_"  # tells an API token apart from anything else in an Authorization header
MIN_PASSWORD_CHARS = 10

_hasher = PasswordHasher()
# verified against when the account does not exist, so a wrong name costs as long as a
# wrong password and the timing does not tell which names exist
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class WeakPassword(ValueError):
    pass


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise WeakPassword(f"a password needs at least {MIN_PASSWORD_CHARS} characters")
    return _hasher.hash(password)


def password_matches(stored_hash: str | None, password: str) -> bool:
    """Whether ``password`` is the one ``stored_hash`` was made from; None (no such
    account) costs the same and is False."""
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def generate_password() -> str:
    return secrets.token_urlsafe(15)  # 20 characters, 120 bits


def new_session_secret() -> str:
    return secrets.token_urlsafe(32)


def new_api_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def new_csrf_token() -> str:
    return secrets.token_urlsafe(24)


def secret_hash(secret: str) -> bytes:
    """What the store keeps of a session cookie or an API token."""
    return hashlib.sha256(secret.encode()).digest()
