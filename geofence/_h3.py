"""h3's ``latlng_to_cell`` for the per-fix path, past its Python wrapper when it can be.

Written against h3 4.5.0 (the pin in pyproject.toml). h3's int API wraps each compiled
function in a Python one; for ``latlng_to_cell`` the wrapper returns the compiled
function's int as it is, so calling ``h3._cy.latlng_to_cell`` directly gives the same
cells and saves a quarter of the cost on the per-fix path. Another h3 build without that
private module gets the public function. tests/geofence/test_h3.py checks that both give
the same cells and that the fallback is taken when the private module is absent.
Nothing else in the project reaches into ``h3._``.
"""

from __future__ import annotations

from collections.abc import Callable

from h3.api import basic_int as h3

H3_VERSION = "4.5.0"

try:
    from h3._cy import latlng_to_cell as _compiled
except ImportError:  # another h3 build: the public function
    _compiled = None

COMPILED = _compiled is not None  # whether latlng_to_cell is the compiled function
latlng_to_cell: Callable[[float, float, int], int] = _compiled if _compiled is not None else h3.latlng_to_cell
