// Unit grids: the polygons that are the map when no tile layer is configured.
// Each street gets a hue, each community within it a shade of that hue, so street
// and community boundaries read at a glance without a base map.

const STREET_HUES = [200, 28, 140, 275, 52, 340, 170, 230, 95, 10];
const COMMUNITY_LIGHTNESS = [40, 58, 32, 50];
const NEAR_ZOOM = 15;
// Outlines are traced from edges that grids share; below this share of shared edges the
// grids do not meet vertex to vertex and tracing would outline every grid instead.
const MIN_SHARED_EDGE_SHARE = 0.3;

export class GridLayer {
  constructor(map, { tiled }) {
    this.map = map;
    this.tiled = tiled;
    this.byCode = new Map();
    this.entries = [];
    this.hovered = null;
    this.shades = new Map();
    this.layer = null;
    this.overlay = null;
    this.focused = null;
    this.focusTimer = 0;
    this.labels = L.layerGroup();
    map.createPane('gw-outlines').style.zIndex = 410;
    this.outlineRenderer = L.svg({ pane: 'gw-outlines' });
    map.createPane('gw-focus').style.zIndex = 420;
    this.focusRenderer = L.svg({ pane: 'gw-focus' });
    map.on('zoomend', () => this.updateLabelZoom());
  }

  get count() {
    return this.byCode.size;
  }

  codes() {
    return this.byCode.keys();
  }

  load(collection) {
    const features = (collection && collection.features) || [];
    this.assignShades(features);
    this.layer = L.geoJSON(features, {
      style: (feature) => this.styleFor(feature),
      interactive: false,
    });
    this.layer.eachLayer((layer) => {
      const props = layer.feature.properties;
      this.byCode.set(props.code, { layer, props });
      this.entries.push({ props, geometry: layer.feature.geometry, bounds: layer.getBounds() });
    });
    this.layer.addTo(this.map);
    for (const { layer, props } of this.byCode.values()) {
      const path = layer.getElement();
      if (!path) continue;
      path.setAttribute('data-code', props.code);
      path.setAttribute('data-street', props.street);
      path.setAttribute('data-community', props.community);
    }
    this.addOutlines(features);
    this.addLabels();
    this.labels.addTo(this.map);
    this.updateLabelZoom();
    return this.entries.length ? this.layer.getBounds() : null;
  }

  assignShades(features) {
    const streets = new Map();
    for (const { properties: p } of features) {
      if (!streets.has(p.street)) streets.set(p.street, new Set());
      streets.get(p.street).add(p.community);
    }
    [...streets.keys()].sort().forEach((street, i) => {
      const hue = STREET_HUES[i % STREET_HUES.length];
      [...streets.get(street)].sort().forEach((community, j) => {
        const lightness = COMMUNITY_LIGHTNESS[j % COMMUNITY_LIGHTNESS.length];
        this.shades.set(community, { hue, lightness });
      });
    });
  }

  baseStyle(feature) {
    const { hue, lightness } = this.shades.get(feature.properties.community) || { hue: 200, lightness: 50 };
    return {
      className: 'gw-grid',
      color: `hsl(${hue} 70% 72%)`,
      weight: 1,
      opacity: this.tiled ? 0.8 : 0.55,
      fillColor: `hsl(${hue} 65% ${lightness}%)`,
      fillOpacity: this.tiled ? 0.12 : 0.3,
    };
  }

  styleFor(feature) {
    const base = this.baseStyle(feature);
    const extra = this.overlay ? this.overlay(feature.properties) : null;
    return extra ? { ...base, ...extra } : base;
  }

  // Lays overrides(props) -> style options (or null) over every grid's base style; null
  // restores the base style. Hovering keeps working on top of either.
  setOverlay(overrides) {
    this.overlay = overrides;
    if (!this.layer) return;
    this.layer.resetStyle();
    const hovered = this.hovered;
    this.hovered = null;
    this.highlight(hovered);
  }

  element(code) {
    const entry = this.byCode.get(code);
    return entry ? entry.layer.getElement() : null;
  }

  bringToFront(codes) {
    for (const code of codes) {
      const entry = this.byCode.get(code);
      if (entry) entry.layer.bringToFront();
    }
  }

  codesWithin(prefix) {
    return [...this.byCode.keys()].filter((code) => code.startsWith(prefix));
  }

  boundsOf(codes) {
    let bounds = null;
    for (const code of codes) {
      const entry = this.byCode.get(code);
      if (!entry) continue;
      const b = entry.layer.getBounds();
      bounds = bounds ? bounds.extend(b) : L.latLngBounds(b.getSouthWest(), b.getNorthEast());
    }
    return bounds;
  }

  // "万里社区 · 培黎街道" for a grid, community or street code; null for unknown codes.
  placeName(code) {
    if (!code) return null;
    const grid = this.byCode.get(code);
    if (grid) return `${grid.props.community_name || grid.props.community} · ${grid.props.street_name || grid.props.street}`;
    for (const { props } of this.entries) {
      if (props.community === code) return `${props.community_name || code} · ${props.street_name || props.street}`;
      if (props.street === code) return props.street_name || code;
    }
    return null;
  }

  // Draws attention to some grids for a while: a bright pulsing outline above everything.
  focus(codes, durationMs) {
    this.unfocus();
    const features = codes.map((code) => this.byCode.get(code)).filter(Boolean).map((entry) => entry.layer.feature);
    if (!features.length) return;
    this.focused = L.geoJSON(features, {
      renderer: this.focusRenderer,
      interactive: false,
      style: { className: 'gw-focus', color: '#fde047', weight: 4, opacity: 1, fill: false },
    }).addTo(this.map);
    this.focused.eachLayer((layer) => {
      const path = layer.getElement();
      if (path) path.setAttribute('data-code', layer.feature.properties.code);
    });
    this.focusTimer = setTimeout(() => this.unfocus(), durationMs);
  }

  unfocus() {
    clearTimeout(this.focusTimer);
    if (this.focused) this.focused.remove();
    this.focused = null;
  }

  addOutlines(features) {
    const community = traceOutlines(features, (p) => p.community);
    const street = traceOutlines(features, (p) => p.street);
    if (!community || !street) return;
    const common = { renderer: this.outlineRenderer, interactive: false };
    L.layerGroup([
      L.polyline(community, { ...common, className: 'gw-community-edge', color: '#e2f1ff', weight: 1.8, opacity: 0.75 }),
      L.polyline(street, { ...common, className: 'gw-street-edge', color: '#ffffff', weight: 3, opacity: 0.9 }),
    ]).addTo(this.map);
  }

  addLabels() {
    const groups = new Map();
    for (const { props, bounds } of this.entries) {
      const centre = bounds.getCenter();
      for (const [kind, code, name] of [
        ['community', props.community, props.community_name],
        ['street', props.street, props.street_name],
      ]) {
        const key = `${kind}:${code}`;
        if (!groups.has(key)) groups.set(key, { kind, code, name: name || code, lat: 0, lng: 0, n: 0 });
        const g = groups.get(key);
        g.lat += centre.lat;
        g.lng += centre.lng;
        g.n += 1;
      }
    }
    for (const g of groups.values()) {
      const icon = L.divIcon({
        className: `gw-label gw-label--${g.kind}`,
        html: `<span data-code="${escapeHtml(g.code)}">${escapeHtml(g.name)}</span>`,
        iconSize: null,
      });
      L.marker([g.lat / g.n, g.lng / g.n], { icon, interactive: false, keyboard: false }).addTo(this.labels);
    }
  }

  updateLabelZoom() {
    const near = this.map.getZoom() >= NEAR_ZOOM;
    const container = this.map.getContainer();
    container.classList.toggle('gw-zoom-near', near);
    container.classList.toggle('gw-zoom-far', !near);
  }

  info(code) {
    const entry = code && this.byCode.get(code);
    return entry ? entry.props : null;
  }

  find(latlng) {
    for (const { props, geometry, bounds } of this.entries) {
      if (bounds.contains(latlng) && geometryContains(geometry, latlng.lng, latlng.lat)) return props;
    }
    return null;
  }

  highlight(code) {
    if (code === this.hovered) return;
    const previous = this.hovered && this.byCode.get(this.hovered);
    if (previous) this.layer.resetStyle(previous.layer);
    this.hovered = code;
    const current = code && this.byCode.get(code);
    if (current) {
      current.layer.setStyle({ color: '#ffffff', weight: 2.5, opacity: 1 });
      current.layer.bringToFront();
    }
  }
}

// Boundary segments of the areas formed by grouping grids by key: an edge that two grids
// of the same group share is interior and cancels out. Null when grids do not share edges.
function traceOutlines(features, keyOf) {
  const edges = new Map();
  let total = 0;
  for (const { properties, geometry } of features) {
    const polygons = geometry.type === 'Polygon' ? [geometry.coordinates] : geometry.coordinates;
    const group = keyOf(properties);
    for (const polygon of polygons) {
      const ring = polygon[0];
      for (let i = 1; i < ring.length; i++) {
        const a = ring[i - 1];
        const b = ring[i];
        const ka = `${a[0].toFixed(7)},${a[1].toFixed(7)}`;
        const kb = `${b[0].toFixed(7)},${b[1].toFixed(7)}`;
        if (ka === kb) continue;
        const key = `${group}|${ka < kb ? `${ka}|${kb}` : `${kb}|${ka}`}`;
        const edge = edges.get(key);
        if (edge) edge.count += 1;
        else edges.set(key, { a, b, count: 1 });
        total += 1;
      }
    }
  }
  let shared = 0;
  const segments = [];
  for (const edge of edges.values()) {
    if (edge.count > 1) shared += edge.count;
    else segments.push([[edge.a[1], edge.a[0]], [edge.b[1], edge.b[0]]]);
  }
  if (!total || shared / total < MIN_SHARED_EDGE_SHARE) return null;
  return segments;
}

function geometryContains(geometry, x, y) {
  if (geometry.type === 'Polygon') return polygonContains(geometry.coordinates, x, y);
  if (geometry.type === 'MultiPolygon') return geometry.coordinates.some((p) => polygonContains(p, x, y));
  return false;
}

function polygonContains(rings, x, y) {
  if (!rings.length || !ringContains(rings[0], x, y)) return false;
  for (let i = 1; i < rings.length; i++) if (ringContains(rings[i], x, y)) return false;
  return true;
}

function ringContains(ring, x, y) {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i];
    const [xj, yj] = ring[j];
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

export function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
