"""Decoder throughput, one core: decoded fixes (or sensor records) per second for each
protocol the service accepts, each measured over a fixed set of real-shaped payloads,
best of 3 runs.

- handset msgpack (single fix, batch of 20) and JSON: positions of the simulated
  collectors, a quarter of them in GCJ-02 (converted on decode);
- OwnTracks location: what the Android app publishes;
- sensor record: manhole, bin and waterlogging records of the simulated sensors;
- JT/T 808 0x0200: framing and decode from a wire byte stream, into a Fix
  (the frames of ``bench.jt808``).

    python -m bench.protocols [--fixes 20000]

Prints a table and writes bench/results/protocols.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import time
from collections.abc import Callable
from pathlib import Path

import msgpack

from bench.jt808 import DISTRICT, location_frame, phone_of
from protocols.handset import HandsetLimits, decode_position
from protocols.jt808.framing import FrameReader
from protocols.jt808.messages import decode_location, split_message
from protocols.model import Datum, DeviceClass, DeviceRef, Fix
from protocols.owntracks import OwnTracksLocation, decode_message as decode_owntracks
from protocols.sensor import decode_sensor
from tracker.devcity.city import PATH as DEMO_CITY
from tracker.devcity.simulator import build_fleet

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "protocols.json"
RUNS = 3
BATCH = 20
READ_BYTES = 16384  # what the JT/T 808 gateway asks of a socket at once

Case = tuple[Callable[[], int], int, int, int]  # run() -> records, payloads, records, wire bytes


def _best_seconds(run: Callable[[], int], expected: int) -> float:
    best = float("inf")
    for _ in range(RUNS):
        gc.collect()
        start = time.perf_counter()
        got = run()
        elapsed = time.perf_counter() - start
        if got != expected:
            raise AssertionError(f"decoded {got} records, expected {expected}")
        best = min(best, elapsed)
    return best


def _handset_docs(n: int, now_s: float) -> list[tuple[DeviceRef, list[dict]]]:
    """n collector fixes from the simulator, grouped in runs of BATCH per device."""
    rng = random.Random(20)
    walkers = build_fleet(DEMO_CITY, 40, 0, 0).collectors
    groups = []
    made = 0
    t0 = now_s - n * 1.5 / len(walkers)  # a fix every 1.5 s per device, ending now
    while made < n:
        for w in walkers:
            size = min(BATCH, n - made)
            if size <= 0:
                break
            docs = []
            for _ in range(size):
                t0 += 1.5 / len(walkers)
                w.step(1.5, t0, rng)
                docs.append(w.fix(int(t0 * 1000), rng))
            groups.append((DeviceRef(w.device, DeviceClass.COLLECTOR, w.district), docs))
            made += size
    return groups


def _position_case(payloads: list[tuple[DeviceRef, bytes]], fixes: int, rx_ms: int) -> Case:
    limits = HandsetLimits()

    def run() -> int:
        return sum(len(decode_position(payload, ref, rx_ms, limits).fixes) for ref, payload in payloads)

    return run, len(payloads), fixes, sum(len(p) for _, p in payloads)


def handset_cases(n: int, now_s: float, rx_ms: int) -> dict[str, Case]:
    groups = _handset_docs(n, now_s)
    single = [(ref, msgpack.packb(doc)) for ref, docs in groups for doc in docs]
    batches = [(ref, msgpack.packb(docs)) for ref, docs in groups]
    as_json = [(ref, json.dumps(doc, separators=(",", ":")).encode()) for ref, docs in groups for doc in docs]
    return {
        "handset msgpack, single fix": _position_case(single, n, rx_ms),
        f"handset msgpack, batch of {BATCH}": _position_case(batches, n, rx_ms),
        "handset JSON, single fix": _position_case(as_json, n, rx_ms),
    }


def owntracks_case(n: int, now_s: float, rx_ms: int) -> Case:
    rng = random.Random(21)
    phones = [(f"user{i:02d}", "phone") for i in range(40)]
    devices = {pair: DeviceRef(f"c{i + 1:04d}", DeviceClass.COLLECTOR, DISTRICT) for i, pair in enumerate(phones)}
    messages = []
    for i in range(n):
        user, device = phones[i % len(phones)]
        tst = int(now_s) - rng.randrange(0, 600)
        doc = {"_type": "location", "acc": rng.randrange(3, 40), "alt": 1520 + rng.randrange(-5, 5), "batt": rng.randrange(20, 100),
               "bs": 1, "conn": "m", "created_at": tst, "lat": round(36.1046 + rng.uniform(-0.01, 0.01), 7),
               "lon": round(103.7191 + rng.uniform(-0.01, 0.01), 7), "m": 1, "t": "u", "tid": "ph", "tst": tst, "vac": 3,
               "vel": rng.randrange(0, 6)}
        messages.append((f"owntracks/{user}/{device}", json.dumps(doc, separators=(",", ":")).encode()))

    def run() -> int:
        return sum(type(decode_owntracks(topic, payload, devices, rx_ms)) is OwnTracksLocation for topic, payload in messages)

    return run, n, n, sum(len(p) for _, p in messages)


def sensor_case(n: int, now_s: float, rx_ms: int) -> Case:
    rng = random.Random(22)
    sensors = build_fleet(DEMO_CITY, 0, 0, 12).sensors
    payloads = []
    for i in range(n):
        sensor = sensors[i % len(sensors)]
        kind = "status" if i % 10 else "alarm"
        alarm = {"manhole": "tilt", "bin": "full", "waterlog": "waterlog"}[sensor.type] if kind == "alarm" else None
        record = sensor.record(now_s - rng.uniform(0, 600), kind, rng, alarm)
        payloads.append((DeviceRef(sensor.device, DeviceClass.SENSOR, sensor.district), msgpack.packb(record)))

    def run() -> int:
        return sum(len(decode_sensor(payload, ref, rx_ms).readings) for ref, payload in payloads)

    return run, n, n, sum(len(p) for _, p in payloads)


def jt808_case(n: int, now_s: float, rx_ms: int) -> Case:
    rng = random.Random(808)
    wire = b"".join(location_frame(phone_of(i % 200), i, now_s - rng.randrange(0, 600), rng) for i in range(n))
    vehicle, wgs84 = DeviceClass.VEHICLE, Datum.WGS84

    def run() -> int:
        reader = FrameReader()
        fixes = 0
        for start in range(0, len(wire), READ_BYTES):
            for content in reader.feed(wire[start:start + READ_BYTES]):
                header, body = split_message(content)
                loc = decode_location(body)
                Fix("jt" + header.phone, vehicle, DISTRICT, loc.t_ms, loc.lat, loc.lon, rx_ms,
                    None, loc.speed_kmh / 3.6, float(loc.direction), float(loc.alt), None, wgs84, header.serial)
                fixes += 1
        return fixes

    return run, n, n, len(wire)


def _measure(cases: dict[str, Case]) -> dict[str, dict]:
    rows = {}
    print(f"{'decoder':<38}{'payloads':>9}{'records':>9}{'B/payload':>10}{'records/s':>12}{'µs/record':>11}")
    for name, (run, payloads, records, wire_bytes) in cases.items():
        seconds = _best_seconds(run, records)
        rate = records / seconds
        rows[name] = {"payloads": payloads, "records": records, "bytes_per_payload": round(wire_bytes / payloads, 1),
                      "best_seconds": round(seconds, 4), "records_per_second": round(rate), "us_per_record": round(1e6 / rate, 2)}
        print(f"{name:<38}{payloads:>9}{records:>9}{wire_bytes / payloads:>10.0f}{rate:>12,.0f}{1e6 / rate:>11.1f}")
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixes", type=int, default=20_000, help="fixes or records decoded per run, for each decoder")
    args = parser.parse_args(argv)
    n = args.fixes - args.fixes % BATCH or BATCH
    now_s = time.time()
    rx_ms = int(now_s * 1000)
    cases = handset_cases(n, now_s, rx_ms)
    cases["OwnTracks location (JSON)"] = owntracks_case(n, now_s, rx_ms)
    cases["sensor record (msgpack)"] = sensor_case(n, now_s, rx_ms)
    cases["JT/T 808 0x0200, framing + decode"] = jt808_case(n, now_s, rx_ms)
    # one CPU for the measurement, so the figures are one core's
    pinnable = hasattr(os, "sched_setaffinity")
    allowed = os.sched_getaffinity(0) if pinnable else set()
    cpu = min(allowed) if pinnable else None
    if pinnable:
        os.sched_setaffinity(0, {cpu})
    try:
        rows = _measure(cases)
    finally:
        if pinnable:
            os.sched_setaffinity(0, allowed)
    result = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "pinned_cpu": cpu,
        "runs": RUNS,
        "decoders": rows,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(f"written {RESULTS}")
    return result


if __name__ == "__main__":
    main()
