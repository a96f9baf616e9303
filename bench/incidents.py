"""Incidents benchmark: an alarm storm through the real path, and the case list over many cases.

1. An alarm storm: ``--sensors`` manhole covers (20,000; component codes of category C0101)
   publishing ``--rate`` sensor alarm messages a second (1,000) for ``--seconds`` (60), open
   loop over MQTT to ``gw/v1/620105/sensor/{device}/alarm``, into a ``tracker serve``
   process (the example taxonomy loaded, unregistered devices accepted, the tilt debounce
   off so the latency is the service's). A cover's records go alarm, recovery, alarm,
   recovery, alarm, then repeats of the alarm it is in: its first alarm opens a case under
   the default ``sensor:tilt`` rule, the recoveries and re-raises attach to that open case
   (deduplicated), and the repeats change nothing. Measured from the database after the
   drain: cases created (one per cover that alarmed), alarm entries attached, episodes
   without a case and alarm events left unconsumed (both must be 0), duplicate cases,
   alarm-to-case latency (the first alarm's send → the case's ``created_at``, and → its
   first timeline entry) p50/p99, and the rate the storm was consumed at. The baseline is
   the same storm at ``--baseline-rate`` (200/s) for ``--baseline-seconds`` (15).
2. ``GET /api/cases`` as the engine answers it (first page of 50, newest first; and with
   the state, category, street and overdue filters; as a city and as a district account)
   over the cases of the storms and then over ``--stored`` (100,000) more cases,
   bulk-loaded through the store.
Prints a table and writes bench/results/incidents.json.

    python -m bench.incidents [--sensors 20000] [--rate 1000] [--seconds 60] [--stored 100000]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import random
import statistics
import sys
import time
from array import array
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgpack
import trio

from alerts.cases.lifecycle import CaseState
from bench.ingest import USERS, Service, start_services
from bench.machine import describe
from bench.mqttload import RawPublisher, publish_packet
from geofence.index import GridIndex
from protocols.epoch import ms_to_datetime
from tracker.cases.engine import CaseEngine
from tracker.cases.roles import Actor
from tracker.config import CasesSettings
from tracker.devcity.city import PATH as DEMO_CITY
from tracker.devcity.hotline import grid_centres
from tracker.devcity.starters import Mosquitto, free_port
from tracker.devcity.taxonomy import PATH as DEMO_TAXONOMY
from tracker.storage.store import Store, open_store

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
DISTRICT = "620105"
PATTERN = 5  # records of a sensor that change its state: alarm, recovery, alarm, recovery, alarm
BASELINE_SERIALS = 500_000  # the baseline's sensors: serials of their own
DRAIN_S = 600.0
LIST_ROUNDS = 30
BATCH = 10_000


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


# --- the storm through the real path ------------------------------------------------------

def schedule(sensors: int, total: int, serial0: int, seed: int) -> list[tuple[int, str]]:
    """(sensor, kind) of each message: a sensor's records go alarm, recovery, alarm, recovery,
    alarm (five changes, one short of a flap), then repeats of the alarm it is still in."""
    rng = random.Random(seed)
    sent = [0] * sensors
    out = []
    for _ in range(total):
        i = rng.randrange(sensors)
        out.append((serial0 + i, "recovery" if sent[i] < PATTERN and sent[i] % 2 else "alarm"))
        sent[i] += 1
    return out


def _payload(serial: int, kind: str, t_ms: int) -> bytes:
    record = {"dev": f"mh-{serial:06d}", "comp": f"{DISTRICT}0101{serial:06d}", "t": t_ms, "kind": kind,
              "type": "manhole", "alarm": "tilt", "tilt": 35.5 if kind == "alarm" else 0.5, "bat": 87}
    return msgpack.packb(record)


def _publisher(port: int, plan: list[tuple[int, str]], rate: float, out: Any) -> None:
    """Open loop: message n is due at start + n / rate, sent in 10 ms ticks whether or not
    the service keeps up. Returns the wall time each message left."""
    start = time.time() + 1.0
    packets = [publish_packet(f"gw/v1/{DISTRICT}/sensor/mh-{serial:06d}/alarm",
                              _payload(serial, kind, int((start + n / rate) * 1000)), 0)
               for n, (serial, kind) in enumerate(plan)]
    pub = RawPublisher("127.0.0.1", port, "simulator", USERS["simulator"], f"bench-storm-{time.time_ns()}")
    pub.drain_acks()
    sent_at = array("d")
    n = 0
    while n < len(packets):
        now = time.time()
        due = min(len(packets), max(n, int((now - start) * rate) + 1)) if now >= start else n
        if due > n:
            pub.send(b"".join(packets[n:due]))
            sent_at.extend([time.time()] * (due - n))
            n = due
        time.sleep(0.01 if now >= start else start - now)
    pub.close()
    out.put((start, sent_at.tobytes()))


async def _db_figures(dsn: str, serial0: int, serials: int, since: float) -> dict[str, Any]:
    low, high = f"{DISTRICT}0101{serial0:06d}", f"{DISTRICT}0101{serial0 + serials - 1:06d}"
    async with open_store(dsn) as store:
        events = (await store.fetch(
            "SELECT count(*) AS n, count(*) FILTER (WHERE consumed_at IS NULL) AS pending,"
            " count(*) FILTER (WHERE raised) AS raised, max(consumed_at) AS last_consumed"
            " FROM alarm_events WHERE component BETWEEN $1 AND $2", low, high))[0]
        cases = await store.fetch(
            "SELECT c.id, split_part(c.external_id, ':', 1) AS component, c.created_at,"
            " (SELECT min(at) FROM case_timeline t WHERE t.case_id = c.id) AS first_entry,"
            " (SELECT count(*) FROM case_timeline t WHERE t.case_id = c.id AND t.action = 'alarm') AS repeats,"
            " (SELECT count(*) FROM case_timeline t WHERE t.case_id = c.id AND t.action = 'alarm_cleared') AS cleared"
            " FROM cases c WHERE c.source = 'sensor' AND split_part(c.external_id, ':', 1) BETWEEN $1 AND $2", low, high)
    return {"events": dict(events), "cases": [dict(c) for c in cases]}


def storm(broker: Mosquitto, dsn: str, sensors: int, rate: float, seconds: float, serial0: int,
          seed: int) -> dict[str, Any]:
    total = int(rate * seconds)
    plan = schedule(sensors, total, serial0, seed)
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    proc = ctx.Process(target=_publisher, args=(broker.port, plan, rate, out))
    proc.start()
    start, raw = out.get(timeout=seconds * 3 + 120)
    proc.join(30)
    sent_at = array("d")
    sent_at.frombytes(raw)
    published_s = sent_at[-1] - start if sent_at else float("nan")
    # the drain: until every event of the storm is consumed and no new one came for a while
    deadline, last, still = time.time() + DRAIN_S, None, 0.0
    while True:
        figures = trio.run(_db_figures, dsn, serial0, sensors, start)
        ev = figures["events"]
        if ev["pending"] == 0 and last == ev["n"] and time.time() - still > 3:
            break
        if last != ev["n"]:
            last, still = ev["n"], time.time()
        if time.time() > deadline:
            break
        time.sleep(1)
    drained_s = time.time() - start
    first_alarm: dict[str, float] = {}
    toggles: dict[str, int] = {}
    for n, (serial, _kind) in enumerate(plan):
        comp = f"{DISTRICT}0101{serial:06d}"
        first_alarm.setdefault(comp, sent_at[n])
        toggles[comp] = min(toggles.get(comp, 0) + 1, PATTERN)
    latencies, first_entry = [], []
    for case in figures["cases"]:
        sent = first_alarm.get(case["component"])
        if sent is not None:
            latencies.append(case["created_at"].timestamp() - sent)
            if case["first_entry"] is not None:
                first_entry.append(case["first_entry"].timestamp() - sent)
    with_case = {c["component"] for c in figures["cases"]}
    ev = figures["events"]
    span = (ev["last_consumed"].timestamp() - start) if ev["last_consumed"] else float("nan")
    return {"sensors": sensors, "rate": rate, "seconds": seconds, "messages": total,
            "published_s": published_s, "offered_met": published_s <= seconds * 1.05 + 0.1,
            "alarm_sensors": len(first_alarm),
            "events_expected": sum(toggles.values()), "events_recorded": ev["n"], "events_unconsumed": ev["pending"],
            "repeats_published": total - sum(toggles.values()),
            "cases_created": len(figures["cases"]),
            "duplicate_cases": len(figures["cases"]) - len(with_case),
            "deduplicated": sum(c["repeats"] for c in figures["cases"]),
            "cleared": sum(c["cleared"] for c in figures["cases"]),
            "episodes_without_case": len(set(first_alarm) - with_case),
            "latency_ms": {"p50": percentile(latencies, 0.5) * 1000, "p99": percentile(latencies, 0.99) * 1000,
                           "max": max(latencies, default=float("nan")) * 1000,
                           "first_entry_p50": percentile(first_entry, 0.5) * 1000,
                           "first_entry_p99": percentile(first_entry, 0.99) * 1000},
            "consumed_by_s": span, "events_per_s": ev["n"] - ev["pending"] and (ev["n"] - ev["pending"]) / span,
            "messages_per_s": total / span, "drained_s": drained_s}


async def list_latency(engine: CaseEngine, street: str, category: str) -> dict[str, dict[str, float]]:
    city = Actor("bench-city", "commander", None)
    district = Actor("bench-anning", "commander", "620105")
    queries = {
        "city, first page": (city, {}),
        "district, first page": (district, {}),
        "state=reported": (city, {"state": CaseState.REPORTED.value}),
        "category": (city, {"category": category}),
        "street": (city, {"street": street}),
        "overdue": (city, {"overdue": True}),
    }
    out = {}
    for name, (actor, filters) in queries.items():
        times = []
        for _ in range(LIST_ROUNDS):
            t0 = time.perf_counter()
            await engine.list(actor, limit=50, **filters)
            times.append(time.perf_counter() - t0)
        out[name] = {"p50_ms": statistics.median(times) * 1000, "p99_ms": percentile(times, 0.99) * 1000}
    return out


def bulk_rows(count: int, version: int, category: str, centres: list[tuple[float, float]],
              index: GridIndex, now_ms: int) -> list[dict]:
    rng = random.Random(5)
    states = [s.value for s in CaseState]
    rows = []
    for n in range(count):
        lat, lon = rng.choice(centres)
        place = index.place(lat, lon)
        created = ms_to_datetime(now_ms - rng.randrange(90 * 86_400_000))
        state = rng.choice(states)
        open_ = state not in ("closed", "rejected")
        rows.append({"state": state, "source": "hotline", "external_id": f"bulk-{n}", "category": category,
                     "taxonomy_version": version, "urgent": rng.random() < 0.1, "description": "", "lat": lat, "lon": lon,
                     "district": place.district if place else None, "street": place.street if place else None,
                     "community": place.community if place else None, "grid": place.grid if place else None,
                     "stage": "handle" if open_ else None, "stage_started": created if open_ else None,
                     "stage_due": created + timedelta(hours=4) if open_ else None,
                     "stage_warn": created + timedelta(hours=3) if open_ else None,
                     "created_at": created, "updated_at": created})
    return rows


async def measure_list(dsn: str, args: argparse.Namespace) -> dict[str, Any]:
    async with open_store(dsn) as store:
        index = GridIndex(12, await store.grid_cells())
        engine = CaseEngine(store, CasesSettings().calendar(), clock_ms=lambda: int(time.time() * 1000), index=index)
        version, taxonomy = await engine.taxonomy()
        component = sorted(c for c in taxonomy.categories if c.startswith("C"))[0]
        centres = grid_centres(DEMO_CITY)
        street = next(p.street for p in (index.place(*c) for c in centres) if p is not None)
        await store.fetch("ANALYZE cases")
        baseline = await list_latency(engine, street, component)
        stored_before = await _count(store)
        print(f"bulk-loading {args.stored} cases …", file=sys.stderr)
        t0 = time.perf_counter()
        rows = bulk_rows(args.stored, version, component, centres, index, engine.clock_ms())
        for i in range(0, len(rows), BATCH):
            await store.bulk_insert_cases(rows[i:i + BATCH])
        await store.fetch("ANALYZE cases")
        load_s = time.perf_counter() - t0
        loaded = await list_latency(engine, street, component)
        return {"baseline_cases": stored_before, "baseline": baseline, "stored_cases": await _count(store),
                "stored": loaded, "bulk_load_s": load_s}


async def _count(store: Store) -> int:
    return int((await store.fetch("SELECT count(*) AS n FROM cases"))[0]["n"])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench.incidents", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sensors", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--baseline-rate", type=float, default=200.0)
    parser.add_argument("--baseline-seconds", type=float, default=15.0)
    parser.add_argument("--stored", type=int, default=100_000)
    args = parser.parse_args(argv)
    state, broker, pg = start_services()
    results: dict = {**describe()}
    try:
        service = Service(broker.port, pg.dsn, free_port(), state, extra_env={
            "TRACKER_CASES__TAXONOMY": str(DEMO_TAXONOMY),
            # the latency measured is the service's, not the cover's 2 s wait against passing traffic
            "TRACKER_SENSORS__TILT_DEBOUNCE_MS": "0"})
        try:
            # the baseline: the same storm, fewer sensors' worth, at a rate the intake meets
            print(f"baseline storm: {args.baseline_rate:g}/s for {args.baseline_seconds:g} s …", file=sys.stderr)
            results["baseline"] = storm(broker, pg.dsn, args.sensors, args.baseline_rate, args.baseline_seconds,
                                        BASELINE_SERIALS, 7)
            print(f"alarm storm: {args.sensors} sensors, {args.rate:g}/s for {args.seconds:g} s …", file=sys.stderr)
            results["storm"] = storm(broker, pg.dsn, args.sensors, args.rate, args.seconds, 0, 11)
        finally:
            service.stop()
        results["list"] = trio.run(measure_list, pg.dsn, args)
    finally:
        pg.discard()
        broker.discard()
    _print(results)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "incidents.json").write_text(json.dumps(results, indent=2, ensure_ascii=False, default=str) + "\n")
    return results


def _print(r: dict) -> None:
    m, lst = r["machine"], r["list"]
    print(f"\nIncidents benchmark — {m['cpus']} cores, {m['cpu']}, Python {m['python']}")
    print("  alarm storm: MQTT → tracker serve → alarm_events → intake → cases (figures from the database)")
    rows = [("offered", lambda s: f"{s['rate']:g}/s × {s['seconds']:g} s"),
            ("messages (alarm sensors)", lambda s: f"{s['messages']} ({s['alarm_sensors']})"),
            ("published in", lambda s: f"{s['published_s']:.1f} s" + ("" if s["offered_met"] else " NOT MET")),
            ("alarm events expected/recorded", lambda s: f"{s['events_expected']}/{s['events_recorded']}"),
            ("cases created (one per episode)", lambda s: f"{s['cases_created']}"),
            ("alarm again, attached (dedup.)", lambda s: f"{s['deduplicated']}"),
            ("cleared, attached", lambda s: f"{s['cleared']}"),
            ("repeats dropped by sensor rules", lambda s: f"{s['repeats_published']}"),
            ("lost: episodes without a case", lambda s: f"{s['episodes_without_case']}"),
            ("lost: events left unconsumed", lambda s: f"{s['events_unconsumed']}"),
            ("duplicate cases", lambda s: f"{s['duplicate_cases']}"),
            ("alarm→case latency p50/p99", lambda s: f"{s['latency_ms']['p50']:.0f}/{s['latency_ms']['p99']:.0f} ms"),
            ("alarm→first entry p50/p99", lambda s: f"{s['latency_ms']['first_entry_p50']:.0f}/"
                                                    f"{s['latency_ms']['first_entry_p99']:.0f} ms"),
            ("all consumed after", lambda s: f"{s['consumed_by_s']:.1f} s"),
            ("sustained messages/s", lambda s: f"{s['messages_per_s']:.0f}")]
    print(f"    {'':<34}{'baseline':>22}{'storm':>22}")
    for name, cell in rows:
        print(f"    {name:<34}{cell(r['baseline']):>22}{cell(r['storm']):>22}")
    print(f"  /api/cases page of 50 (engine.list), p50 / p99 ms: {lst['baseline_cases']} cases | "
          f"{lst['stored_cases']} cases (bulk load {lst['bulk_load_s']:.1f} s)")
    for name, figures in lst["baseline"].items():
        after = lst["stored"][name]
        print(f"    {name:<22} {figures['p50_ms']:7.2f} / {figures['p99_ms']:7.2f}   |  "
              f"{after['p50_ms']:7.2f} / {after['p99_ms']:7.2f}")


if __name__ == "__main__":
    main()
