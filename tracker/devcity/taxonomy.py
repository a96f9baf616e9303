"""The demo's example taxonomy (an illustration, not a city's adopted standard)."""

from pathlib import Path

PATH = Path(__file__).parent / "taxonomy.toml"
