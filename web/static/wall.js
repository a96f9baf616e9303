// The big screen (大屏): the same page at /wall or /?wall=1, for a wall of 1920×1080 to
// 3840×2160 watched from across a room. The map fills the screen fitted to the area, text
// is sized from the viewport, and panels show live figures instead of controls: devices
// online by class, open alerts by kind and alarms by severity, coverage of the patrol slots
// in progress, and the case figures once the service has them. Nothing here needs a hand:
// the live feed reconnects by itself, the figures from the live state are redrawn every
// second, and those the feed does not carry are fetched again every half minute
// (?refresh=SECONDS to change that).

import { deviceLabel } from './names.js';
import { COVERAGE_URL } from './coverage.js';
import { DEVICE_CLASSES, el, formatClock, isStale } from './format.js';
import { alarmKind, alertKind } from './kinds.js';

// The case figures, when the service keeps cases: a 404 (no such endpoint) hides the panel.
export const CASES_URL = '/api/cases/summary';
export const WALL_REFRESH_MS = 30 * 1000;
const MIN_REFRESH_MS = 2000;
const REDRAW_MS = 1000;
const LEVELS = [
  ['critical', '紧急', 'critical'],
  ['high', '严重', 'major'],
  ['warn', '一般', 'minor'],
  ['muted', '提示', 'warning'],
];
const CASE_LABELS = {
  open: ['在办案卷', 'open cases'],
  overdue: ['超期', 'overdue'],
  due_soon: ['即将超期', 'due soon'],
  filed_today: ['今日立案', 'filed today'],
  closed_today: ['今日结案', 'closed today'],
  reported_today: ['今日上报', 'reported today'],
};
const MAX_ROWS = 6;

// How often the figures are fetched again: ?refresh=SECONDS on the wall's address, else
// every half minute.
export function refreshMs(location = window.location) {
  const seconds = Number(new URLSearchParams(location.search).get('refresh'));
  return Number.isFinite(seconds) && seconds > 0 ? Math.max(MIN_REFRESH_MS, seconds * 1000) : WALL_REFRESH_MS;
}

export function isWall(location = window.location) {
  return location.pathname === '/wall' || new URLSearchParams(location.search).get('wall') === '1';
}

// Map options of the wall: fractional zoom so the fitted area fills the screen, no controls.
export function wallMapOptions() {
  return isWall() ? { zoomSnap: 0.1, zoomDelta: 0.5, zoomControl: false } : {};
}

export function markWall() {
  if (isWall()) document.body.classList.add('gw-wall');
}

export class WallPanels {
  constructor(parent, { getJSON, live }) {
    this.getJSON = getJSON;
    this.live = live; // () => ({ devices, alerts, alarms }) from the page's live state
    this.coverage = null;
    this.cases = null;
    this.refreshes = 0;
    this.node = el('aside', { class: 'gw-wall-panels', id: 'gw-wall-panels', 'aria-label': '大屏 live figures' });
    this.clock = el('p', { class: 'gw-wall-clock', id: 'gw-wall-clock' });
    this.panels = {
      devices: panel('devices', '在线设备', 'Devices online by class'),
      alarms: panel('alarms', '设备报警', 'Open alarms by severity and kind'),
      alerts: panel('alerts', '巡查告警', 'Open patrol alerts by kind'),
      coverage: panel('coverage', '巡查覆盖', 'Coverage of the patrol slots in progress'),
      cases: panel('cases', '案卷', 'Case figures'),
    };
    this.panels.cases.section.hidden = true;
    this.node.append(this.clock, ...Object.values(this.panels).map((p) => p.section));
    parent.append(this.node);
  }

  start() {
    this.refresh();
    this.redraw();
    setInterval(() => this.redraw(), REDRAW_MS);
    setInterval(() => this.refresh(), refreshMs());
  }

  async refresh() {
    const [coverage, cases] = await Promise.allSettled([this.getJSON(COVERAGE_URL), this.loadCases()]);
    if (coverage.status === 'fulfilled') this.coverage = coverage.value;
    if (cases.status === 'fulfilled') this.cases = cases.value;
    this.refreshes += 1;
    this.node.dataset.refreshes = String(this.refreshes);
    this.redraw();
  }

  async loadCases() {
    const response = await fetch(CASES_URL, { headers: { Accept: 'application/json' } });
    if (response.status === 404) return null; // no cases kept by this service (yet)
    if (!response.ok) throw new Error(`${CASES_URL}: HTTP ${response.status}`);
    return response.json();
  }

  redraw() {
    const now = Date.now();
    const { devices, alerts, alarms } = this.live();
    this.clock.textContent = formatClock(now);
    this.drawDevices(devices, now);
    this.drawAlarms(alarms);
    this.drawAlerts(alerts);
    this.drawCoverage();
    this.drawCases();
  }

  drawDevices(devices, now) {
    const counts = new Map(Object.keys(DEVICE_CLASSES).map((cls) => [cls, { online: 0, total: 0 }]));
    for (const device of devices.values()) {
      if (!counts.has(device.class)) counts.set(device.class, { online: 0, total: 0 });
      const count = counts.get(device.class);
      count.total += 1;
      if (!isStale(device, now)) count.online += 1;
    }
    const rows = [...counts].map(([cls, { online, total }]) => figure(
      (DEVICE_CLASSES[cls] || { zh: cls }).zh, `${online}`, `/ ${total}`, { 'data-class': cls }));
    this.panels.devices.fill(rows);
  }

  drawAlarms(alarms) {
    const byLevel = new Map(LEVELS.map(([level]) => [level, 0]));
    const byKind = new Map();
    for (const alarm of alarms.values()) {
      const { label, level } = alarmKind(alarm.kind);
      byLevel.set(level, (byLevel.get(level) || 0) + 1);
      byKind.set(label, (byKind.get(label) || 0) + 1);
    }
    // Chinese on the wall, the English name in the tooltip (as everywhere on the map)
    const levels = LEVELS.map(([level, zh, en]) => figure(zh, String(byLevel.get(level) || 0), '',
      { 'data-level': level, title: `${zh} ${en}` }));
    this.panels.alarms.fill([...levels, ...ranked(byKind)]);
  }

  drawAlerts(alerts) {
    const byKind = new Map();
    for (const alert of alerts.values()) {
      const { label } = alertKind(alert.kind);
      byKind.set(label, (byKind.get(label) || 0) + 1);
    }
    this.panels.alerts.fill([figure('未处理', String(alerts.size), '', { 'data-level': alerts.size ? 'high' : 'ok' }),
      ...ranked(byKind)]);
  }

  drawCoverage() {
    const { devices } = this.live();
    // the collector by name (the registry's label) where the live map knows it
    const who = (id) => (id && devices.has(id) ? deviceLabel(devices.get(id)) : id || '');
    const slots = this.coverage && Array.isArray(this.coverage.slots) ? this.coverage.slots : [];
    let total = 0;
    let covered = 0;
    for (const slot of slots) {
      if (Number.isFinite(slot.grids_total)) total += slot.grids_total;
      if (Number.isFinite(slot.grids_covered)) covered += slot.grids_covered;
    }
    const share = total ? `${Math.round((covered / total) * 100)}%` : '—';
    const worst = [...slots]
      .filter((s) => Number.isFinite(s.grids_total) && s.grids_total > 0)
      .sort((a, b) => a.grids_covered / a.grids_total - b.grids_covered / b.grids_total)
      .slice(0, MAX_ROWS - 2)
      .map((s) => figure(`${who(s.collector)} ${s.area || ''}`.trim() || '—', `${s.grids_covered}/${s.grids_total}`, '',
        { 'data-collector': s.collector || '' }));
    this.panels.coverage.fill([
      figure('进行中班次', String(slots.length), ''),
      figure('已覆盖网格', share, total ? `${covered}/${total}` : '', { 'data-figure': 'coverage-share' }),
      ...worst,
    ]);
  }

  drawCases() {
    const section = this.panels.cases.section;
    if (!this.cases || typeof this.cases !== 'object') {
      section.hidden = true;
      return;
    }
    section.hidden = false;
    const rows = [];
    for (const [key, value] of Object.entries(this.cases)) {
      if (Number.isFinite(value)) {
        const [zh, en] = CASE_LABELS[key] || [key, key];
        rows.push(figure(zh, String(value), '', { title: en, 'data-figure': key }));
      } else if (value && typeof value === 'object' && !Array.isArray(value)) {
        for (const [name, count] of Object.entries(value)) {
          if (Number.isFinite(count)) rows.push(figure(name, String(count), '', { 'data-figure': `${key}.${name}` }));
        }
      }
    }
    this.panels.cases.fill(rows.slice(0, MAX_ROWS * 2));
  }
}

function panel(name, zh, en) {
  const list = el('dl', { class: 'gw-wall-figures' });
  const section = el('section', { class: 'gw-wall-panel', 'data-panel': name, title: en },
    el('h2', { class: 'gw-wall-head' }, zh), list);
  return {
    section,
    fill(rows) {
      list.replaceChildren(...rows);
    },
  };
}

function figure(label, value, note, attrs = {}) {
  return el('div', { class: 'gw-wall-figure', ...attrs },
    el('dt', {}, label),
    el('dd', {}, el('span', { class: 'gw-wall-value' }, value), note ? el('span', { class: 'gw-wall-note' }, note) : null));
}

function ranked(counts) {
  return [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).slice(0, MAX_ROWS)
    .map(([label, count]) => figure(label, String(count), '', { 'data-kind': label }));
}
