"""Overload benchmark: the service's memory while it is offered more than it can take.

On private Mosquitto and PostgreSQL instances, with the service as a `tracker serve`
subprocess (the project's broker configuration, default [pipeline] settings):
1. sustainable rate: single pings published at full speed, timed until persisted;
2. overload: paced publishers offer ``--factor`` times that rate for ``--seconds``,
   every ping from its own made-up device id (``--distinct``, default on) or from a fleet
   of ``--devices``; the service's resident memory is sampled every 0.2 s, and its peak
   (VmHWM) read when the backlog has drained;
3. what /metrics said: the broker's dropped messages, the queues' high marks, devices
   remembered and forgotten.
Prints a table and writes bench/results/overload.json.

    python -m bench.overload [--factor 3] [--seconds 30] [--publishers 2] [--devices 2000] [--distinct]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import threading
import time
from pathlib import Path

import msgpack

from bench.ingest import RESULTS, USERS, Service, _fix, measure_end_to_end, single_packets, start_services
from bench.machine import describe
from bench.mqttload import RawPublisher, publish_packet
from tracker.devcity.starters import free_port


def _paced(port: int, rate: float, seconds: float, devices: int, distinct: bool, offset: int, out) -> None:
    """Single pings at ``rate`` a second for ``seconds``; ``distinct``: a new device id each."""
    pub = RawPublisher("127.0.0.1", port, "simulator", USERS["simulator"], f"bench-overload-{offset}")
    tick = 0.01
    per_tick = max(1, int(rate * tick))
    start = time.perf_counter()
    sent = 0
    i = offset
    while time.perf_counter() - start < seconds:
        now_ms = int(time.time() * 1000)
        chunk = []
        for _ in range(per_tick):
            device = f"z{i:08d}" if distinct else f"o{i % devices:05d}"
            chunk.append(publish_packet(f"gw/v1/620105/collector/{device}/pos", msgpack.packb(_fix(i, now_ms, devices))))
            i += 1
        pub.send(b"".join(chunk))
        sent += per_tick
        delay = start + sent / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    elapsed = time.perf_counter() - start
    pub.close()
    out.put((sent, elapsed))


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class Sampler(threading.Thread):
    """The service's RSS and a few gauges, every 0.2 s, keeping each one's high mark."""

    GAUGES = ("gridwatch_inbound_queue_depth", "gridwatch_persist_queue_depth", "gridwatch_persist_lag_seconds",
              "gridwatch_devices_remembered")

    def __init__(self, service: Service) -> None:
        super().__init__(daemon=True)
        self.service = service
        self.high: dict[str, float] = {}
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.2):
            self._mark("rss_kib", _status_kib(self.service.proc.pid, "VmRSS"))
            for name in self.GAUGES:
                self._mark(name, self.service.metric(name))

    def _mark(self, name: str, value: float) -> None:
        self.high[name] = max(self.high.get(name, value), value)


def measure_overload(service: Service, port: int, rate: float, seconds: float, publishers: int, devices: int,
                     distinct: bool) -> dict:
    before = {name: service.metric(name) for name in ("gridwatch_broker_dropped_messages", "gridwatch_persisted_total",
                                                      "gridwatch_messages_total")}
    rss_before = _status_kib(service.proc.pid, "VmRSS")
    sampler = Sampler(service)
    sampler.start()
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_paced, args=(port, rate / publishers, seconds, devices, distinct, k * 100_000_000, out))
             for k in range(publishers)]
    for p in procs:
        p.start()
    results = [out.get(timeout=seconds + 120) for _ in procs]
    for p in procs:
        p.join(10)
    # the backlog drains: wait until nothing more is persisted for 5 s
    last, last_change = service.metric("gridwatch_persisted_total"), time.perf_counter()
    while time.perf_counter() - last_change < 5:
        time.sleep(0.25)
        now = service.metric("gridwatch_persisted_total")
        if now != last:
            last, last_change = now, time.perf_counter()
    time.sleep(6)  # one more $SYS report from the broker
    sampler.stopped.set()
    sampler.join()
    sent = sum(s for s, _ in results)
    received = service.metric("gridwatch_messages_total") - before["gridwatch_messages_total"]
    dropped = service.metric("gridwatch_broker_dropped_messages") - before["gridwatch_broker_dropped_messages"]
    return {"offered_rate": rate, "seconds": seconds, "sent": sent, "sent_rate": sent / max(e for _, e in results),
            "received": received, "broker_dropped": dropped,
            "persisted": service.metric("gridwatch_persisted_total") - before["gridwatch_persisted_total"],
            "rss_before_mib": rss_before / 1024, "rss_peak_sampled_mib": sampler.high.get("rss_kib", 0) / 1024,
            "vm_hwm_mib": _status_kib(service.proc.pid, "VmHWM") / 1024, "rss_after_mib": _status_kib(service.proc.pid, "VmRSS") / 1024,
            "high_marks": {k: v for k, v in sampler.high.items() if k != "rss_kib"},
            "devices_evicted": _labelled_sum(service, "gridwatch_devices_evicted_total")}


def _labelled_sum(service: Service, name: str) -> float:
    text = service.scrape()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + "{"))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--factor", type=float, default=3.0, help="offered rate as a multiple of the sustainable one")
    parser.add_argument("--rate", type=float, default=0.0, help="offered pings/s (default: factor x the measured sustainable rate)")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--publishers", type=int, default=2)
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--fleet", dest="distinct", action="store_false", help="a fleet of --devices ids instead of one id per ping")
    parser.add_argument("--messages", type=int, default=40000, help="single pings in the sustainable-rate run")
    args = parser.parse_args(argv)

    state, broker, pg = start_services()
    results: dict = {**describe()}
    try:
        service = Service(broker.port, pg.dsn, free_port(), state)
        try:
            sustainable = measure_end_to_end(service, broker.port, single_packets(args.messages, args.devices), args.messages)
            results["sustainable"] = sustainable
            rate = args.rate or args.factor * sustainable["rate_fixes_s"]
            results["overload"] = measure_overload(service, broker.port, rate, args.seconds, args.publishers, args.devices,
                                                   args.distinct)
        finally:
            service.stop()
    finally:
        pg.discard()
        broker.discard()
    _print(results)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "overload.json").write_text(json.dumps(results, indent=2))
    return results


def _print(r: dict) -> None:
    s, o = r["sustainable"], r["overload"]
    print(f"\nOverload benchmark — {r['machine']['cpus']} cores, {r['machine']['cpu']}, Python {r['machine']['python']}")
    print(f"sustainable, single pings:   {s['rate_fixes_s']:,.0f} fixes/s ({s['persisted']:,.0f}/{s['fixes']:,} persisted)")
    print(f"offered:                     {o['offered_rate']:,.0f}/s for {o['seconds']:.0f} s; sent {o['sent']:,} "
          f"({o['sent_rate']:,.0f}/s achieved)")
    print(f"received by the service:     {o['received']:,.0f}; persisted {o['persisted']:,.0f}; "
          f"dropped by the broker {o['broker_dropped']:,.0f}")
    print(f"service memory:              {o['rss_before_mib']:,.0f} MiB before, peak {o['vm_hwm_mib']:,.0f} MiB (VmHWM), "
          f"{o['rss_after_mib']:,.0f} MiB after")
    print(f"high marks:                  {json.dumps(o['high_marks'])}; devices forgotten {o['devices_evicted']:,.0f}")


if __name__ == "__main__":
    main()
