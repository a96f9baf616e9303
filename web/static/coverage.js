// The coverage layer: unit grids shaded by time since a collector last visited them, and
// the grids of patrol slots in progress that are still unvisited outlined in dashed red.
// Off by default; while on it refreshes from /api/coverage/live every 30 seconds.

import { el, formatClock, formatDateTime } from './format.js';

export const COVERAGE_URL = '/api/coverage/live';
export const COVERAGE_REFRESH_MS = 30 * 1000;
const FRESH_MS = 30 * 60 * 1000;
const RECENT_MS = 2 * 60 * 60 * 1000;

export const COVERAGE_BUCKETS = Object.freeze({
  fresh: { zh: '30分钟内', en: 'visited < 30 min ago', style: { fillColor: '#16a34a', fillOpacity: 0.62, color: '#4ade80', opacity: 0.7 } },
  recent: { zh: '2小时内', en: 'visited 30 min – 2 h ago', style: { fillColor: '#65a30d', fillOpacity: 0.3, color: '#a3e635', opacity: 0.45 } },
  stale: { zh: '超过2小时', en: 'visited over 2 h ago', style: { fillColor: '#d97706', fillOpacity: 0.14, color: '#f59e0b', opacity: 0.35 } },
  never: { zh: '无巡查记录', en: 'never visited', style: { fillColor: '#ef4444', fillOpacity: 0.3, color: '#f87171', opacity: 0.45 } },
});
const UNVISITED_STYLE = { color: '#ff3b3b', weight: 2.5, opacity: 1, dashArray: '6 4' };

export function coverageBucket(lastVisit, now) {
  if (!Number.isFinite(lastVisit)) return 'never';
  const age = now - lastVisit;
  if (age < FRESH_MS) return 'fresh';
  if (age < RECENT_MS) return 'recent';
  return 'stale';
}

const CoverageControl = L.Control.extend({
  options: { position: 'topright' },
  onAdd() {
    return this.options.container;
  },
});

export class CoverageLayer {
  constructor(map, grids, { getJSON }) {
    this.map = map;
    this.grids = grids;
    this.getJSON = getJSON;
    this.on = false;
    this.timer = 0;
    this.request = 0;
    this.view = new Map();
    this.button = el('button', {
      type: 'button',
      class: 'gw-coverage-toggle',
      'aria-pressed': 'false',
      title: 'Coverage layer: grids shaded by time since last visit',
    }, el('span', { class: 'gw-toggle-box', 'aria-hidden': 'true' }), '巡查覆盖');
    this.status = el('p', { class: 'gw-legend-status' });
    this.legend = el('div', { class: 'gw-legend', hidden: true },
      el('ul', {}, ...Object.entries(COVERAGE_BUCKETS).map(([bucket, b]) => el('li', { title: b.en },
        el('span', { class: 'gw-swatch', 'data-coverage': bucket }), b.zh)),
      el('li', { title: 'grid of a patrol slot in progress, not yet visited' },
        el('span', { class: 'gw-swatch gw-swatch--unvisited' }), '班次中未到')),
      this.status);
    const container = el('div', { class: 'leaflet-control gw-coverage-control' }, this.button, this.legend);
    L.DomEvent.disableClickPropagation(container);
    L.DomEvent.disableScrollPropagation(container);
    this.button.addEventListener('click', () => this.toggle(!this.on));
    new CoverageControl({ container }).addTo(map);
  }

  toggle(on) {
    this.on = on;
    this.button.setAttribute('aria-pressed', String(on));
    this.legend.hidden = !on;
    clearInterval(this.timer);
    this.timer = 0;
    this.request += 1;
    if (!on) {
      this.clear();
      return;
    }
    this.status.textContent = '加载中…';
    this.refresh();
    this.timer = setInterval(() => this.refresh(), COVERAGE_REFRESH_MS);
  }

  async refresh() {
    if (!this.on) return;
    const request = ++this.request;
    let data;
    try {
      data = await this.getJSON(COVERAGE_URL);
    } catch (error) {
      if (request === this.request) {
        this.status.textContent = '覆盖数据加载失败';
        this.status.title = `Coverage failed to load: ${error.message}`;
      }
      return;
    }
    if (request !== this.request || !this.on) return;
    this.apply(data || {});
  }

  apply(data) {
    const now = Number.isFinite(data.now) ? data.now : Date.now();
    const visits = data.grids && typeof data.grids === 'object' ? data.grids : {};
    const unvisited = new Set(Array.isArray(data.unvisited) ? data.unvisited : []);
    this.view = new Map();
    for (const code of this.grids.codes()) {
      const last = Object.hasOwn(visits, code) ? visits[code] : null;
      this.view.set(code, { bucket: coverageBucket(last, now), unvisited: unvisited.has(code) });
    }
    this.grids.setOverlay((props) => {
      const v = this.view.get(props.code);
      if (!v) return null;
      const style = COVERAGE_BUCKETS[v.bucket].style;
      return v.unvisited ? { ...style, ...UNVISITED_STYLE } : style;
    });
    for (const [code, v] of this.view) {
      const path = this.grids.element(code);
      if (!path) continue;
      path.dataset.coverage = v.bucket;
      path.classList.toggle('gw-unvisited', v.unvisited);
    }
    this.grids.bringToFront([...this.view].filter(([, v]) => v.unvisited).map(([code]) => code));
    this.showStatus(data, now);
  }

  // The day's figure is the server's (the same as the chart's); the slots in progress are
  // counted beside it.
  showStatus(data, now) {
    const slots = Array.isArray(data.slots) ? data.slots : [];
    const today = data.today || {};
    const share = Number.isFinite(today.share) ? `，今日已覆盖 ${Math.round(today.share * 100)}%`
      : today.status === 'no_data' ? '，今日无数据' : '';
    this.status.textContent = `进行中班次 ${slots.length}${share} · ${formatClock(now)}`;
    this.status.title = `${slots.length} patrol slots in progress; today ${today.grids_covered ?? 0}/${today.grids_total ?? 0} `
      + `grids covered over ${today.slots ?? 0} slots with data (${today.slots_no_data ?? 0} without); as of ${formatDateTime(now)}`;
  }

  clear() {
    this.grids.setOverlay(null);
    for (const code of this.view.keys()) {
      const path = this.grids.element(code);
      if (!path) continue;
      delete path.dataset.coverage;
      path.classList.remove('gw-unvisited');
    }
    this.view = new Map();
  }
}
