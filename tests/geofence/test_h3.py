"""The H3 cell function of the per-fix path (geofence/_h3.py): with the pinned h3 it is the
compiled function, it gives the cells (and errors) of h3's public one, and without h3's
private module the public function is what the index gets."""

from __future__ import annotations

import importlib.util
import sys
import tomllib
from pathlib import Path

import h3
import h3._cy
import pytest
from h3.api import basic_int as public
from hypothesis import given, settings, strategies as st

import geofence._h3 as adapter
import geofence.index

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
anything = st.floats(allow_nan=True, allow_infinity=True)


def outcome(fn, *args):
    try:
        return fn(*args)
    except Exception as exc:  # the error is the outcome compared
        return type(exc)


def load_adapter_afresh(name: str):
    """A fresh copy of geofence/_h3.py, run now: what an import would give."""
    spec = importlib.util.spec_from_file_location(name, adapter.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_pinned_h3_build_gives_the_compiled_function_to_the_index():
    # an h3 upgrade must come through the adapter: its private module is checked here
    assert f"h3=={adapter.H3_VERSION}" in tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    assert h3.__version__ == adapter.H3_VERSION
    assert adapter.COMPILED
    assert adapter.latlng_to_cell is h3._cy.latlng_to_cell
    assert geofence.index.latlng_to_cell is adapter.latlng_to_cell


@settings(max_examples=300, deadline=None)
@given(lat=st.floats(-90, 90), lon=st.floats(-180, 180), res=st.integers(0, 15))
def test_the_compiled_and_the_public_function_give_the_same_cells(lat, lon, res):
    assert adapter.latlng_to_cell(lat, lon, res) == public.latlng_to_cell(lat, lon, res)


@settings(max_examples=300, deadline=None)
@given(lat=anything, lon=anything, res=st.integers(-2, 17))
def test_the_compiled_and_the_public_function_agree_on_any_input_errors_included(lat, lon, res):
    assert outcome(adapter.latlng_to_cell, lat, lon, res) == outcome(public.latlng_to_cell, lat, lon, res)


def test_without_h3s_private_module_the_public_function_is_used(monkeypatch):
    monkeypatch.setitem(sys.modules, "h3._cy", None)  # makes `from h3._cy import ...` fail
    with pytest.raises(ImportError):
        from h3._cy import latlng_to_cell  # noqa: F401 - the import itself is the check
    fallback = load_adapter_afresh("geofence._h3_without_cy")
    assert not fallback.COMPILED
    assert fallback.latlng_to_cell is public.latlng_to_cell
    assert fallback.latlng_to_cell(36.06, 103.835, 12) == adapter.latlng_to_cell(36.06, 103.835, 12)
