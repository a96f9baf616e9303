// Without a base map the streets are where the unit grids meet: grids are bounded by roads
// and rivers. Every grid edge is drawn as a band about a street's width, under the grids'
// translucent fills, so the city reads as blocks between roads; it lies below the grids so
// a hovered, focused or unvisited grid's outline is never covered.

const ROAD_WIDTH_M = 12;
const MIN_PX = 1.5;
const MAX_PX = 12;

export class RoadGaps {
  constructor(map, features) {
    this.map = map;
    map.createPane('gw-roads').style.zIndex = 350;
    this.line = L.polyline(uniqueEdges(features), {
      renderer: L.svg({ pane: 'gw-roads' }),
      interactive: false,
      className: 'gw-road',
      color: '#3d6489',
      opacity: 0.95,
      lineCap: 'round',
      weight: this.widthPx(),
    }).addTo(map);
    map.on('zoomend', () => this.line.setStyle({ weight: this.widthPx() }));
  }

  widthPx() {
    const centre = this.map.getCenter();
    const metresPerPx = (40075016.686 * Math.cos((centre.lat * Math.PI) / 180)) / (256 * 2 ** this.map.getZoom());
    return Math.min(MAX_PX, Math.max(MIN_PX, ROAD_WIDTH_M / metresPerPx));
  }
}

function uniqueEdges(features) {
  const edges = new Map();
  for (const { geometry } of features) {
    if (!geometry) continue;
    const polygons = geometry.type === 'Polygon' ? [geometry.coordinates] : geometry.type === 'MultiPolygon' ? geometry.coordinates : [];
    for (const polygon of polygons) {
      const ring = polygon[0] || [];
      for (let i = 1; i < ring.length; i++) {
        const a = ring[i - 1];
        const b = ring[i];
        const ka = `${a[0].toFixed(7)},${a[1].toFixed(7)}`;
        const kb = `${b[0].toFixed(7)},${b[1].toFixed(7)}`;
        if (ka !== kb) edges.set(ka < kb ? `${ka}|${kb}` : `${kb}|${ka}`, [[a[1], a[0]], [b[1], b[0]]]);
      }
    }
  }
  return [...edges.values()];
}
