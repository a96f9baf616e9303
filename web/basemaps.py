"""Base maps: the tile services Chinese city platforms draw under their grids.

Each preset names its tile URL templates and the datum its tiles are drawn in, so that the
page shifts every position and grid by the same offset (``web/static/datum.js``): Tianditu
(天地图, the national service) publishes in CGCS2000, which agrees with WGS-84 to a few
centimetres, so nothing moves; Amap (高德) publishes in GCJ-02, 100–700 m off WGS-84 in
China; a city's own WMTS/XYZ server says which of the two it uses. Templates are
protocol-relative (``//host/...``): the page asks for tiles over the scheme it was
served on, so a service behind TLS does not load tiles in the clear (mixed content).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PRESETS = ("none", "tianditu", "amap", "custom")
# CGCS2000 is listed apart from WGS-84 so a configuration says what its survey uses; both
# are drawn unshifted.
DATUMS = ("wgs84", "cgcs2000", "gcj02")

# Tianditu's Web Mercator ("_w") WMTS layers as XYZ: the vector map and its Chinese
# annotation (road and place names), the pair its own viewer shows. Eight hosts t0..t7.
TIANDITU_LAYER = ("//t{{s}}.tianditu.gov.cn/{layer}_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0"
                  "&LAYER={layer}&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles"
                  "&TILEMATRIX={{z}}&TILEROW={{y}}&TILECOL={{x}}&tk={key}")
TIANDITU_SUBDOMAINS = "01234567"
TIANDITU_ATTRIBUTION = "© 天地图 Tianditu (GS(2024)0568号)"
# Amap's raster road map (style 8: roads and names), hosts webrd01..webrd04.
AMAP_URL = "//webrd0{s}.is.autonavi.com/appmaptile?lang=zh_cn&size=1&scale=1&style=8&x={x}&y={y}&z={z}"
AMAP_SUBDOMAINS = "1234"
AMAP_ATTRIBUTION = "© 高德地图 AutoNavi"


@dataclass(frozen=True, slots=True)
class TileLayer:
    url: str  # Leaflet's template: {z}/{x}/{y}, {s} one of ``subdomains``
    subdomains: str = ""
    max_native_zoom: int = 18
    attribution: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "subdomains": self.subdomains, "max_native_zoom": self.max_native_zoom,
                "attribution": self.attribution}


@dataclass(frozen=True, slots=True)
class BaseMap:
    """What the page draws under the grids, and the datum it is drawn in."""

    preset: str = "none"
    datum: str = "wgs84"
    layers: tuple[TileLayer, ...] = field(default=())

    @property
    def display_datum(self) -> str:
        """The datum the page shifts positions to: CGCS2000 tiles take WGS-84 unshifted."""
        return "wgs84" if self.datum == "cgcs2000" else self.datum

    def to_dict(self) -> dict[str, Any]:
        return {"preset": self.preset, "datum": self.datum, "layers": [layer.to_dict() for layer in self.layers]}


def base_map(preset: str, *, tianditu_key: str = "", custom_url: str = "", custom_datum: str = "wgs84",
             legacy_url: str = "", legacy_datum: str = "wgs84") -> BaseMap:
    """The base map of ``[web] basemap``; ValueError naming the key that is wrong.

    ``legacy_url``/``legacy_datum``: the older ``[web] tile_url``/``map_datum``, used as a
    custom server while no preset is chosen."""
    if preset not in PRESETS:
        raise ValueError(f"[web] basemap must be one of {', '.join(PRESETS)}, not {preset!r}")
    if preset == "tianditu":
        key = tianditu_key.strip()
        if not key or not key.isalnum():
            raise ValueError("[web] tianditu_key must be the service's key (letters and digits) when basemap = \"tianditu\"")
        layers = tuple(TileLayer(TIANDITU_LAYER.format(layer=layer, key=key), TIANDITU_SUBDOMAINS, 18, TIANDITU_ATTRIBUTION)
                       for layer in ("vec", "cva"))
        return BaseMap("tianditu", "cgcs2000", layers)
    if preset == "amap":
        return BaseMap("amap", "gcj02", (TileLayer(AMAP_URL, AMAP_SUBDOMAINS, 18, AMAP_ATTRIBUTION),))
    if preset == "custom":
        _check_template("[web] custom_url", custom_url)
        if custom_datum not in DATUMS:
            raise ValueError(f"[web] custom_datum must be one of {', '.join(DATUMS)}, not {custom_datum!r}")
        return BaseMap("custom", custom_datum, (TileLayer(custom_url),))
    if legacy_url:
        # BD-09 tiles stay possible through the older keys: their datum shift is the page's
        _check_template("[web] tile_url", legacy_url)
        return BaseMap("custom", legacy_datum, (TileLayer(legacy_url),))
    return BaseMap("none", legacy_datum)


def _check_template(key: str, url: str) -> None:
    if not url or not all(part in url for part in ("{z}", "{x}", "{y}")):
        raise ValueError(f"{key} must be a tile URL template with {{z}}, {{x}} and {{y}}, not {url!r}")
    if not url.startswith(("http://", "https://", "//", "/")):
        raise ValueError(f"{key} must be an http(s) URL, a protocol-relative //host/... or a path, not {url!r}")
