// The alerts panel: open patrol alerts and open component/vehicle alarms, newest first.
// Loaded from the API on every live-feed snapshot and kept current by alert and alarm
// frames. Frames that arrive while a load is in flight are replayed over its answer, so
// the answer cannot roll back a change the feed already announced.

import { el, formatAge, formatClock } from './format.js';
import { ALARM_SOURCES, alarmKind, alertKind, resolutionText } from './kinds.js';
import { valueAndLimit } from './names.js';

export const ALERTS_URL = '/api/alerts?open=1&limit=200';
export const ALARMS_URL = '/api/alarms?limit=100';
// A resolved alert or cleared alarm stays on screen this long, saying why it went away.
export const RESOLVED_LINGER_MS = 6000;
const FLASH_MS = 1600;

export const alarmKey = (alarm) => `${alarm.device}/${alarm.kind}`;

const isId = (id) => (typeof id === 'number' && Number.isFinite(id)) || (typeof id === 'string' && id !== '');
const validAlert = (a) => a !== null && typeof a === 'object' && isId(a.id) && typeof a.kind === 'string';
const validAlarm = (a) => a !== null && typeof a === 'object' && typeof a.device === 'string'
  && typeof a.kind === 'string' && typeof a.raised === 'boolean';

function newestFirst(a, b) {
  return (b.t || 0) - (a.t || 0) || b.key.localeCompare(a.key, 'en', { numeric: true });
}

export class AlertBoard {
  constructor(nodes, { getJSON, describePlace, onPick, onAlarmChange, onRender = null, alertsUrl = ALERTS_URL, nameOf = (id) => id }) {
    this.nameOf = nameOf; // a collector's id → what the device list calls it (the registry's name)
    this.onRender = onRender; // after every render: what decorates the rows (triage.js)
    this.alertsUrl = alertsUrl;
    this.nodes = nodes;
    this.getJSON = getJSON;
    this.describePlace = describePlace;
    this.onAlarmChange = onAlarmChange;
    this.alerts = new Map();
    this.alarms = new Map();
    this.sections = {
      alert: { rows: new Map(), list: nodes.alertList, empty: nodes.alertEmpty, count: nodes.alertHeadCount },
      alarm: { rows: new Map(), list: nodes.alarmList, empty: nodes.alarmEmpty, count: nodes.alarmHeadCount },
    };
    this.pending = null;
    this.loads = 0;
    this.loaded = false;
    for (const section of Object.values(this.sections)) {
      const pickFrom = (event) => {
        const node = event.target.closest('[data-row-key]');
        const row = node && section.rows.get(node.dataset.rowKey);
        if (row) onPick(row.item);
      };
      section.list.addEventListener('click', pickFrom);
      section.list.addEventListener('keydown', (event) => {
        if (event.key === 'Enter' || event.key === ' ') {
          event.preventDefault();
          pickFrom(event);
        }
      });
    }
  }

  get openCount() {
    return this.alerts.size + this.alarms.size;
  }

  async load(now) {
    const load = ++this.loads;
    this.pending = [];
    const [alerts, alarms] = await Promise.allSettled([this.getJSON(this.alertsUrl), this.getJSON(ALARMS_URL)]);
    if (load !== this.loads) return;
    const replay = this.pending;
    this.pending = null;
    if (alerts.status === 'fulfilled') this.replaceAlerts((alerts.value && alerts.value.alerts) || [], now);
    if (alarms.status === 'fulfilled') this.replaceAlarms((alarms.value && alarms.value.alarms) || [], now);
    for (const apply of replay) apply();
    this.loaded = true;
    this.showLoadErrors(alerts, alarms);
    this.render(Date.now());
  }

  showLoadErrors(alerts, alarms) {
    for (const [result, section, what] of [[alerts, 'alert', 'alerts'], [alarms, 'alarm', 'alarms']]) {
      const empty = this.sections[section].empty;
      const failed = result.status === 'rejected';
      empty.dataset.failed = failed ? 'true' : '';
      empty.textContent = failed ? '加载失败' : '暂无';
      empty.title = failed ? `${what} failed to load: ${result.reason.message}` : `No open ${what}`;
    }
  }

  alertFrame(frame, now) {
    const { change, alert } = frame;
    if (!validAlert(alert) || !['raised', 'updated', 'resolved'].includes(change)) return;
    const apply = () => (change === 'resolved' || alert.resolved_at != null
      ? this.resolveAlert(alert, Date.now())
      : this.upsertAlert(alert, Date.now(), true));
    if (this.pending) this.pending.push(apply);
    apply();
    this.render(now);
  }

  alarmFrame(frame, now) {
    if (!validAlarm(frame)) return;
    const alarm = { ...frame };
    delete alarm.type;
    const apply = () => this.applyAlarm(alarm, Date.now(), true);
    if (this.pending) this.pending.push(apply);
    apply();
    this.render(now);
  }

  replaceAlerts(list, now) {
    const open = list.filter((a) => validAlert(a) && a.resolved_at == null);
    const ids = new Set(open.map((a) => a.id));
    for (const id of [...this.alerts.keys()]) {
      if (!ids.has(id)) {
        this.alerts.delete(id);
        this.removeRow('alert', String(id));
      }
    }
    for (const alert of open) this.upsertAlert(alert, now, false);
  }

  // The history is newest first; a (device, kind) is open when its newest event raised it.
  replaceAlarms(history, now) {
    const open = new Map();
    for (const event of [...history].reverse()) {
      if (!validAlarm(event)) continue;
      if (event.raised) open.set(alarmKey(event), event);
      else open.delete(alarmKey(event));
    }
    for (const key of [...this.alarms.keys()]) {
      if (!open.has(key)) {
        this.alarms.delete(key);
        this.removeRow('alarm', key);
        this.onAlarmChange(key, null);
      }
    }
    for (const alarm of open.values()) this.applyAlarm(alarm, now, false);
  }

  upsertAlert(alert, now, flash) {
    this.alerts.set(alert.id, alert);
    const row = this.row('alert', String(alert.id), { type: 'alert', alert });
    this.fillAlert(row, alert, now);
    row.resolved = false;
    row.node.classList.remove('gw-resolved');
    if (flash) this.flash(row.node);
  }

  resolveAlert(alert, now) {
    const key = String(alert.id);
    const row = this.sections.alert.rows.get(key);
    if (!this.alerts.delete(alert.id) || !row) return;
    this.fillAlert(row, alert, now);
    this.linger(row, 'alert', key, resolutionText(alert.resolution), alert.resolution || 'resolved');
  }

  applyAlarm(alarm, now, flash) {
    const key = alarmKey(alarm);
    const current = this.alarms.get(key);
    if (current && Number.isFinite(current.t) && Number.isFinite(alarm.t) && alarm.t < current.t) return;
    if (alarm.raised) {
      this.alarms.set(key, alarm);
      const row = this.row('alarm', key, { type: 'alarm', alarm });
      this.fillAlarm(row, alarm, now);
      row.resolved = false;
      row.node.classList.remove('gw-resolved');
      if (flash) this.flash(row.node);
      this.onAlarmChange(key, alarm);
      return;
    }
    const row = this.sections.alarm.rows.get(key);
    if (!this.alarms.delete(key)) return;
    this.onAlarmChange(key, null);
    if (!row) return;
    this.fillAlarm(row, { ...row.item.alarm, detail: alarm.detail || row.item.alarm.detail }, now);
    this.linger(row, 'alarm', key, `已解除 ${formatClock(alarm.t)}`, 'cleared');
  }

  row(kind, key, item) {
    const section = this.sections[kind];
    let row = section.rows.get(key);
    if (!row) {
      const attrs = kind === 'alert'
        ? { class: 'gw-alert-row gw-row', 'data-alert-id': key }
        : { class: 'gw-alarm-row gw-row', 'data-alarm-key': key };
      const cells = {
        kind: el('span', { class: 'gw-row-kind' }),
        who: el('span', { class: 'gw-row-who' }),
        where: el('span', { class: 'gw-row-where' }),
        age: el('span', { class: 'gw-row-age' }),
        text: el('div', { class: 'gw-row-text' }),
        outcome: el('div', { class: 'gw-row-outcome', hidden: true }),
      };
      const node = el('li', { ...attrs, 'data-row-key': key, tabindex: 0 },
        el('div', { class: 'gw-row-head' }, cells.kind, cells.who, cells.where, cells.age), cells.text, cells.outcome);
      row = { node, cells, item, resolved: false, timer: 0, since: null };
      section.rows.set(key, row);
    }
    clearTimeout(row.timer);
    row.item = item;
    row.cells.outcome.hidden = true;
    return row;
  }

  fillAlert(row, alert, now) {
    const kind = alertKind(alert.kind);
    const { cells, node } = row;
    row.item = { type: 'alert', alert };
    row.since = alert.raised_at;
    node.dataset.kind = alert.kind;
    node.dataset.level = kind.level;
    node.title = `Patrol alert #${alert.id}${alert.slot_id ? `, slot ${alert.slot_id}` : ''}`;
    cells.kind.textContent = kind.label;
    cells.kind.title = kind.title;
    cells.who.textContent = (alert.collector && this.nameOf(alert.collector)) || alert.collector || '—';
    cells.who.title = `Collector ${alert.collector || ''}`.trim();
    this.fillWhere(cells.where, alert.grid, alert.area);
    cells.age.title = `Raised at ${formatClock(alert.raised_at)}`
      + (alert.updated_at && alert.updated_at !== alert.raised_at ? `, updated ${formatClock(alert.updated_at)}` : '');
    cells.text.textContent = alert.text || '';
    this.fillAge(row, now);
  }

  fillAlarm(row, alarm, now) {
    const kind = alarmKind(alarm.kind);
    const { cells, node } = row;
    row.item = { type: 'alarm', alarm };
    row.since = alarm.t;
    node.dataset.kind = alarm.kind;
    node.dataset.level = kind.level;
    node.dataset.source = alarm.source || '';
    const source = ALARM_SOURCES[alarm.source] || alarm.source || '';
    node.title = `${alarm.source || 'device'} alarm ${alarm.kind} on ${alarm.device}`
      + (alarm.component ? `, component ${alarm.component}` : '');
    cells.kind.textContent = kind.label;
    cells.kind.title = kind.title;
    cells.who.textContent = alarm.label || alarm.device;
    cells.who.title = `${source} ${alarm.source || ''}${alarm.component ? ` · 部件 ${alarm.component}` : ''}`.trim();
    this.fillWhere(cells.where, alarm.grid, null);
    cells.age.title = `Raised at ${formatClock(alarm.t)}`;
    const value = valueAndLimit(alarm, kind.unit || '');
    // the measured value against its limit, in Chinese; the service's own words (English)
    // are the tooltip
    cells.text.textContent = value;
    cells.text.title = alarm.detail || '';
    this.fillAge(row, now);
  }

  fillWhere(cell, grid, area) {
    const place = this.describePlace(grid || area);
    if (grid) {
      cell.textContent = grid;
      cell.title = place || 'Unit grid';
    } else if (area) {
      cell.textContent = place ? place.split(' · ')[0] : area;
      cell.title = `Patrol area ${area}${place ? `: ${place}` : ''}`;
    } else {
      cell.textContent = '—';
      cell.title = 'No grid';
    }
    cell.classList.toggle('gw-row-where--code', Boolean(grid));
  }

  fillAge(row, now) {
    row.cells.age.textContent = Number.isFinite(row.since) ? formatAge(now - row.since) : '—';
  }

  linger(row, kind, key, outcome, reason) {
    row.resolved = true;
    row.node.classList.add('gw-resolved');
    row.node.dataset.outcome = reason;
    row.cells.outcome.textContent = outcome;
    row.cells.outcome.title = reason;
    row.cells.outcome.hidden = false;
    clearTimeout(row.timer);
    row.timer = setTimeout(() => {
      this.removeRow(kind, key);
      this.render(Date.now());
    }, RESOLVED_LINGER_MS);
  }

  removeRow(kind, key) {
    const section = this.sections[kind];
    const row = section.rows.get(key);
    if (!row) return;
    clearTimeout(row.timer);
    row.node.remove();
    section.rows.delete(key);
  }

  flash(node) {
    node.classList.remove('gw-flash');
    void node.offsetWidth;
    node.classList.add('gw-flash');
    setTimeout(() => node.classList.remove('gw-flash'), FLASH_MS);
  }

  reveal(kind, key) {
    const row = this.sections[kind].rows.get(key);
    if (!row) return;
    row.node.scrollIntoView({ block: 'nearest' });
    this.flash(row.node);
  }

  render(now) {
    for (const [kind, section] of Object.entries(this.sections)) {
      const rows = [...section.rows.entries()].map(([key, row]) => ({ key, row, t: row.since }));
      rows.sort(newestFirst);
      const nodes = rows.map((r) => r.row.node);
      const current = [...section.list.children];
      if (nodes.length !== current.length || nodes.some((node, i) => node !== current[i])) {
        section.list.replaceChildren(...nodes);
      }
      const open = kind === 'alert' ? this.alerts.size : this.alarms.size;
      section.count.textContent = String(open);
      section.empty.hidden = nodes.length > 0;
    }
    const count = this.openCount;
    this.nodes.count.textContent = String(count);
    this.nodes.count.dataset.count = String(count);
    this.nodes.count.classList.toggle('gw-has-alerts', count > 0);
    this.nodes.count.title = `${this.alerts.size} patrol alerts, ${this.alarms.size} alarms open`;
    this.tick(now);
    if (this.onRender) this.onRender();
  }

  tick(now) {
    for (const section of Object.values(this.sections)) {
      for (const row of section.rows.values()) this.fillAge(row, now);
    }
  }
}
