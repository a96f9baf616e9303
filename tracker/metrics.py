"""Counters and gauges, rendered in the Prometheus text format for ``GET /metrics``.

Stages count per batch, not per message, so plain ints in one thread (trio's) suffice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    def __init__(self) -> None:
        self.counters: dict[str, int] = defaultdict(int)
        self.labelled: dict[str, dict[tuple[tuple[str, str], ...], int]] = defaultdict(lambda: defaultdict(int))
        self.gauges: dict[str, Callable[[], float]] = {}
        self.help: dict[str, str] = {}

    def describe(self, name: str, text: str) -> None:
        self.help[name] = text

    def inc(self, name: str, by: int = 1, **labels: str) -> None:
        if labels:
            self.labelled[name][tuple(sorted(labels.items()))] += by
        else:
            self.counters[name] += by

    def get(self, name: str, **labels: str) -> int:
        if labels:
            return self.labelled[name].get(tuple(sorted(labels.items())), 0)
        return self.counters.get(name, 0)

    def gauge(self, name: str, read: Callable[[], float], text: str = "") -> None:
        self.gauges[name] = read
        if text:
            self.help[name] = text

    def render(self) -> str:
        lines: list[str] = []
        names = sorted(set(self.counters) | set(self.labelled))
        for name in names:
            if name in self.help:
                lines.append(f"# HELP {name} {self.help[name]}")
            lines.append(f"# TYPE {name} counter")
            if name in self.counters:
                lines.append(f"{name} {self.counters[name]}")
            for labels, value in sorted(self.labelled.get(name, {}).items()):
                rendered = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
                lines.append(f"{name}{{{rendered}}} {value}")
        for name in sorted(self.gauges):
            if name in self.help:
                lines.append(f"# HELP {name} {self.help[name]}")
            lines.append(f"# TYPE {name} gauge")
            lines.append(f"{name} {float(self.gauges[name]())}")
        return "\n".join(lines) + "\n"
