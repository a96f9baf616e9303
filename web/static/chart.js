// Coverage over the day: the share of scheduled grids covered so far, one point per
// 15 minutes of today's coverage report, drawn as plain SVG.

import { el, zoneLabel } from './format.js';

export const REPORT_REFRESH_MS = 5 * 60 * 1000;
const SVG = 'http://www.w3.org/2000/svg';
const WIDTH = 400;
const HEIGHT = 132;
const PAD = { left: 36, right: 18, top: 12, bottom: 22 };
const HOUR_MS = 60 * 60 * 1000;
const TICK_HOURS = [1, 2, 3, 4, 6, 12];
const MAX_TICKS = 8;


// Dates and clock times are the city's ([city] timezone, from /api/config), not the
// browser's: a report day is a local day of the city. Without a zone, the browser's.
function parts(ms, zone) {
  const options = { year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' };
  if (zone) options.timeZone = zone;
  const out = {};
  for (const { type, value } of new Intl.DateTimeFormat('en-CA', options).formatToParts(new Date(ms))) out[type] = value;
  return out;
}

export function localDate(ms, zone) {
  const p = parts(ms, zone);
  return `${p.year}-${p.month}-${p.day}`;
}

export const reportUrl = (date) => `/api/reports/coverage?date=${encodeURIComponent(date)}`;

const percent = (share) => `${Math.round(share * 100)}%`;
let chartZone;
const clock = (ms) => {
  const p = parts(ms, chartZone);
  return `${p.hour}:${p.minute}`;
};

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  for (const child of children) node.append(child);
  return node;
}

export class CoverageChart {
  constructor({ panel, container, latest }, { getJSON, zone, onDate }) {
    this.onDate = onDate || (() => {});
    chartZone = zone || undefined;
    this.zone = chartZone;
    this.panel = panel;
    this.container = container;
    this.latest = latest;
    this.getJSON = getJSON;
    this.request = 0;
    this.date = null;
    panel.addEventListener('toggle', () => {
      if (panel.open) this.load(Date.now());
    });
    setInterval(() => {
      if (this.panel.open) this.load(Date.now());
    }, REPORT_REFRESH_MS);
  }

  start(now) {
    if (this.panel.open) this.load(now);
  }

  async load(now) {
    const request = ++this.request;
    const date = localDate(now, this.zone);
    let report;
    try {
      report = await this.getJSON(reportUrl(date));
    } catch (error) {
      if (request === this.request) this.showNote('加载失败', `Coverage report failed to load: ${error.message}`);
      return;
    }
    if (request !== this.request) return;
    this.date = date;
    this.onDate(date);
    this.render((report && report.timeline) || [], report && report.summary);
  }

  showNote(text, title) {
    this.container.replaceChildren(el('p', { class: 'gw-chart-note', title }, text));
    this.latest.textContent = '—';
  }

  // ``summary``: the day's figure as the server computes it for every view (slots without
  // data left out); the line is that figure every 15 minutes, gaps where there was no data.
  render(timeline, summary) {
    const points = timeline
      .filter((p) => p && Number.isFinite(p.t) && Number.isFinite(p.share))
      .map((p) => ({ t: p.t, share: Math.min(1, Math.max(0, p.share)) }))
      .sort((a, b) => a.t - b.t);
    if (!points.length) {
      this.showNote('今日暂无排班数据', 'No scheduled coverage today');
      return;
    }
    const t0 = Math.floor(points[0].t / HOUR_MS) * HOUR_MS;
    const t1 = Math.max(t0 + 2 * HOUR_MS, Math.ceil(points[points.length - 1].t / HOUR_MS) * HOUR_MS);
    const plotW = WIDTH - PAD.left - PAD.right;
    const plotH = HEIGHT - PAD.top - PAD.bottom;
    const x = (t) => PAD.left + ((t - t0) / (t1 - t0)) * plotW;
    const y = (share) => PAD.top + (1 - share) * plotH;
    const fmt = (n) => n.toFixed(1);

    const axes = svg('g', { class: 'gw-chart-axes' });
    for (const share of [0, 0.5, 1]) {
      axes.append(
        svg('line', { x1: PAD.left, x2: WIDTH - PAD.right, y1: fmt(y(share)), y2: fmt(y(share)), class: 'gw-chart-grid' }),
        svg('text', { x: PAD.left - 6, y: fmt(y(share) + 4), 'text-anchor': 'end' }, percent(share)),
      );
    }
    // the ticks are the city's clock: say whose
    axes.append(svg('text', { class: 'gw-chart-zone', x: WIDTH - PAD.right, y: PAD.top - 2, 'text-anchor': 'end' }, zoneLabel()));
    const hours = (t1 - t0) / HOUR_MS;
    const step = TICK_HOURS.find((h) => hours / h <= MAX_TICKS) || 24;
    for (let t = t0; t <= t1; t += step * HOUR_MS) {
      axes.append(
        svg('line', { x1: fmt(x(t)), x2: fmt(x(t)), y1: PAD.top + plotH, y2: PAD.top + plotH + 4, class: 'gw-chart-tick' }),
        svg('text', { x: fmt(x(t)), y: HEIGHT - 6, 'text-anchor': 'middle' }, clock(t)),
      );
    }

    const line = points.map((p, i) => `${i ? 'L' : 'M'}${fmt(x(p.t))},${fmt(y(p.share))}`).join(' ');
    const last = points[points.length - 1];
    const area = `${line} L${fmt(x(last.t))},${fmt(y(0))} L${fmt(x(points[0].t))},${fmt(y(0))} Z`;
    const dots = svg('g', { class: 'gw-chart-points' }, ...points.map((p) => svg('circle', {
      class: 'gw-chart-point', cx: fmt(x(p.t)), cy: fmt(y(p.share)), r: 2.2, 'data-t': p.t, 'data-share': p.share,
    }, svg('title', {}, `${clock(p.t)} ${zoneLabel()} 覆盖 ${percent(p.share)}`))));
    const lastX = x(last.t);
    const label = svg('text', {
      class: 'gw-chart-latest', x: fmt(Math.min(lastX, WIDTH - PAD.right)), y: fmt(Math.max(y(last.share) - 7, PAD.top + 2)),
      'text-anchor': lastX > WIDTH - 60 ? 'end' : 'middle',
    }, percent(last.share));

    const chart = svg('svg', {
      viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: 'img',
      'aria-label': `今日巡查覆盖率 coverage today, latest ${percent(last.share)} at ${clock(last.t)} ${zoneLabel()}`,
    },
    axes,
    svg('path', { class: 'gw-chart-area', d: area }),
    svg('path', { class: 'gw-chart-line', d: line }),
    dots,
    svg('circle', { class: 'gw-chart-now', cx: fmt(lastX), cy: fmt(y(last.share)), r: 4 }),
    label);
    this.container.replaceChildren(chart);
    const share = summary && Number.isFinite(summary.share) ? summary.share : last.share;
    this.latest.textContent = percent(share);
    this.latest.title = `Share of scheduled grids covered so far, at ${clock(last.t)} ${zoneLabel()}`
      + (summary && summary.slots_no_data ? `; ${summary.slots_no_data} slots without data left out` : '');
  }
}
