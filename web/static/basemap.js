// The base map under the grids: the tile layers /api/config names (a preset of Tianditu,
// Amap or the city's own server, or the older single tile_url). The datum the tiles are
// drawn in is applied by datum.js from config.map_datum; here only the layers are made.

const MAX_ZOOM = 20;

export function tileLayers(config) {
  const basemap = config && config.basemap;
  if (basemap && Array.isArray(basemap.layers)) {
    return basemap.layers
      .filter((layer) => layer && typeof layer.url === 'string' && layer.url !== '')
      .map((layer) => ({
        url: layer.url,
        options: {
          subdomains: typeof layer.subdomains === 'string' && layer.subdomains ? layer.subdomains : 'abc',
          maxNativeZoom: Number.isFinite(layer.max_native_zoom) ? layer.max_native_zoom : 18,
          maxZoom: MAX_ZOOM,
          attribution: typeof layer.attribution === 'string' ? layer.attribution : '',
        },
      }));
  }
  const url = config && config.tile_url;
  return typeof url === 'string' && url !== '' ? [{ url, options: { maxZoom: MAX_ZOOM, maxNativeZoom: 18 } }] : [];
}

// Adds the base map's layers to the map; whether there are any.
export function addBaseMap(map, config) {
  const layers = tileLayers(config);
  const preset = (config && config.basemap && config.basemap.preset) || (layers.length ? 'custom' : 'none');
  map.getContainer().dataset.basemap = preset;
  for (const { url, options } of layers) L.tileLayer(url, { ...options, className: `gw-basemap gw-basemap--${preset}` }).addTo(map);
  return layers.length > 0;
}
