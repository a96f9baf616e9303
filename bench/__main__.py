"""Run the benchmarks: python -m bench [NAME ...] (or ./gridwatch bench [NAME ...]).

NAME is one of ingest, protocols, jt808, geofence, overload, faults, access, fanout, incidents, screenshots;
none runs them all. Each prints its table and writes bench/results/NAME.json (screenshots: the
map's PNGs under bench/results/screenshots/).
"""

import importlib
import sys

NAMES = ("ingest", "protocols", "jt808", "geofence", "overload", "faults", "access", "fanout", "incidents", "screenshots")

wanted = [a for a in sys.argv[1:] if not a.startswith("-")] or list(NAMES)
unknown = [n for n in wanted if n not in NAMES]
if unknown:
    sys.exit(f"unknown benchmark(s) {unknown}; choose from {', '.join(NAMES)}")
for name in wanted:
    print(f"\n=== bench.{name}", flush=True)
    importlib.import_module(f"bench.{name}").main([])
