"""Run every benchmark: python -m bench (or ./gridwatch bench)."""

import sys

from bench import ingest

ingest.main(sys.argv[1:])
