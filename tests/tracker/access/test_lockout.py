"""Failed logins are slowed, then locked for a while; a success starts again at zero. On an
injected clock (seconds, as trio's)."""

from __future__ import annotations

from tracker.access.lockout import Lockout, LockoutRule
from tracker.access.passwords import hash_password, password_matches

RULE = LockoutRule(slow_after=3, slow_s=2.0, lock_after=6, lock_s=900.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def failing(lockout: Lockout, clock: Clock, name: str, times: int) -> list[float]:
    """Fail ``times`` logins, each as soon as allowed; the waits imposed before each."""
    waits = []
    for _ in range(times):
        wait = lockout.wait_s(name)
        waits.append(wait)
        clock.now += wait
        lockout.failed(name)
    return waits


def test_failures_are_free_then_slowed_doubling_then_locked():
    clock = Clock()
    lockout = Lockout(RULE, clock)
    assert failing(lockout, clock, "zhang", 6) == [0, 0, 0, 2.0, 4.0, 8.0]
    assert lockout.locked("ZHANG") and lockout.wait_s("zhang") == 900.0  # names are caseless
    clock.now += 899
    assert lockout.locked("zhang") and lockout.wait_s("zhang") == 1.0


def test_after_the_lock_period_logins_work_again_and_failures_count_afresh():
    clock = Clock()
    lockout = Lockout(RULE, clock)
    failing(lockout, clock, "li", 6)
    clock.now += 900
    assert lockout.wait_s("li") == 0 and not lockout.locked("li")
    lockout.failed("li")  # one failure after the lock: free again, not locked at once
    assert lockout.wait_s("li") == 0


def test_a_success_resets_the_count():
    clock = Clock()
    lockout = Lockout(RULE, clock)
    failing(lockout, clock, "wang", 4)
    clock.now += lockout.wait_s("wang")
    lockout.succeeded("wang")
    assert failing(lockout, clock, "wang", 3) == [0, 0, 0]


def test_names_are_kept_apart_and_bounded():
    clock = Clock()
    lockout = Lockout(RULE, clock, max_names=2)
    failing(lockout, clock, "a", 6)
    failing(lockout, clock, "b", 3)
    assert lockout.locked("a") and not lockout.locked("b")
    failing(lockout, clock, "c", 1)  # a third name: the oldest is forgotten
    assert not lockout.locked("a")


def test_passwords_are_argon2_hashes_that_only_the_password_matches():
    stored = hash_password("correct horse battery")
    assert stored.startswith("$argon2id$") and "correct" not in stored
    assert password_matches(stored, "correct horse battery")
    assert not password_matches(stored, "correct horse batter")
    assert not password_matches(None, "correct horse battery")
    assert not password_matches("not a hash", "x")
