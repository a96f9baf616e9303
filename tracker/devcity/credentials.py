"""Passwords of the private services, generated on first start and kept owner-only.

They live in one JSON file (mode 0600) in a directory of its own (mode 0700) under the
state directory, so the state directory itself stays reachable by the unprivileged users
the services run as. A later start reuses them: the cluster's superuser password is fixed
at initdb and the accounts must match what the clients were given.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

FILE_NAME = "passwords.json"


def kept_passwords(directory: Path, names: Sequence[str]) -> dict[str, str]:
    """The passwords of ``names``, generating (and keeping) the ones not kept yet."""
    directory = Path(directory)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    path = directory / FILE_NAME
    kept: dict[str, str] = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    missing = [name for name in names if name not in kept]
    if missing:
        kept.update({name: secrets.token_urlsafe(24) for name in missing})
        _write_owner_only(path, json.dumps(kept, indent=1, sort_keys=True) + "\n")
    os.chmod(path, 0o600)
    return {name: kept[name] for name in names}


def _write_owner_only(path: Path, text: str) -> None:
    """Replace ``path`` atomically by a file that is never readable by others, not even
    for a moment: a crash mid-write leaves the old file."""
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, path)
