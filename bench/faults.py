"""Fault bench: does the service lose or double anything when something goes wrong?

Each run streams numbered handset fixes (and manhole tilt alarm episodes) through a private
Mosquitto into the service, a real ``python -m tracker serve`` process, strikes one fault
mid-stream, and counts what PostgreSQL kept number by number (see bench.faultlab):

    baseline       no fault
    kill -9        SIGKILL of the service at 40 % of the fixes, then a restart
    SIGTERM        a clean stop at 40 %, then a restart
    broker restart Mosquitto stopped and started on the same port and persistence directory
    db stop        PostgreSQL stopped for --db-stop-s seconds while fixes keep coming
    3x burst       three times the rate for --burst-s seconds

Sizes default to the long versions (200,000 fixes at 2,000/s, a 120 s database stop, a 30 s
burst); ``--short`` runs 20,000 fixes, a 20 s stop and a 10 s burst, with 5 s of traffic before
each of those two faults and 10 s after (20 s and 40 s in the long versions). Prints a table and
writes bench/results/faults.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.faultlab import Lab, Outcome, Scenario, table
from bench.machine import describe

RESULTS = Path(__file__).resolve().parent / "results"
NAMES = ("baseline", "kill", "term", "broker", "db", "burst")


def scenarios(args: argparse.Namespace) -> list[Scenario]:
    common = {"rate": args.rate, "devices": args.devices, "qos": args.qos, "episodes": args.episodes, "settle_s": args.settle_s}
    lead, tail = args.lead_s, args.tail_s
    db_fixes = int(args.db_rate * (lead + args.db_stop_s + tail))
    burst_fixes = int(args.rate * (lead + args.burst_factor * args.burst_s + tail))
    every = {
        "baseline": Scenario("baseline", "none", args.fixes, **common),
        "kill": Scenario("kill -9", "kill", args.fixes, at=0.4, **common),
        "term": Scenario("SIGTERM", "term", args.fixes, at=0.4, **common),
        "broker": Scenario("broker restart", "broker", args.fixes, at=0.4, outage_s=args.broker_down_s, **common),
        "db": Scenario(f"db stop {args.db_stop_s:g} s", "db", db_fixes, at=args.db_rate * lead / db_fixes, outage_s=args.db_stop_s,
                       **{**common, "rate": args.db_rate, "settle_s": args.settle_s + args.db_stop_s}),
        "burst": Scenario(f"{args.burst_factor:g}x burst {args.burst_s:g} s", "burst", burst_fixes, at=args.rate * lead / burst_fixes,
                          burst_factor=args.burst_factor, burst_s=args.burst_s, **common),
    }
    return [every[name] for name in (args.only or NAMES)]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="20,000 fixes, a 20 s database stop, a 10 s burst")
    parser.add_argument("--fixes", type=int, help="fixes of the kill, SIGTERM, broker and baseline runs (200,000)")
    parser.add_argument("--rate", type=float, default=2000.0, help="fixes per second offered")
    parser.add_argument("--devices", type=int, default=1000, help="handsets the fixes are spread over")
    parser.add_argument("--qos", type=int, choices=(0, 1), default=1)
    parser.add_argument("--episodes", type=int, default=50, help="manhole tilt alarm episodes per run")
    parser.add_argument("--db-stop-s", type=float, help="how long PostgreSQL is stopped (120)")
    parser.add_argument("--db-rate", type=float, default=2000.0, help="fixes per second during the database stop run")
    parser.add_argument("--broker-down-s", type=float, default=1.0, help="how long Mosquitto is down")
    parser.add_argument("--burst-s", type=float, help="length of the burst (30)")
    parser.add_argument("--burst-factor", type=float, default=3.0)
    parser.add_argument("--settle-s", type=float, default=120.0, help="longest wait after the last fix for the database to catch up")
    parser.add_argument("--lead-s", type=float, help="db stop and burst runs: seconds of traffic before the fault (20)")
    parser.add_argument("--tail-s", type=float, help="db stop and burst runs: seconds of traffic after it (40)")
    parser.add_argument("--only", nargs="+", choices=NAMES, help="run only these")
    parser.add_argument("--out", type=Path, default=RESULTS / "faults.json")
    args = parser.parse_args(argv)
    short = args.short
    args.fixes = args.fixes or (20_000 if short else 200_000)
    args.db_stop_s = args.db_stop_s if args.db_stop_s is not None else (20.0 if short else 120.0)
    args.burst_s = args.burst_s if args.burst_s is not None else (10.0 if short else 30.0)
    args.lead_s = args.lead_s if args.lead_s is not None else (5.0 if short else 20.0)
    args.tail_s = args.tail_s if args.tail_s is not None else (10.0 if short else 40.0)

    outcomes: list[Outcome] = []
    with Lab(say=print) as lab:
        for scenario in scenarios(args):
            print(f"-- {scenario.name}: {scenario.fixes:,} fixes at {scenario.rate:,.0f}/s, QoS {scenario.qos}", flush=True)
            outcome = lab.run(scenario)
            outcomes.append(outcome)
            print(table([outcome]).splitlines()[1], flush=True)
            for note in outcome.notes:
                print(f"   {note}", flush=True)
    print()
    print(table(outcomes))
    results = {**describe(), "arguments": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
               "runs": [o.as_dict() for o in outcomes]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
