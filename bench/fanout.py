"""Fan-out benchmark: what the live map's district routing costs the service.

In-process, on the service's own live state and hub (tracker.live): 10,000 devices over
two districts (Anning 620105 and Qilihe 620103, half each), every one reporting once a
second, fanned out every broadcast tick (``[pipeline] broadcast_tick_ms``) to 50 clients
as the WebSocket endpoint takes their frames: 22 Anning maps, 22 Qilihe maps and 6 city
maps. Three ways over the same moves, interleaved, each repeated:

1. routed: the hub as it runs, one delta per watched district, each encoded once, the
   city's built from the same pieces (tracker.live.fanout);
2. unscoped: the baseline of one shared delta for every client (what the hub did before
   districts; every client then gets every device, so it is a floor, not an option);
3. per client: each client's delta filtered and encoded for it, the obvious alternative.

CPU is this process's CPU time (``time.process_time``) over the fan-out alone (the hub's
tick and every client taking its frames), not the moves fed into live state. Bytes are
the frames handed to the clients, which the WebSocket layer then writes. Prints a table
and writes bench/results/fanout.json.

    python -m bench.fanout [--devices 10000] [--clients-per-district 22] [--city-clients 6] [--seconds 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import trio

from bench.machine import describe
from geofence.placed import Placed
from protocols.model import DeviceClass, Fix
from tracker.config import PipelineSettings
from tracker.live.fanout import Client, Hub, encode_devices
from tracker.live.state import LiveState
from tracker.metrics import Metrics

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
DISTRICTS = ("620105", "620103")
CELL = 0x8C3DA9A4A4CC1FF
T0 = 1_795_000_000_000
MODES = ("routed", "unscoped", "per_client")


class PerClientHub(Hub):
    """Per-client filtering: each tick, every client's share of the moves is picked out
    and encoded for that client alone."""

    def tick(self) -> int:
        if not self.clients:
            self.live.dirty = set()
            return 0
        views = self.live.take_dirty()
        if not views:
            return 0
        for client in self.clients:
            mine = views if client.district is None else [v for v in views if v["district"] == client.district]
            if mine:
                client.offer_delta({v["id"]: v for v in mine}, encode_devices("delta", mine))
        return len(views)


def fleet(devices: int) -> tuple[LiveState, list[Fix]]:
    live = LiveState()
    fixes = []
    for n in range(devices):
        district = DISTRICTS[n % len(DISTRICTS)]
        fix = Fix(f"c{n:05d}", DeviceClass.COLLECTOR, district, T0, 36.1 + n * 1e-6, 103.7, T0, 5.0, 1.2, 90.0, None, 80.0)
        live.devices[fix.device] = Placed(fix, CELL, f"{district}001001001", False)
        fixes.append(fix)
    live.dirty = set()
    return live, fixes


def run_mode(mode: str, devices: int, per_district: int, city: int, ticks: int, tick_ms: int) -> dict:
    live, fixes = fleet(devices)
    hub_class: Callable[..., Hub] = PerClientHub if mode == "per_client" else Hub
    hub = hub_class(live, Metrics(), tick_ms, PipelineSettings().client_queue_devices)
    clients: list[Client] = []
    meant: list[str | None] = []  # the district each client's map is of
    for district in DISTRICTS:
        for _ in range(per_district):
            clients.append(hub.join(None if mode == "unscoped" else district))
            meant.append(district)
    clients += [hub.join(None) for _ in range(city)]
    meant += [None] * city
    per_tick = max(1, round(devices * tick_ms / 1000))  # every device once a second
    out = {"cpu_s": 0.0, "bytes": 0, "frames": 0, "moves": 0, "leaked": 0}

    async def main() -> None:
        cursor = 0
        for tick in range(ticks):
            t_ms = T0 + (tick + 1) * tick_ms
            for k in range(per_tick):  # the moves, as the pipeline places them: not timed
                fix = fixes[(cursor + k) % devices]
                moved = fix._replace(t_ms=t_ms, rx_ms=t_ms, lat=fix.lat + 1e-6)
                fixes[(cursor + k) % devices] = moved
                live.devices[moved.device] = Placed(moved, CELL, f"{moved.district}001001001", False)
                live.dirty.add(moved.device)
            cursor += per_tick
            out["moves"] += per_tick
            start = time.process_time()
            hub.tick()
            taken = [await client.next_frames(live) for client in clients]
            out["cpu_s"] += time.process_time() - start
            for district, frames in zip(meant, taken, strict=True):
                out["frames"] += len(frames)
                out["bytes"] += sum(len(f) for f in frames)
                if district is not None and tick % 50 == 0:  # a sample of the ticks, checked outside the timing
                    out["leaked"] += sum(d["district"] != district for f in frames for d in json.loads(f)["devices"])

    trio.run(main)
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=10_000, help="devices, half in each district, each moving once a second")
    parser.add_argument("--clients-per-district", type=int, default=22)
    parser.add_argument("--city-clients", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of moves per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each way, interleaved; the median is kept")
    args = parser.parse_args(argv)
    tick_ms = PipelineSettings().broadcast_tick_ms
    ticks = max(1, round(args.seconds * 1000 / tick_ms))
    runs: dict[str, list[dict]] = {mode: [] for mode in MODES}
    for n in range(args.repeat):
        for mode in MODES:
            print(f"run {n + 1}/{args.repeat}: {mode} …", file=sys.stderr)
            runs[mode].append(run_mode(mode, args.devices, args.clients_per_district, args.city_clients, ticks, tick_ms))
    results: dict = {**describe(), "devices": args.devices, "districts": list(DISTRICTS),
                     "clients": {"per_district": args.clients_per_district, "city": args.city_clients,
                                 "total": args.clients_per_district * len(DISTRICTS) + args.city_clients},
                     "tick_ms": tick_ms, "ticks": ticks, "seconds_of_moves": ticks * tick_ms / 1000, "repeat": args.repeat}
    for mode in MODES:
        chosen = sorted(runs[mode], key=lambda r: r["cpu_s"])[len(runs[mode]) // 2]
        seconds = ticks * tick_ms / 1000
        results[mode] = {
            "cpu_ms_per_tick": chosen["cpu_s"] * 1000 / ticks,
            "cpu_share_of_a_core": chosen["cpu_s"] / seconds,  # CPU seconds per second of moves
            "cpu_s_runs": [r["cpu_s"] for r in runs[mode]],
            "mb_to_clients_per_s": chosen["bytes"] / seconds / 1e6,
            "frames_per_s": chosen["frames"] / seconds,
            "moves_per_s": chosen["moves"] / seconds,
            "other_district_devices_seen": chosen["leaked"],
            "spread_cpu": (max(r["cpu_s"] for r in runs[mode]) - min(r["cpu_s"] for r in runs[mode])) / statistics.median(
                r["cpu_s"] for r in runs[mode]),
        }
    base = results["unscoped"]["cpu_ms_per_tick"]
    for mode in MODES:
        results[mode]["cpu_vs_unscoped"] = results[mode]["cpu_ms_per_tick"] / base
    _print(results)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "fanout.json").write_text(json.dumps(results, indent=2))
    return results


def _print(r: dict) -> None:
    m = r["machine"]
    c = r["clients"]
    print(f"\nFan-out benchmark — {m['cpus']} cores, {m['cpu']}, Python {m['python']}")
    print(f"{r['devices']:,} devices in 2 districts, each moving once a second; {c['total']} clients "
          f"({c['per_district']} per district, {c['city']} city); tick {r['tick_ms']} ms, {r['seconds_of_moves']:.0f} s of moves, "
          f"median of {r['repeat']}")
    print(f"{'measure':<42}{'routed':>14}{'unscoped':>14}{'per client':>14}")
    rows = (("CPU per tick, ms", "cpu_ms_per_tick", "{:.2f}"), ("CPU per second of moves, % of a core", "cpu_share_of_a_core", "{:.1%}"),
            ("CPU against unscoped", "cpu_vs_unscoped", "{:.2f}x"), ("to clients, MB/s", "mb_to_clients_per_s", "{:.1f}"),
            ("frames to clients, /s", "frames_per_s", "{:,.0f}"), ("other district's devices shown (sampled)", "other_district_devices_seen", "{:,}"),
            ("spread of CPU over runs", "spread_cpu", "{:.0%}"))
    for label, key, fmt in rows:
        print(f"{label:<42}" + "".join(f"{fmt.format(r[mode][key]):>14}" for mode in MODES))
    print("unscoped: every client gets every device (what scoping forbids); the floor routing is measured against.")


if __name__ == "__main__":
    main()
