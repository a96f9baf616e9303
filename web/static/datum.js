// The page draws in the datum of its base map. The server speaks WGS-84 only; with the
// tiles of a Chinese map vendor (Amap and Tencent use GCJ-02, Baidu BD-09) every position
// must be shifted the same way or markers and grids sit 100–700 m off the streets. Every
// API payload and stream frame passes through toDisplay() once, on arrival; a converted
// object keeps its WGS-84 position as `wgs` for display. The formulas are those of
// protocols/coords.py (tested there against published pairs).

const A = 6378245.0;
const EE = 0.00669342162296594323;
const X_PI = (Math.PI * 3000.0) / 180.0;

function outsideChina(lat, lon) {
  return !(lon >= 72.004 && lon <= 137.8347 && lat >= 0.8293 && lat <= 55.8271);
}

function transformLat(x, y) {
  let r = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * Math.sqrt(Math.abs(x));
  r += ((20.0 * Math.sin(6.0 * x * Math.PI) + 20.0 * Math.sin(2.0 * x * Math.PI)) * 2.0) / 3.0;
  r += ((20.0 * Math.sin(y * Math.PI) + 40.0 * Math.sin((y / 3.0) * Math.PI)) * 2.0) / 3.0;
  r += ((160.0 * Math.sin((y / 12.0) * Math.PI) + 320 * Math.sin((y * Math.PI) / 30.0)) * 2.0) / 3.0;
  return r;
}

function transformLon(x, y) {
  let r = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * Math.sqrt(Math.abs(x));
  r += ((20.0 * Math.sin(6.0 * x * Math.PI) + 20.0 * Math.sin(2.0 * x * Math.PI)) * 2.0) / 3.0;
  r += ((20.0 * Math.sin(x * Math.PI) + 40.0 * Math.sin((x / 3.0) * Math.PI)) * 2.0) / 3.0;
  r += ((150.0 * Math.sin((x / 12.0) * Math.PI) + 300.0 * Math.sin((x / 30.0) * Math.PI)) * 2.0) / 3.0;
  return r;
}

export function wgsToGcj(lat, lon) {
  if (outsideChina(lat, lon)) return [lat, lon];
  let dLat = transformLat(lon - 105.0, lat - 35.0);
  let dLon = transformLon(lon - 105.0, lat - 35.0);
  const radLat = (lat / 180.0) * Math.PI;
  let magic = Math.sin(radLat);
  magic = 1 - EE * magic * magic;
  const sqrtMagic = Math.sqrt(magic);
  dLat = (dLat * 180.0) / (((A * (1 - EE)) / (magic * sqrtMagic)) * Math.PI);
  dLon = (dLon * 180.0) / ((A / sqrtMagic) * Math.cos(radLat) * Math.PI);
  return [lat + dLat, lon + dLon];
}

export function gcjToBd(lat, lon) {
  const z = Math.sqrt(lon * lon + lat * lat) + 0.00002 * Math.sin(lat * X_PI);
  const theta = Math.atan2(lat, lon) + 0.000003 * Math.cos(lon * X_PI);
  return [z * Math.sin(theta) + 0.006, z * Math.cos(theta) + 0.0065];
}

const CONVERTERS = {
  gcj02: wgsToGcj,
  bd09: (lat, lon) => gcjToBd(...wgsToGcj(lat, lon)),
};
const GEOMETRIES = new Set(['Point', 'MultiPoint', 'LineString', 'MultiLineString', 'Polygon', 'MultiPolygon']);

let convert = null;

export function setDatum(name) {
  convert = CONVERTERS[name] || null;
}

export function displayPoint(lat, lon) {
  return convert ? convert(lat, lon) : [lat, lon];
}

function positions(coords) {
  if (typeof coords[0] === 'number') {
    const [lat, lon] = convert(coords[1], coords[0]);
    return [lon, lat, ...coords.slice(2)];
  }
  return coords.map(positions);
}

export function toDisplay(value) {
  if (!convert || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(toDisplay);
  if (GEOMETRIES.has(value.type) && Array.isArray(value.coordinates)) {
    return { ...value, coordinates: positions(value.coordinates) };
  }
  const out = {};
  for (const [key, item] of Object.entries(value)) out[key] = toDisplay(item);
  if (Number.isFinite(value.lat) && Number.isFinite(value.lon)) {
    [out.lat, out.lon] = convert(value.lat, value.lon);
    out.wgs = [value.lat, value.lon];
  }
  return out;
}
