// A sensor's readings in its details panel: the latest values (fill level, water level,
// tilt, gas, battery) from the live view, and a small chart of the last day from
// GET /api/devices/{id}/readings, one line for the sensor's main measure.

import { el, formatClock } from './format.js';

export const READINGS_WINDOW_MS = 24 * 60 * 60 * 1000;
const SVG = 'http://www.w3.org/2000/svg';
const WIDTH = 300;
const HEIGHT = 90;
// left: room for the scale's labels, "79.8%", "100%", "12.5 cm", whole
const PAD = { left: 46, right: 6, top: 8, bottom: 16 };

// field → [label, English title, unit]; in the order the panel lists them
export const READING_FIELDS = Object.freeze({
  fill: ['满溢度', 'Fill level', '%'],
  level: ['积水深度', 'Standing water', ' cm'],
  water: ['井内水位', 'Water in the well', ' cm'],
  tilt: ['倾角', 'Tilt', '°'],
  gas: ['可燃气体', 'Gas', ' ppm'],
  smoke: ['烟雾', 'Smoke', ''],
  bat: ['电池', 'Battery', '%'],
});
// the measure a sensor is there for, charted: the first of these it reports
const CHARTED = ['fill', 'level', 'water', 'tilt', 'gas', 'bat'];

export function formatReading(field, value) {
  if (value == null) return '—';
  if (field === 'smoke') return value ? '有' : '无';
  const unit = READING_FIELDS[field] ? READING_FIELDS[field][2] : '';
  return `${Number(value).toLocaleString('zh-CN', { maximumFractionDigits: 1 })}${unit}`;
}

// Rows for the details list: [zh, en, text] per reading the sensor has sent.
export function readingRows(device) {
  const readings = device && device.readings;
  if (!readings || typeof readings !== 'object') return [];
  const rows = Object.keys(READING_FIELDS)
    .filter((field) => readings[field] != null)
    .map((field) => [READING_FIELDS[field][0], READING_FIELDS[field][1], formatReading(field, readings[field])]);
  if (rows.length && Number.isFinite(readings.t)) rows.push(['读数时间', 'Time of the latest reading', formatClock(readings.t)]);
  return rows;
}

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  for (const child of children) node.append(child);
  return node;
}

export class ReadingsChart {
  constructor(container, { getJSON }) {
    this.container = container;
    this.getJSON = getJSON;
    this.request = 0;
  }

  clear() {
    this.request += 1;
    this.container.replaceChildren();
    this.container.hidden = true;
  }

  async load(device, now) {
    const request = ++this.request;
    this.container.hidden = false;
    this.container.replaceChildren(el('p', { class: 'gw-chart-note', title: 'Loading readings' }, '读数加载中…'));
    const from = new Date(now - READINGS_WINDOW_MS).toISOString();
    const to = new Date(now).toISOString();
    let answer;
    try {
      answer = await this.getJSON(`/api/devices/${encodeURIComponent(device.id)}/readings`
        + `?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`);
    } catch (error) {
      if (request === this.request) {
        this.container.replaceChildren(el('p', { class: 'gw-chart-note', title: `Readings failed to load: ${error.message}` }, '读数加载失败'));
      }
      return;
    }
    if (request !== this.request) return;
    this.render((answer && answer.readings) || [], now);
  }

  render(readings, now) {
    const field = CHARTED.find((f) => readings.some((r) => Number.isFinite(r[f])));
    if (!field) {
      this.container.replaceChildren(el('p', { class: 'gw-chart-note', title: 'No readings in the last day' }, '近24小时无读数'));
      return;
    }
    const points = readings.filter((r) => Number.isFinite(r[field]) && Number.isFinite(r.t));
    const t0 = now - READINGS_WINDOW_MS;
    const values = points.map((p) => p[field]);
    let lo = Math.min(0, ...values);
    let hi = Math.max(...values);
    if (hi - lo < 1) hi = lo + 1;
    const x = (t) => PAD.left + ((t - t0) / READINGS_WINDOW_MS) * (WIDTH - PAD.left - PAD.right);
    const y = (v) => HEIGHT - PAD.bottom - ((v - lo) / (hi - lo)) * (HEIGHT - PAD.top - PAD.bottom);
    const path = points.map((p, i) => `${i ? 'L' : 'M'}${x(p.t).toFixed(1)},${y(p[field]).toFixed(1)}`).join('');
    const [zh, en] = READING_FIELDS[field];
    const chart = svg('svg', { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: 'img', 'data-field': field, 'data-points': points.length },
      svg('title', {}, document.createTextNode(`${en} over the last 24 hours`)),
      svg('line', { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(lo), y2: y(lo), stroke: 'currentColor', 'stroke-opacity': 0.3 }),
      svg('text', { x: PAD.left - 4, y: y(hi) + 4, 'text-anchor': 'end' }, document.createTextNode(formatReading(field, hi))),
      svg('text', { x: PAD.left - 4, y: y(lo), 'text-anchor': 'end' }, document.createTextNode(formatReading(field, lo))),
      svg('text', { x: PAD.left, y: HEIGHT - 3 }, document.createTextNode('24小时前')),
      svg('text', { x: WIDTH - PAD.right, y: HEIGHT - 3, 'text-anchor': 'end' }, document.createTextNode('现在')),
      svg('path', { class: 'gw-readings-line', d: path }));
    this.container.replaceChildren(el('p', { class: 'gw-readings-caption', title: `${en}, last 24 hours` }, `${zh}（近24小时）`), chart);
    // a longer scale label ("1,234 ppm") than the margin holds: widen the view to its start
    let left = 0;
    for (const text of chart.querySelectorAll('text')) {
      try {
        left = Math.min(left, text.getBBox().x);
      } catch {
        // not rendered (a hidden panel): the margin stands
      }
    }
    if (left < 0) chart.setAttribute('viewBox', `${Math.floor(left) - 2} 0 ${WIDTH - Math.floor(left) + 2} ${HEIGHT}`);
  }
}
