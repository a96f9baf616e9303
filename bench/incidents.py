"""Incidents benchmark: alarms to cases, and the case list over many stored cases.

1. An alarm storm into the case engine: ``--sensors`` component sensors (20,000) sending
   ``--rate`` alarm messages a second (1,000) for ``--seconds`` (60), open loop (each
   message is due at its instant whether or not the engine kept up). A sensor's alarms of
   one episode (until it recovers) carry one external id, so they are one case: the engine
   must create one case per episode, answer the repeats with the case already there, and
   lose nothing. Measured: alarm-to-case latency (from the message's due instant to the
   engine's answer) p50/p99, cases created, deduplicated and lost. The messages go to
   ``CaseEngine.create`` directly (as a source acting for a device does): the MQTT alarm
   path into the engine is not part of this run.
2. ``GET /api/cases`` as the engine answers it (first page of 50, newest first; and with
   the state, category, street and overdue filters; as a city and as a district account)
   over the cases of the storm (the baseline) and then over ``--stored`` (100,000) cases,
   bulk-loaded through the store.
Prints a table and writes bench/results/incidents.json.

    python -m bench.incidents [--sensors 20000] [--rate 1000] [--seconds 60] [--stored 100000]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import trio

from alerts.cases.lifecycle import CaseState
from bench.machine import describe
from geofence.index import GridIndex
from protocols.epoch import ms_to_datetime
from tracker.app.service import import_grids
from tracker.cases.engine import CaseEngine, NewCase
from tracker.cases.roles import SERVICE, Actor
from tracker.config import CasesSettings
from tracker.devcity.city import PATH as DEMO_CITY
from tracker.devcity.credentials import kept_passwords
from tracker.devcity.hotline import grid_centres
from tracker.devcity.starters import start_postgres
from tracker.devcity.taxonomy import PATH as DEMO_TAXONOMY
from tracker.storage.store import Store, open_store

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
NEW_EPISODE = 0.25  # the chance that a sensor's next alarm is of a new episode (it recovered in between)
WORKERS = 8  # concurrent creates: the store's pool is the limit, not this
LIST_ROUNDS = 30
BATCH = 10_000


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


async def storm(engine: CaseEngine, args: argparse.Namespace, centres: list[tuple[float, float]],
                category: str) -> dict[str, Any]:
    rng = random.Random(11)
    sensors = [(f"620105{category[1:5]}{i:06d}", *rng.choice(centres)) for i in range(args.sensors)]
    episode = [0] * args.sensors
    total = int(args.rate * args.seconds)
    send, receive = trio.open_memory_channel[tuple[float, NewCase]](total)
    latencies: list[float] = []
    outcome = {"created": 0, "deduplicated": 0, "errors": 0}
    episodes: set[str] = set()

    async def worker(channel: trio.MemoryReceiveChannel[tuple[float, NewCase]]) -> None:
        async for due, new in channel:
            try:
                _, created = await engine.create(new, Actor(SERVICE.account, SERVICE.role, None, device=new.reporter,
                                                            source="bench"))
            except Exception:  # counted, not raised: a storm goes on
                outcome["errors"] += 1
                continue
            latencies.append(time.perf_counter() - due)
            outcome["created" if created else "deduplicated"] += 1

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(WORKERS):
            nursery.start_soon(worker, receive.clone())
        await receive.aclose()
        async with send:
            for n in range(total):
                due = start + n / args.rate
                wait = due - time.perf_counter()
                if wait > 0:
                    await trio.sleep(wait)
                i = rng.randrange(args.sensors)
                if rng.random() < NEW_EPISODE:
                    episode[i] += 1
                code, lat, lon = sensors[i]
                external = f"{code}:cover_open:{episode[i]}"
                episodes.add(external)
                send.send_nowait((due, NewCase("sensor", category, "井盖移位报警", lat, lon, external_id=external,
                                               reporter=code)))
        offered_s = time.perf_counter() - start
    drained_s = time.perf_counter() - start
    handled = outcome["created"] + outcome["deduplicated"]
    return {"sensors": args.sensors, "rate": args.rate, "seconds": args.seconds, "messages": total,
            "episodes": len(episodes), **outcome, "lost": total - handled - outcome["errors"],
            "cases_missing": len(episodes) - outcome["created"],
            "latency_ms": {"p50": percentile(latencies, 0.5) * 1000, "p99": percentile(latencies, 0.99) * 1000,
                           "max": max(latencies, default=float("nan")) * 1000},
            "offered_s": offered_s, "drained_s": drained_s, "achieved_per_s": handled / drained_s}


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


async def measure(dsn: str, args: argparse.Namespace) -> dict[str, Any]:
    async with open_store(dsn) as store:
        await store.migrate()
        await import_grids(store, str(DEMO_CITY), 12)
        index = GridIndex(12, await store.grid_cells())
        engine = CaseEngine(store, CasesSettings().calendar(), clock_ms=lambda: int(time.time() * 1000), index=index)
        version, taxonomy, _ = await engine.load_taxonomy(DEMO_TAXONOMY.read_text(encoding="utf-8"), SERVICE)
        component = sorted(c for c in taxonomy.categories if c.startswith("C"))[0]
        centres = grid_centres(DEMO_CITY)
        print(f"alarm storm: {args.sensors} sensors, {args.rate}/s for {args.seconds} s …", file=sys.stderr)
        storm_figures = await storm(engine, args, centres, component)
        street = next(p.street for p in (index.place(*c) for c in centres) if p is not None)
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
        return {"storm": storm_figures, "list": {"baseline_cases": stored_before, "baseline": baseline,
                                                 "stored_cases": await _count(store), "stored": loaded,
                                                 "bulk_load_s": load_s}}


async def _count(store: Store) -> int:
    return int((await store.fetch("SELECT count(*) AS n FROM cases"))[0]["n"])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench.incidents", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sensors", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--stored", type=int, default=100_000)
    args = parser.parse_args(argv)
    state = Path(tempfile.mkdtemp(prefix="gridwatch-bench-incidents-"))
    passwords = kept_passwords(state / "secrets", ("postgres", "gridwatch"))
    print("starting PostgreSQL …", file=sys.stderr)
    pg = start_postgres(state, durable=False, superuser_password=passwords["postgres"], role_password=passwords["gridwatch"])
    try:
        results: dict = {**describe(), **trio.run(measure, pg.dsn, args)}
    finally:
        pg.discard()
    _print(results)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "incidents.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    return results


def _print(r: dict) -> None:
    m, s, lst = r["machine"], r["storm"], r["list"]
    print(f"\nIncidents benchmark — {m['cpus']} cores, {m['cpu']}, Python {m['python']}")
    print(f"  alarm storm into CaseEngine.create: {s['sensors']} sensors, {s['rate']:g}/s offered for {s['seconds']:g} s"
          f" ({s['messages']} messages, {s['episodes']} episodes)")
    print(f"    alarm-to-case latency  p50 {s['latency_ms']['p50']:.1f} ms  p99 {s['latency_ms']['p99']:.1f} ms"
          f"  max {s['latency_ms']['max']:.1f} ms")
    print(f"    cases created {s['created']}, deduplicated {s['deduplicated']}, lost {s['lost']}, errors {s['errors']},"
          f" episodes without a case {s['cases_missing']}")
    print(f"    achieved {s['achieved_per_s']:.0f} messages/s (drained in {s['drained_s']:.1f} s)")
    print(f"  /api/cases page of 50 (engine.list), p50 / p99 ms: {lst['baseline_cases']} cases | "
          f"{lst['stored_cases']} cases (bulk load {lst['bulk_load_s']:.1f} s)")
    for name, figures in lst["baseline"].items():
        after = lst["stored"][name]
        print(f"    {name:<22} {figures['p50_ms']:7.2f} / {figures['p99_ms']:7.2f}   |  "
              f"{after['p50_ms']:7.2f} / {after['p99_ms']:7.2f}")


if __name__ == "__main__":
    main()
