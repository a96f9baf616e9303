"""A walked track as a person reads it: GPS jitter filtered out, the distance of what is
left, and the stops (dwells longer than a few minutes).

Jitter: a standing or slowly walking handset reports points scattered over its accuracy
radius, and joining them all up triples a collector's distance. Two steps take it out:
1. accuracy-weighted smoothing: each fix is replaced by the mean of the fixes within
   ``window_ms`` (10 s) of it, weighted by 1/accuracy², so a poor fix pulls little;
2. dropping sub-accuracy moves: a smoothed point is kept only when it lies farther from
   the last kept one than the larger of their accuracy radii (and at least ``min_move_m``).
Fixes reported with an accuracy worse than ``max_acc_m`` are dropped first. Each point of
the result carries the time of a real fix; its position is that fix's smoothed one.

Stops: a run of fixes that all stay within ``stop_radius_m`` of the run's first fix for at
least ``min_stop_ms`` is a stop, reported with its start, end, and mean position.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from protocols.coords import distance_m


@dataclass(frozen=True, slots=True)
class Point:
    t_ms: int
    lat: float
    lon: float
    acc: float | None = None


@dataclass(frozen=True, slots=True)
class Stop:
    start_ms: int
    end_ms: int
    lat: float
    lon: float
    fixes: int

    @property
    def minutes(self) -> float:
        return (self.end_ms - self.start_ms) / 60_000


@dataclass(frozen=True, slots=True)
class TrackSettings:
    min_move_m: float = 5.0
    max_acc_m: float = 50.0
    window_ms: int = 10_000  # fixes within this of a fix are averaged into it
    assumed_acc_m: float = 20.0  # the weight of a fix that reports no accuracy
    stop_radius_m: float = 30.0
    min_stop_ms: int = 5 * 60_000


def smoothed(points: Sequence[Point], settings: TrackSettings = TrackSettings()) -> list[Point]:
    """The track to draw and measure, in time order (the input must be in time order):
    fixes worse than ``max_acc_m`` dropped, each remaining fix moved to the accuracy-weighted
    mean of the fixes within ``window_ms`` of it, then moves smaller than the accuracy
    radius (at least ``min_move_m``) left out. Every point keeps its fix's time."""
    good = [p for p in points if p.acc is None or p.acc <= settings.max_acc_m]
    if not good:
        return []
    weights = [1.0 / max(p.acc if p.acc is not None else settings.assumed_acc_m, 1.0) ** 2 for p in good]
    # sums of offsets from the first fix: small numbers keep the running sums exact enough
    lat0, lon0 = good[0].lat, good[0].lon
    averaged: list[Point] = []
    lo = hi = 0
    lat_sum = lon_sum = w_sum = 0.0
    for p in good:
        while hi < len(good) and good[hi].t_ms <= p.t_ms + settings.window_ms:
            w = weights[hi]
            lat_sum, lon_sum, w_sum = lat_sum + (good[hi].lat - lat0) * w, lon_sum + (good[hi].lon - lon0) * w, w_sum + w
            hi += 1
        while good[lo].t_ms < p.t_ms - settings.window_ms:
            w = weights[lo]
            lat_sum, lon_sum, w_sum = lat_sum - (good[lo].lat - lat0) * w, lon_sum - (good[lo].lon - lon0) * w, w_sum - w
            lo += 1
        averaged.append(Point(p.t_ms, lat0 + lat_sum / w_sum, lon0 + lon_sum / w_sum, p.acc))
    kept = [averaged[0]]
    for p in averaged[1:]:
        last = kept[-1]
        needed = max(settings.min_move_m, last.acc or 0.0, p.acc or 0.0)
        if distance_m(last.lat, last.lon, p.lat, p.lon) > needed:
            kept.append(p)
    if kept[-1] is not averaged[-1]:
        kept.append(averaged[-1])  # the track ends where the device was last, even after a small move
    return kept


def length_m(points: Sequence[Point]) -> float:
    return sum(distance_m(a.lat, a.lon, b.lat, b.lon) for a, b in itertools.pairwise(points))


def stops(points: Sequence[Point], settings: TrackSettings = TrackSettings()) -> list[Stop]:
    """Dwells of at least ``min_stop_ms`` within ``stop_radius_m``, in time order."""
    found: list[Stop] = []
    i, n = 0, len(points)
    while i < n:
        anchor = points[i]
        j = i + 1
        while j < n and distance_m(anchor.lat, anchor.lon, points[j].lat, points[j].lon) <= settings.stop_radius_m:
            j += 1
        run = points[i:j]
        if run[-1].t_ms - anchor.t_ms >= settings.min_stop_ms:
            found.append(Stop(anchor.t_ms, run[-1].t_ms, sum(p.lat for p in run) / len(run), sum(p.lon for p in run) / len(run),
                              len(run)))
            i = j
        else:
            i += 1
    return found
