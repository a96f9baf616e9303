// Patrol alerts a person can act on, over the alerts panel (alerts.js): each row's
// severity, the open alerts grouped by responsibility grid (patrol area) with counts,
// filters by severity, kind and area, a marker on the map for every open alert, and a
// beep plus a desktop notification when a high-severity alert is raised.

import { el } from './format.js';
import { ALERT_KINDS, alertKind } from './kinds.js';

export const SEVERITIES = Object.freeze({
  critical: { zh: '紧急', en: 'critical', rank: 0 },
  major: { zh: '重要', en: 'major', rank: 1 },
  minor: { zh: '一般', en: 'minor', rank: 2 },
  warning: { zh: '提示', en: 'warning', rank: 3 },
});
// Raised alerts of these severities beep and notify: someone must act now.
export const ALARMING = new Set(['critical', 'major']);
const BEEP_HZ = 880;
const BEEP_S = 0.18;
const ASKED_KEY = 'gridwatch.notifications.asked';

const severityOf = (alert) => (Object.hasOwn(SEVERITIES, alert.severity) ? alert.severity : 'warning');

// The page's language for alert texts: ?lang=en, else Chinese.
export function pageLang(location = window.location) {
  const asked = new URLSearchParams(location.search).get('lang');
  return asked && asked.toLowerCase().startsWith('en') ? 'en' : 'zh';
}

export class AlertTriage {
  constructor(map, { list, board, grids, devicePosition, onPick, lang = 'zh', nameOf = (id) => id }) {
    this.nameOf = nameOf;
    this.map = map;
    this.list = list;
    this.board = board;
    this.grids = grids;
    this.devicePosition = devicePosition;
    this.onPick = onPick;
    this.lang = lang;
    this.filter = { severity: '', kind: '', area: '' };
    this.markers = new Map(); // alert id → { marker, severity, at }
    this.notified = new Set();
    this.audio = null;
    this.sounds = 0;
    this.notifications = 0;
    map.createPane('gw-alert-markers').style.zIndex = 640;

    const choose = (name, title, options) => {
      const select = el('select', { class: 'gw-triage-filter', 'data-filter': name, title },
        ...options.map(([value, label]) => el('option', { value }, label)));
      select.addEventListener('change', () => {
        this.filter[name] = select.value;
        this.update();
      });
      return select;
    };
    this.severitySelect = choose('severity', 'Filter by severity', [['', '全部级别'],
      ...Object.entries(SEVERITIES).map(([key, s]) => [key, s.zh])]);
    this.kindSelect = choose('kind', 'Filter by kind', [['', '全部类型'],
      ...Object.entries(ALERT_KINDS).map(([key, k]) => [key, k.zh])]);
    this.areaSelect = choose('area', 'Filter by responsibility grid', [['', '全部责任网格']]);
    this.groups = el('ul', { class: 'gw-alert-groups', title: 'Open patrol alerts by responsibility grid' });
    this.soundToggle = el('button', { type: 'button', class: 'gw-sound', 'aria-pressed': 'true',
      title: '提醒：新的紧急、重要告警响铃并弹出桌面通知 (beep and notify on new critical or major alerts)' }, '响铃');
    this.soundToggle.addEventListener('click', () => {
      const on = this.soundToggle.getAttribute('aria-pressed') !== 'true';
      this.soundToggle.setAttribute('aria-pressed', String(on));
      if (on) this.askForNotifications();
    });
    const toolbar = el('div', { class: 'gw-triage' }, this.severitySelect, this.kindSelect, this.areaSelect,
      this.soundToggle);
    list.before(toolbar, this.groups);
    this.groups.addEventListener('click', (event) => {
      const node = event.target.closest('[data-area]');
      if (!node) return;
      const area = node.dataset.area === this.filter.area ? '' : node.dataset.area;
      this.filter.area = area;
      this.areaSelect.value = area;
      this.update();
    });
    // Browsers let a page ask for notifications only in answer to a gesture: the first
    // click anywhere asks, once per browser (the answer is the browser's to keep).
    const askOnce = () => {
      document.removeEventListener('click', askOnce, true);
      this.askForNotifications();
    };
    document.addEventListener('click', askOnce, true);
  }

  get soundOn() {
    return this.soundToggle.getAttribute('aria-pressed') === 'true';
  }

  askForNotifications() {
    if (typeof Notification === 'undefined' || Notification.permission !== 'default') return;
    try {
      if (window.localStorage.getItem(ASKED_KEY)) return;
      window.localStorage.setItem(ASKED_KEY, String(Date.now()));
    } catch (_) { /* storage refused (private mode): ask anyway, the browser remembers the answer */ }
    Notification.requestPermission().catch(() => {});
  }

  // A live alert frame: a raised alert of high severity beeps and notifies, once per alert.
  alertFrame(frame) {
    const alert = frame && frame.alert;
    if (!alert || frame.change !== 'raised' || !ALARMING.has(severityOf(alert))) return;
    if (this.notified.has(alert.id)) return;
    this.notified.add(alert.id);
    if (!this.soundOn) return;
    this.beep();
    this.notify(alert);
  }

  beep() {
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return;
    if (!this.audio) this.audio = new Context();
    const ctx = this.audio;
    if (ctx.state === 'suspended' && ctx.resume) ctx.resume().catch(() => {});
    const oscillator = ctx.createOscillator();
    const gain = ctx.createGain();
    oscillator.type = 'sine';
    oscillator.frequency.value = BEEP_HZ;
    gain.gain.setValueAtTime(0.0001, ctx.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.25, ctx.currentTime + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, ctx.currentTime + BEEP_S);
    oscillator.connect(gain).connect(ctx.destination);
    oscillator.start();
    oscillator.stop(ctx.currentTime + BEEP_S + 0.02);
    this.sounds += 1;
  }

  notify(alert) {
    if (typeof Notification === 'undefined' || Notification.permission !== 'granted') return;
    const severity = SEVERITIES[severityOf(alert)];
    const kind = alertKind(alert.kind);
    const place = this.grids.placeName(alert.grid || alert.area) || alert.area || '';
    const note = new Notification(`【${severity.zh}】${kind.label} · ${this.nameOf(alert.collector) || alert.collector}`, {
      body: `${this.textOf(alert)}${place ? `\n${place}` : ''}`,
      tag: `gridwatch-alert-${alert.id}`,
    });
    note.onclick = () => {
      window.focus();
      this.onPick({ type: 'alert', alert });
    };
    this.notifications += 1;
  }

  textOf(alert) {
    return (alert.texts && alert.texts[this.lang]) || alert.text || '';
  }

  matches(alert) {
    const { severity, kind, area } = this.filter;
    return (!severity || severityOf(alert) === severity) && (!kind || alert.kind === kind) && (!area || alert.area === area);
  }

  // After every render of the alerts panel: decorate, filter and group the rows, and
  // bring the map's alert markers in line with the open alerts.
  update() {
    const rows = this.board.sections.alert.rows;
    let shown = 0;
    for (const row of rows.values()) {
      const { alert } = row.item;
      const severity = severityOf(alert);
      const node = row.node;
      node.dataset.severity = severity;
      node.dataset.area = alert.area || '';
      let badge = node.querySelector('.gw-sev');
      if (!badge) {
        badge = el('span', { class: 'gw-sev' });
        row.cells.kind.before(badge);
      }
      badge.textContent = SEVERITIES[severity].zh;
      badge.title = `Severity: ${SEVERITIES[severity].en}`;
      badge.dataset.severity = severity;
      row.cells.text.textContent = this.textOf(alert);
      node.hidden = !this.matches(alert);
      if (!node.hidden) shown += 1;
    }
    this.list.dataset.shown = String(shown);
    this.renderGroups();
    this.renderMarkers();
  }

  openAlerts() {
    return [...this.board.alerts.values()];
  }

  renderGroups() {
    const groups = new Map();
    for (const alert of this.openAlerts()) {
      const key = alert.area || '';
      const group = groups.get(key) || { area: key, count: 0, bySeverity: {}, worst: 'warning' };
      const severity = severityOf(alert);
      group.count += 1;
      group.bySeverity[severity] = (group.bySeverity[severity] || 0) + 1;
      if (SEVERITIES[severity].rank < SEVERITIES[group.worst].rank) group.worst = severity;
      groups.set(key, group);
    }
    const ordered = [...groups.values()].sort((a, b) => SEVERITIES[a.worst].rank - SEVERITIES[b.worst].rank
      || b.count - a.count || a.area.localeCompare(b.area));
    const name = (area) => (area ? (this.grids.placeName(area) || area).split(' · ')[0] : '未分区');
    this.groups.replaceChildren(...ordered.map((g) => el('li', {
      class: 'gw-alert-group', 'data-area': g.area, 'data-count': g.count, 'data-severity': g.worst,
      'aria-pressed': String(this.filter.area === g.area), tabindex: 0,
      title: `Responsibility grid ${g.area || '—'}: ${g.count} open alerts; click to show only these`,
    }, el('span', { class: 'gw-group-name' }, name(g.area)),
    el('span', { class: 'gw-group-count' }, `${g.count} 条`),
    ...Object.keys(SEVERITIES).filter((s) => g.bySeverity[s]).map((s) => el('span', {
      class: 'gw-sev', 'data-severity': s, title: `${g.bySeverity[s]} ${SEVERITIES[s].en}`,
    }, `${SEVERITIES[s].zh} ${g.bySeverity[s]}`)))));
    const current = this.filter.area;
    const areas = [...groups.keys()].filter(Boolean).sort();
    if (current && !areas.includes(current)) areas.push(current);
    this.areaSelect.replaceChildren(el('option', { value: '' }, '全部责任网格'),
      ...areas.map((area) => el('option', { value: area }, `${name(area)} ${area}`)));
    this.areaSelect.value = current;
  }

  // Where an alert is: its unit grid, else the grids it names, else its collector, else its area.
  placeOf(alert) {
    if (alert.grid) {
      const bounds = this.grids.boundsOf([alert.grid]);
      if (bounds) return bounds.getCenter();
    }
    const named = alert.detail && Array.isArray(alert.detail.grids) ? alert.detail.grids : [];
    if (alert.kind === 'coverage_warning' && named.length) {
      const bounds = this.grids.boundsOf(named);
      if (bounds) return bounds.getCenter();
    }
    const at = this.devicePosition(alert.collector);
    if (at) return at;
    const bounds = alert.area ? this.grids.boundsOf(this.grids.codesWithin(alert.area)) : null;
    return bounds ? bounds.getCenter() : null;
  }

  renderMarkers() {
    const open = new Map(this.openAlerts().map((a) => [a.id, a]));
    for (const [id, entry] of this.markers) {
      if (!open.has(id)) {
        entry.marker.remove();
        this.markers.delete(id);
      }
    }
    for (const alert of open.values()) {
      const at = this.placeOf(alert);
      let entry = this.markers.get(alert.id);
      const severity = severityOf(alert);
      if (!at) {
        if (entry) entry.marker.remove();
        this.markers.delete(alert.id);
        continue;
      }
      if (!entry || entry.severity !== severity) {
        if (entry) entry.marker.remove();
        const icon = L.divIcon({
          className: `gw-alert-marker gw-alert-marker--${severity}`,
          html: `<span class="gw-alert-marker-core"><span>${SEVERITIES[severity].zh.slice(0, 1)}</span></span>`,
          iconSize: [22, 22],
        });
        const marker = L.marker(at, { icon, pane: 'gw-alert-markers', riseOnHover: true, keyboard: false });
        marker.on('click', () => this.onPick({ type: 'alert', alert: this.board.alerts.get(alert.id) || alert }));
        marker.addTo(this.map);
        entry = { marker, severity };
        this.markers.set(alert.id, entry);
      } else {
        entry.marker.setLatLng(at);
      }
      const node = entry.marker.getElement();
      if (node) {
        node.dataset.alertId = String(alert.id);
        node.dataset.kind = alert.kind;
        node.dataset.severity = severity;
        node.hidden = !this.matches(alert);
        node.title = `${SEVERITIES[severity].zh} · ${alertKind(alert.kind).label} · ${this.nameOf(alert.collector) || alert.collector} · ${this.textOf(alert)}`;
      }
    }
  }
}
