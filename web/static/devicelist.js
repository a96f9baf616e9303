// The device list panel: one row per device, sorted by id, updated in place.

import { DEVICE_CLASSES, classLabel, classTitle, el, formatAge, formatBattery, isStale } from './format.js';
import { deviceFacts, deviceLabel, nameTerms } from './names.js';
import { lastHeard } from './online.js';

export class DeviceList {
  constructor(tbody, emptyNote, { onSelect, describeGrid }) {
    this.tbody = tbody;
    this.emptyNote = emptyNote;
    this.describeGrid = describeGrid;
    this.rows = new Map();
    this.order = [];
    this.selected = null;
    this.terms = [];
    tbody.addEventListener('click', (event) => {
      const row = event.target.closest('.gw-device-row');
      if (row) onSelect(row.dataset.device);
    });
    tbody.addEventListener('keydown', (event) => {
      const row = event.target.closest('.gw-device-row');
      if (row && (event.key === 'Enter' || event.key === ' ')) {
        event.preventDefault();
        onSelect(row.dataset.device);
      }
    });
  }

  matches(device) {
    if (!this.terms.length) return true;
    const place = this.describeGrid(device.grid);
    const cls = DEVICE_CLASSES[device.class];
    const haystack = [
      device.id,
      ...nameTerms(device),
      device.class,
      cls ? cls.zh : '',
      device.grid || '',
      place ? place.community_name : '',
      place ? place.street_name : '',
    ].join(' ').toLowerCase();
    return this.terms.every((term) => haystack.includes(term));
  }

  setFilter(text) {
    this.terms = text.toLowerCase().split(/\s+/).filter(Boolean);
    for (const row of this.rows.values()) row.node.hidden = !this.matches(row.device);
    this.updateEmpty();
  }

  set(device, now) {
    let row = this.rows.get(device.id);
    if (!row) {
      row = this.create(device);
      this.insert(device.id, row.node);
    }
    row.device = device;
    this.fill(row, now);
    row.node.hidden = !this.matches(device);
    this.updateEmpty();
  }

  create(device) {
    const cells = {
      id: el('td', { class: 'gw-col-id' }),
      cls: el('td', { class: 'gw-col-class' }),
      grid: el('td', { class: 'gw-col-grid' }),
      age: el('td', { class: 'gw-col-age' }),
      bat: el('td', { class: 'gw-col-bat' }),
    };
    const node = el('tr', { class: 'gw-device-row', 'data-device': device.id, tabindex: 0 });
    node.append(cells.id, cells.cls, cells.grid, cells.age, cells.bat);
    const row = { node, cells, device };
    this.rows.set(device.id, row);
    return row;
  }

  insert(id, node) {
    let lo = 0;
    let hi = this.order.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.order[mid] < id) lo = mid + 1;
      else hi = mid;
    }
    const before = lo < this.order.length ? this.rows.get(this.order[lo]).node : null;
    this.order.splice(lo, 0, id);
    this.tbody.insertBefore(node, before);
  }

  remove(id) {
    const row = this.rows.get(id);
    if (!row) return;
    row.node.remove();
    this.rows.delete(id);
    this.order.splice(this.order.indexOf(id), 1);
    this.updateEmpty();
  }

  retainOnly(ids) {
    for (const id of [...this.rows.keys()]) if (!ids.has(id)) this.remove(id);
  }

  fill(row, now) {
    const { device, cells, node } = row;
    const label = deviceLabel(device);
    const facts = deviceFacts(device);
    cells.id.replaceChildren(el('span', { class: 'gw-device-label' }, label),
      ...(label !== device.id ? [el('span', { class: 'gw-device-id' }, device.id)] : []));
    cells.id.title = [label, ...facts, device.id].filter((v, i, all) => all.indexOf(v) === i).join(' · ');
    cells.cls.textContent = classLabel(device.class);
    cells.cls.title = classTitle(device.class);
    cells.cls.dataset.class = device.class;
    cells.grid.textContent = device.grid || '网格外';
    const place = this.describeGrid(device.grid);
    cells.grid.title = device.grid
      ? place ? `${place.community_name} · ${place.street_name}` : device.grid
      : 'Off any grid';
    cells.bat.textContent = formatBattery(device.bat);
    node.classList.toggle('gw-low-battery', device.bat != null && device.bat < 20);
    this.fillAge(row, now);
  }

  fillAge(row, now) {
    row.cells.age.textContent = formatAge(now - lastHeard(row.device));
    row.node.classList.toggle('gw-stale', isStale(row.device, now));
  }

  refresh(now) {
    for (const row of this.rows.values()) this.fillAge(row, now);
  }

  select(id) {
    const previous = this.selected && this.rows.get(this.selected);
    if (previous) previous.node.classList.remove('gw-selected');
    this.selected = id;
    const current = id && this.rows.get(id);
    if (current) {
      current.node.classList.add('gw-selected');
      current.node.scrollIntoView({ block: 'nearest' });
    }
  }

  updateEmpty() {
    const anyShown = [...this.rows.values()].some((row) => !row.node.hidden);
    this.emptyNote.hidden = anyShown;
    this.emptyNote.textContent = this.rows.size ? '无匹配设备' : '暂无设备';
  }
}
