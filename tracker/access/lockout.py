"""Failed logins: slowed, then locked for a while.

Kept per account name (lower-cased), in the memory of the serving process: from the
``slow_after``-th consecutive failure the next attempt must wait ``slow_s`` seconds,
doubling with each further failure; at ``lock_after`` failures the name is locked for
``lock_s``. A success clears the name. A refused attempt (too early, or locked) does not
count as a failure: the password was never checked. Keyed by the name, not the client's
address, so spreading guesses over many addresses gains nothing; the price is that anyone
can lock a name for ``lock_s``, which an admin sees in the audit trail.

The clock is injected (the service passes trio's, so tests run it on MockClock).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

MAX_NAMES = 100_000  # names remembered at most; the oldest are forgotten beyond it


@dataclass(frozen=True, slots=True)
class LockoutRule:
    slow_after: int = 3
    slow_s: float = 2.0
    lock_after: int = 10
    lock_s: float = 900.0


@dataclass(slots=True)
class _Failures:
    count: int
    not_before: float


class Lockout:
    def __init__(self, rule: LockoutRule, clock: Callable[[], float], max_names: int = MAX_NAMES) -> None:
        self.rule = rule
        self._clock = clock
        self._failures: OrderedDict[str, _Failures] = OrderedDict()
        self._max_names = max_names

    def wait_s(self, name: str) -> float:
        """Seconds before ``name`` may try again; 0 when it may now."""
        failures = self._failures.get(name.lower())
        if failures is None:
            return 0.0
        return max(0.0, failures.not_before - self._clock())

    def locked(self, name: str) -> bool:
        failures = self._failures.get(name.lower())
        return failures is not None and failures.count >= self.rule.lock_after and self.wait_s(name) > 0

    def failed(self, name: str) -> None:
        key = name.lower()
        now = self._clock()
        failures = self._failures.pop(key, None)
        if failures is not None and failures.count >= self.rule.lock_after and failures.not_before <= now:
            failures = None  # the lock ran out: a fresh start, not an immediate relock
        count = (failures.count if failures else 0) + 1
        if count >= self.rule.lock_after:
            delay = self.rule.lock_s
        elif count >= self.rule.slow_after:
            delay = self.rule.slow_s * 2 ** (count - self.rule.slow_after)
        else:
            delay = 0.0
        self._failures[key] = _Failures(count, now + delay)
        while len(self._failures) > self._max_names:
            self._failures.popitem(last=False)

    def succeeded(self, name: str) -> None:
        self._failures.pop(name.lower(), None)
