"""The service's one clock: epoch milliseconds, injectable.

Everything that stamps or judges by wall time (receive times, patrol judgement, sensor
watchdogs, the web's "last 30 minutes") takes a ``Clock`` from the composition root, so
a test can run the whole service on any day. Timeouts and sleeps run on trio's clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], int]


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000
