// Cases (案卷) on the command map: markers by state and urgency, the case list tab with
// its filters, a detail panel with the timeline and the actions the logged-in account may
// take (the API says which), the collectors proposed for verification, live "case" frames.
//
// The service decides everything (who may act, what an action needs); this module only
// shows what /api/cases answers and posts what the dispatcher chose, with the session's
// CSRF token.

import { toDisplay } from './datum.js';

// Positions arrive in display coordinates: getJSON and the live feed convert them once.

// alerts.cases.lifecycle LABELS_ZH, the actions' half (the states' come with each case)
export const ACTION_ZH = {
  file: '立案', reject: '不予立案', dispatch: '派遣', return: '回退', request_extension: '申请延期',
  approve_extension: '批准延期', refuse_extension: '驳回延期', park: '挂账', resume: '恢复处置',
  handle: '处置反馈', verify: '派发核查', close: '结案', reopen: '核查不通过', evaluate: '评价',
};
export const STATE_ZH = {
  reported: '待立案', rejected: '不予立案', filed: '待派遣', dispatched: '处置中', returned: '已回退',
  parked: '挂账', handled: '待核查', verifying: '核查中', closed: '已结案',
};
const TIMELINE_ZH = { create: '上报', warning: '即将超时', overdue: '已超时', escalate: '升级', ...ACTION_ZH };
const STATE_COLOURS = {
  reported: '#d97706', filed: '#ca8a04', dispatched: '#2563eb', returned: '#9333ea', parked: '#6b7280',
  handled: '#0891b2', verifying: '#0d9488', closed: '#16a34a', rejected: '#9ca3af',
};
// What each action must carry, as the lifecycle table has it: [field, label, kind]
const NEEDS = {
  reject: [['reason', '原因', 'text']],
  dispatch: [['department', '处置单位', 'department']],
  return: [['reason', '原因', 'text']],
  request_extension: [['reason', '原因', 'text'], ['hours', '延期小时', 'number']],
  refuse_extension: [['reason', '原因', 'text']],
  park: [['reason', '原因', 'text']],
  handle: [['feedback', '处置情况', 'text']],
  verify: [['collector', '核查人 (账号或设备)', 'collector']],
  reopen: [['reason', '原因', 'text']],
  evaluate: [['grade', '评价', 'grade']],
};
const GRADES = [['satisfied', '满意'], ['acceptable', '基本满意'], ['unsatisfied', '不满意']];
const FINISHED = new Set(['closed', 'rejected']);

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key in node) node[key] = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function when(iso) {
  if (!iso) return '—';
  const at = new Date(iso);
  return Number.isNaN(at.getTime()) ? iso : at.toLocaleString('zh-CN', { hour12: false });
}

export function isOverdue(item, now = Date.now()) {
  const stage = item.stage;
  return Boolean(stage && stage.standing === 'overdue') || Boolean(stage && stage.due && Date.parse(stage.due) <= now
    && stage.standing !== 'parked');
}

export class CaseBoard {
  // nodes: panel (the tab's section), count (the tab's badge); api: getJSON, csrf(),
  // onPick(latlng) to bring a case into view
  constructor(map, nodes, api) {
    this.map = map;
    this.nodes = nodes;
    this.api = api;
    this.cases = new Map();
    this.markers = new Map();
    this.layer = L.layerGroup().addTo(map);
    this.candidates = L.layerGroup().addTo(map);
    this.selected = null;
    this.departments = [];
    this.loaded = false;
    this.opened = 0; // detail fetches answered (drawn or, holding nothing new, not)
    this.build();
  }

  build() {
    const { panel } = this.nodes;
    this.stateFilter = el('select', { id: 'gw-case-state', title: 'Filter by state' },
      el('option', { value: '' }, '全部状态'),
      ...Object.entries(STATE_ZH).map(([value, zh]) => el('option', { value }, zh)));
    this.categoryFilter = el('select', { id: 'gw-case-category', title: 'Filter by category' },
      el('option', { value: '' }, '全部类别'));
    this.streetFilter = el('input', { id: 'gw-case-street', type: 'search', placeholder: '街道编码', title: 'Filter by street code' });
    this.overdueFilter = el('input', { id: 'gw-case-overdue', type: 'checkbox', title: 'Overdue only' });
    for (const input of [this.stateFilter, this.categoryFilter, this.overdueFilter]) {
      input.addEventListener('change', () => this.load());
    }
    this.streetFilter.addEventListener('change', () => this.load());
    this.list = el('ul', { className: 'gw-rows gw-case-rows', id: 'gw-case-rows' });
    this.empty = el('p', { className: 'gw-empty', id: 'gw-case-empty', title: 'No cases' }, '暂无案卷');
    this.detail = el('section', { className: 'gw-case-detail', id: 'gw-case-detail', hidden: true });
    panel.append(
      el('div', { className: 'gw-filter gw-case-filters' }, this.stateFilter, this.categoryFilter, this.streetFilter,
        el('label', { title: 'Overdue only' }, this.overdueFilter, '超时')),
      this.detail, this.list, this.empty);
  }

  // The categories come from the Open311 service list, which answers an empty list while
  // no taxonomy is loaded (where /api/taxonomy refuses); departments when first needed.
  async start() {
    try {
      for (const service of await this.api.getJSON('/open311/v2/services.json')) {
        this.categoryFilter.append(el('option', { value: service.service_code },
          `${service.service_code} ${service.service_name}`));
      }
    } catch (error) {
      // no categories to filter by: the list still shows every case
    }
    await this.load();
  }

  async loadDepartments() {
    if (this.departments.length) return;
    try {
      this.departments = (await this.api.getJSON('/api/departments')).departments || [];
    } catch (error) {
      this.departments = [];
    }
  }

  filters() {
    const query = new URLSearchParams({ limit: '200' });
    if (this.stateFilter.value) query.set('state', this.stateFilter.value);
    if (this.categoryFilter.value) query.set('category', this.categoryFilter.value);
    if (this.streetFilter.value.trim()) query.set('street', this.streetFilter.value.trim());
    if (this.overdueFilter.checked) query.set('overdue', 'true');
    return query;
  }

  async load() {
    let answer;
    try {
      answer = await this.api.getJSON(`/api/cases?${this.filters()}`);
    } catch (error) {
      this.empty.textContent = `案卷加载失败 (${error.message})`;
      this.empty.hidden = false;
      return;
    }
    this.cases.clear();
    for (const item of answer.cases || []) this.cases.set(item.id, item);
    this.loaded = true;
    this.render();
  }

  matches(item) {
    if (this.stateFilter.value && item.state !== this.stateFilter.value) return false;
    if (this.categoryFilter.value && item.category !== this.categoryFilter.value) return false;
    if (this.streetFilter.value.trim() && item.street !== this.streetFilter.value.trim()) return false;
    if (this.overdueFilter.checked && !isOverdue(item)) return false;
    return true;
  }

  // A live "case" frame: the summary of a case created or changed.
  frame(frame) {
    const item = frame && frame.case;
    if (!item || !Number.isInteger(item.id)) return;
    const known = this.cases.get(item.id) || {};
    const merged = { ...known, ...item };
    if (this.matches(merged)) this.cases.set(item.id, merged);
    else this.cases.delete(item.id);
    this.render();
    // the detail is drawn again only for news: the feed repeats what this page just did
    if (this.selected === item.id && this.shownAt !== item.updated_at) return this.open(item.id);
    return Promise.resolve();
  }

  render() {
    const now = Date.now();
    const items = [...this.cases.values()].sort((a, b) => b.id - a.id);
    this.list.replaceChildren(...items.map((item) => this.row(item, now)));
    this.empty.hidden = items.length > 0;
    this.empty.textContent = '暂无案卷';
    const open = items.filter((item) => !FINISHED.has(item.state)).length;
    this.nodes.count.textContent = String(open);
    this.nodes.count.dataset.count = String(open);
    this.drawMarkers(items, now);
  }

  row(item, now) {
    const overdue = isOverdue(item, now);
    const li = el('li', {
      className: 'gw-row gw-case-row', dataset: { caseId: String(item.id), state: item.state, overdue: String(overdue) },
      tabIndex: 0, title: `case ${item.id}`,
    },
    el('span', { className: 'gw-case-state', style: `background:${STATE_COLOURS[item.state] || '#666'}` },
      item.state_zh || STATE_ZH[item.state] || item.state),
    el('span', { className: 'gw-case-title' }, `#${item.id} ${item.category_name || item.category}`),
    item.urgent ? el('span', { className: 'gw-case-flag gw-case-urgent' }, '紧急') : null,
    overdue ? el('span', { className: 'gw-case-flag gw-case-overdue' }, '超时') : null,
    el('span', { className: 'gw-case-place' }, item.street || item.district || '—'));
    li.addEventListener('click', () => this.open(item.id, { pan: true }));
    li.addEventListener('keydown', (event) => {
      if (event.key === 'Enter') this.open(item.id, { pan: true });
    });
    return li;
  }

  drawMarkers(items, now) {
    const seen = new Set();
    for (const item of items) {
      if (!Number.isFinite(item.lat) || !Number.isFinite(item.lon)) continue;
      seen.add(item.id);
      const overdue = isOverdue(item, now);
      const style = {
        radius: item.urgent ? 10 : 7, color: overdue ? '#dc2626' : '#1f2937', weight: overdue ? 3 : 1.5,
        dashArray: overdue ? '4 3' : null, fillColor: STATE_COLOURS[item.state] || '#666',
        fillOpacity: FINISHED.has(item.state) ? 0.35 : 0.9,
      };
      let marker = this.markers.get(item.id);
      const at = [item.lat, item.lon];
      if (!marker) {
        marker = L.circleMarker(at, style).addTo(this.layer);
        marker.on('click', () => this.open(item.id));
        this.markers.set(item.id, marker);
      } else {
        marker.setLatLng(at);
        marker.setStyle(style);
      }
      marker.getElement && marker.getElement() && marker.getElement().setAttribute('data-case-id', String(item.id));
      marker.bindTooltip(`#${item.id} ${item.state_zh || STATE_ZH[item.state]} ${item.category_name || item.category}`
        + `${item.urgent ? ' 紧急' : ''}${overdue ? ' 超时' : ''}`);
    }
    for (const [id, marker] of this.markers) {
      if (!seen.has(id)) {
        marker.remove();
        this.markers.delete(id);
      }
    }
  }

  async open(id, { pan = false } = {}) {
    this.selected = id;
    let item;
    let timeline;
    try {
      [item, timeline] = await Promise.all([
        this.api.getJSON(`/api/cases/${id}`), this.api.getJSON(`/api/cases/${id}/timeline`)]);
    } catch (error) {
      this.detail.hidden = false;
      this.shownAt = null;
      this.detail.replaceChildren(el('p', { className: 'gw-case-error' }, `案卷 ${id} 加载失败 (${error.message})`));
      return;
    }
    this.opened += 1;
    if (this.selected !== id) return;
    if (pan && Number.isFinite(item.lat) && this.api.onPick) this.api.onPick(L.latLng(item.lat, item.lon));
    // This page's own action and the live feed's news of it may both ask for the case:
    // what is shown already is not drawn again, so a form being filled in stays.
    if (!this.detail.hidden && this.detail.dataset.caseId === String(id) && this.shownAt === item.updated_at) return;
    this.showDetail(item, timeline.timeline || []);
    this.showCandidates(item);
  }

  close() {
    this.selected = null;
    this.shownAt = null;
    this.detail.hidden = true;
    this.detail.replaceChildren();
    this.candidates.clearLayers();
  }

  showDetail(item, timeline) {
    const stage = item.stage;
    const facts = [
      ['状态', item.state_zh || STATE_ZH[item.state]], ['类别', `${item.category} ${item.category_name || ''}`],
      ['来源', item.source], ['描述', item.description || '—'], ['处置单位', item.department || '—'],
      ['网格', item.grid || '—'],
      ['时限', stage ? `${when(stage.due)}${isOverdue(item) ? ' (已超时)' : ''}` : '—'],
    ];
    const head = el('header', { className: 'gw-details-head' },
      el('h3', { id: 'gw-case-title' }, `案卷 #${item.id}${item.urgent ? ' 紧急' : ''}`),
      el('button', { type: 'button', className: 'gw-close', id: 'gw-case-close', title: 'Close case' }, '×'));
    head.querySelector('button').addEventListener('click', () => this.close());
    const dl = el('dl', { className: 'gw-details-body' });
    for (const [term, value] of facts) dl.append(el('dt', {}, term), el('dd', {}, value));
    const actions = el('div', { className: 'gw-case-actions', id: 'gw-case-actions' });
    for (const action of item.actions || []) {
      const button = el('button', { type: 'button', dataset: { action }, title: action }, ACTION_ZH[action] || action);
      button.addEventListener('click', () => this.ask(item, action));
      actions.append(button);
    }
    if (!(item.actions || []).length) actions.append(el('span', { className: 'gw-empty' }, '无可执行操作'));
    this.form = el('form', { className: 'gw-case-form', id: 'gw-case-form', hidden: true });
    this.message = el('p', { className: 'gw-case-message', id: 'gw-case-message', role: 'status' });
    this.candidateNote = el('p', { className: 'gw-case-candidates', id: 'gw-case-candidates' });
    const steps = el('ol', { className: 'gw-case-timeline', id: 'gw-case-timeline' },
      ...timeline.map((e) => el('li', { dataset: { action: e.action } },
        el('time', {}, when(e.at)), ` ${TIMELINE_ZH[e.action] || e.action} → ${STATE_ZH[e.state] || e.state} `,
        el('span', { className: 'gw-case-actor' }, e.actor), e.note ? ` ${e.note}` : '')));
    this.detail.replaceChildren(head, dl, actions, this.form, this.message, this.candidateNote,
      el('h4', {}, '流转记录'), steps);
    this.shownAt = item.updated_at;
    this.detail.hidden = false;
    this.detail.dataset.caseId = String(item.id);
    this.detail.dataset.state = item.state;
  }

  // The action's form: the fields it needs, or none (then it is posted at once).
  async ask(item, action) {
    const needs = NEEDS[action] || [];
    if (needs.some(([, , kind]) => kind === 'department')) await this.loadDepartments();
    if (!needs.length) {
      this.act(item, action, {});
      return;
    }
    const inputs = needs.map(([name, label, kind]) => [name, kind, this.input(item, name, kind), label]);
    const submit = el('button', { type: 'submit', id: 'gw-case-submit' }, `确认${ACTION_ZH[action] || action}`);
    this.form.replaceChildren(...inputs.map(([, , input, label]) => el('label', {}, label, input)), submit);
    this.form.dataset.action = action;
    this.form.hidden = false;
    this.form.onsubmit = (event) => {
      event.preventDefault();
      const fields = {};
      for (const [name, kind, input] of inputs) {
        const value = input.value.trim();
        if (value) fields[name] = kind === 'number' ? Number(value) : value;
      }
      this.act(item, action, fields);
    };
    inputs[0][2].focus();
  }

  input(item, name, kind) {
    const id = `gw-case-field-${name}`;
    if (kind === 'department') {
      const mine = this.departments.filter((d) => !d.district || !item.district || d.district === item.district);
      const select = el('select', { id, name }, ...mine.map((d) => el('option', { value: d.code }, d.name)));
      if (item.suggested_department) select.value = item.suggested_department;
      return select;
    }
    if (kind === 'grade') return el('select', { id, name }, ...GRADES.map(([v, zh]) => el('option', { value: v }, zh)));
    const input = el('input', { id, name, type: kind === 'number' ? 'number' : 'text' });
    if (kind === 'collector' && this.proposed && this.proposed.length) input.value = this.proposed[0].device || '';
    return input;
  }

  async act(item, action, fields) {
    this.message.textContent = `${ACTION_ZH[action] || action}…`;
    let response;
    try {
      response = await fetch(`/api/cases/${item.id}/actions/${action}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json', 'X-CSRF-Token': this.api.csrf() },
        body: JSON.stringify(fields),
      });
    } catch (error) {
      this.message.textContent = `提交失败 (${error.message})`;
      return;
    }
    const body = toDisplay(await response.json().catch(() => ({})));
    if (!response.ok) {
      this.message.textContent = `未能${ACTION_ZH[action] || action}: ${body.error || `HTTP ${response.status}`}`;
      this.message.dataset.outcome = 'refused';
      return;
    }
    await this.frame({ case: body });
    this.message.dataset.outcome = 'ok';
    this.message.textContent = `已${ACTION_ZH[action] || action}`;
  }

  // The collectors proposed to verify on site: from the candidates route where the
  // service has one; without it (404) the dispatcher names the collector by hand.
  async showCandidates(item) {
    this.candidates.clearLayers();
    this.proposed = [];
    if (!['handled', 'verifying'].includes(item.state)) return;
    let response;
    try {
      response = await fetch(`/api/cases/${item.id}/candidates`, { headers: { Accept: 'application/json' } });
    } catch (error) {
      return;
    }
    if (!response.ok) {
      this.candidateNote.textContent = response.status === 404 ? '暂无推荐核查人 (请手动填写)' : '';
      return;
    }
    const body = toDisplay(await response.json().catch(() => ({})));
    this.proposed = (body.candidates || []).filter((c) => Number.isFinite(c.lat) && Number.isFinite(c.lon));
    this.candidateNote.textContent = this.proposed.length
      ? `推荐核查人: ${this.proposed.map((c) => c.name || c.device).join('、')}` : '附近暂无采集员';
    for (const c of this.proposed) {
      L.circleMarker([c.lat, c.lon], { radius: 6, color: '#0d9488', weight: 2, fillOpacity: 0.2 })
        .bindTooltip(`核查候选 ${c.name || c.device}${Number.isFinite(c.distance_m) ? ` ${Math.round(c.distance_m)} 米` : ''}`)
        .addTo(this.candidates);
    }
  }
}
