"""Base map presets: the tile URL templates of each service and the datum its tiles are
drawn in; `[web] basemap` and its keys as the configuration checks them."""

from __future__ import annotations

import pytest

from tests.harness import REPO
from tracker.app.web_edge import map_settings
from tracker.config import ConfigError, load
from web.basemaps import base_map


def test_tianditu_draws_the_vector_map_and_its_annotation_with_the_citys_key_unshifted():
    tianditu = base_map("tianditu", tianditu_key="0123abcdef")
    assert (tianditu.preset, tianditu.datum, tianditu.display_datum) == ("tianditu", "cgcs2000", "wgs84")
    vec, cva = tianditu.layers
    assert vec.url.startswith("//t{s}.tianditu.gov.cn/vec_w/wmts?SERVICE=WMTS&REQUEST=GetTile")
    assert cva.url.startswith("//t{s}.tianditu.gov.cn/cva_w/wmts?")
    for layer, name in ((vec, "vec"), (cva, "cva")):
        assert f"LAYER={name}&" in layer.url and "TILEMATRIXSET=w&" in layer.url
        assert layer.url.endswith("&TILEMATRIX={z}&TILEROW={y}&TILECOL={x}&tk=0123abcdef")
        assert layer.subdomains == "01234567" and "天地图" in layer.attribution


def test_amap_is_drawn_in_gcj02():
    amap = base_map("amap")
    assert (amap.datum, amap.display_datum) == ("gcj02", "gcj02")
    (layer,) = amap.layers
    assert layer.url == "//webrd0{s}.is.autonavi.com/appmaptile?lang=zh_cn&size=1&scale=1&style=8&x={x}&y={y}&z={z}"
    assert layer.subdomains == "1234"


def test_a_citys_own_server_names_its_datum_and_the_older_keys_still_work():
    own = base_map("custom", custom_url="https://tiles.city.gov.cn/{z}/{x}/{y}.png", custom_datum="gcj02")
    assert (own.preset, own.display_datum, own.layers[0].url) == ("custom", "gcj02", "https://tiles.city.gov.cn/{z}/{x}/{y}.png")
    legacy = base_map("none", legacy_url="/tiles/{z}/{x}/{y}.png", legacy_datum="bd09")
    assert (legacy.preset, legacy.display_datum, legacy.layers[0].url) == ("custom", "bd09", "/tiles/{z}/{x}/{y}.png")
    assert base_map("none", legacy_datum="gcj02").to_dict() == {"preset": "none", "datum": "gcj02", "layers": []}


@pytest.mark.parametrize(("preset", "keys", "named"), [
    ("google", {}, "[web] basemap"),
    ("tianditu", {}, "[web] tianditu_key"),
    ("tianditu", {"tianditu_key": "x&evil=1"}, "[web] tianditu_key"),
    ("custom", {"custom_url": "https://tiles.city.gov.cn/tile.png"}, "[web] custom_url"),
    ("custom", {"custom_url": "javascript:{z}{x}{y}"}, "[web] custom_url"),
    ("custom", {"custom_url": "/t/{z}/{x}/{y}.png", "custom_datum": "bd09"}, "[web] custom_datum"),
])
def test_a_preset_without_what_it_needs_is_refused_naming_the_key(preset: str, keys: dict[str, str], named: str):
    with pytest.raises(ValueError, match=named.replace("[", r"\[").replace("]", r"\]")):
        base_map(preset, **keys)


def test_the_configuration_checks_the_keys_and_the_page_config_carries_the_preset():
    environ = {"TRACKER_WEB__BASEMAP": "tianditu", "TRACKER_WEB__TIANDITU_KEY": "abc123"}
    web = map_settings(load(REPO / "config.toml", environ=environ))
    assert web.basemap is not None and web.basemap.preset == "tianditu" and web.map_datum == "wgs84"
    assert web.tile_url.endswith("tk=abc123")
    amap = map_settings(load(REPO / "config.toml", environ={"TRACKER_WEB__BASEMAP": "amap"}))
    assert amap.map_datum == "gcj02"
    with pytest.raises(ConfigError, match="tianditu_key"):
        load(REPO / "config.toml", environ={"TRACKER_WEB__BASEMAP": "tianditu"})
    with pytest.raises(ConfigError, match="custom_url"):
        load(REPO / "config.toml", environ={"TRACKER_WEB__BASEMAP": "custom"})
    assert map_settings(load(REPO / "config.toml", environ={})).basemap.preset == "none"  # type: ignore[union-attr]
