// History and playback: a device and a time range (blank: the service's default, the
// collector's current slot so far, else the last 8 hours), the track with GPS jitter
// filtered out by the service (GET /api/devices/{id}/history; the method is stated in the
// panel), its filtered distance beside the raw point count, the stops, and a replay that
// moves a marker through the track's points in time order at 1×, 4×, 16× or 64×.

import { cityInput, el, formatClock, formatDistance } from './format.js';
import { deviceLabel } from './names.js';
import { trackLinks } from './downloads.js';

export const SPEEDS = Object.freeze([1, 4, 16, 64]);
const DEFAULT_STOP_MIN = 5;
// A replay step longer than this (the tab was hidden) does not jump the marker ahead.
const MAX_FRAME_MS = 250;

export class HistoryPanel {
  constructor(map, panel, { getJSON, devices }) {
    this.map = map;
    this.getJSON = getJSON;
    this.devices = devices; // () => [{ id, class, name }]
    this.layer = L.layerGroup().addTo(map);
    this.marker = null;
    this.points = []; // { t, lat, lng } in time order
    this.stops = [];
    this.result = null;
    this.playing = false;
    this.speed = 1;
    this.trackTime = null;
    this.frame = 0;
    this.lastFrame = 0;
    this.request = 0;
    map.createPane('gw-history').style.zIndex = 630;
    this.renderer = L.svg({ pane: 'gw-history' });

    this.deviceSelect = el('select', { id: 'gw-history-device', title: 'Device' });
    this.fromInput = el('input', { type: 'datetime-local', id: 'gw-history-from', title: 'From (blank: the shift so far, else the last 8 hours)' });
    this.toInput = el('input', { type: 'datetime-local', id: 'gw-history-to', title: 'To (blank: now)' });
    this.stopInput = el('input', { type: 'number', id: 'gw-history-stop-min', min: '1', max: '240', step: '1',
      value: String(DEFAULT_STOP_MIN), title: 'A stop: staying within 30 m for at least this many minutes' });
    this.loadButton = el('button', { type: 'button', id: 'gw-history-load', class: 'gw-history-load' }, '查询');
    this.summary = el('p', { class: 'gw-history-summary', id: 'gw-history-summary' }, '选择设备与时段后查询');
    this.method = el('p', { class: 'gw-history-method', id: 'gw-history-method' });
    // the queried range's fixes as files (the exports give the recorded fixes, unfiltered)
    this.downloads = el('p', { class: 'gw-downloads', 'data-kind': 'history-track', id: 'gw-history-downloads', hidden: true });
    this.stopList = el('ol', { class: 'gw-history-stops', id: 'gw-history-stops' });
    this.playButton = el('button', { type: 'button', id: 'gw-replay-play', class: 'gw-replay-play', disabled: true,
      title: 'Play / pause the replay' }, '▶ 回放');
    this.slider = el('input', { type: 'range', id: 'gw-replay-slider', min: '0', max: '0', step: '1', value: '0',
      disabled: true, title: 'Replay position (fix by fix)' });
    this.clock = el('span', { class: 'gw-replay-clock', id: 'gw-replay-clock' }, '—');
    this.speedButtons = SPEEDS.map((speed) => el('button', {
      type: 'button', class: 'gw-replay-speed', 'data-speed': speed, 'aria-pressed': String(speed === 1),
      title: `Replay at ${speed}× real time`,
    }, `${speed}×`));

    const field = (label, input) => el('label', { class: 'gw-history-field' }, el('span', {}, label), input);
    panel.replaceChildren(
      el('div', { class: 'gw-history-form' },
        field('设备', this.deviceSelect), field('起', this.fromInput), field('止', this.toInput),
        field('停留≥(分钟)', this.stopInput), this.loadButton),
      this.summary,
      this.downloads,
      el('div', { class: 'gw-replay' }, this.playButton, this.slider, this.clock,
        el('span', { class: 'gw-replay-speeds' }, ...this.speedButtons)),
      el('h3', { class: 'gw-section-head', title: 'Stops: dwells longer than the minutes above' }, '停留点'),
      this.stopList,
      this.method,
    );
    this.loadButton.addEventListener('click', () => this.load());
    this.playButton.addEventListener('click', () => (this.playing ? this.pause() : this.play()));
    this.slider.addEventListener('input', () => {
      this.pause();
      this.seek(Number(this.slider.value));
    });
    for (const button of this.speedButtons) {
      button.addEventListener('click', () => this.setSpeed(Number(button.dataset.speed)));
    }
    this.stopList.addEventListener('click', (event) => {
      const node = event.target.closest('[data-stop]');
      const stop = node && this.stops[Number(node.dataset.stop)];
      if (stop) this.map.setView([stop.lat, stop.lon], Math.max(this.map.getZoom(), 17));
    });
  }

  // Fill the device list (kept: the choice made), e.g. when the panel is shown.
  refreshDevices() {
    const chosen = this.deviceSelect.value;
    const devices = [...this.devices()].sort((a, b) => (a.class === b.class ? a.id.localeCompare(b.id) : a.class === 'collector' ? -1 : 1));
    this.deviceSelect.replaceChildren(...devices.map((d) => el('option', { value: d.id }, d.name ? `${d.id} ${d.name}` : d.id)));
    if (chosen && devices.some((d) => d.id === chosen)) this.deviceSelect.value = chosen;
  }

  setDevice(id) {
    if (!id) return;
    if (![...this.deviceSelect.options].some((o) => o.value === id)) this.refreshDevices();
    this.deviceSelect.value = id;
  }

  async load() {
    const id = this.deviceSelect.value;
    if (!id) return;
    const request = ++this.request;
    const params = new URLSearchParams();
    // the inputs hold the city's wall clock, sent as it is: the API reads a time without
    // an offset in the city's zone (the browser's own zone plays no part)
    if (this.fromInput.value) params.set('from', this.fromInput.value);
    if (this.toInput.value) params.set('to', this.toInput.value);
    params.set('stop_min', this.stopInput.value || String(DEFAULT_STOP_MIN));
    this.pause();
    this.summary.textContent = '查询中…';
    let result;
    try {
      result = await this.getJSON(`/api/devices/${encodeURIComponent(id)}/history?${params}`);
    } catch (error) {
      if (request === this.request) {
        this.summary.textContent = '历史轨迹加载失败';
        this.summary.title = error.message;
      }
      return;
    }
    if (request !== this.request) return;
    this.show(result);
  }

  show(result) {
    this.result = result;
    this.layer.clearLayers();
    this.marker = null;
    const coords = (result.track && result.track.geometry && result.track.geometry.coordinates) || [];
    const times = (result.track && result.track.properties && result.track.properties.times) || [];
    this.points = coords.map(([lon, lat], i) => ({ t: times[i], lat, lng: lon }));
    this.stops = Array.isArray(result.stops) ? result.stops : [];
    if (!this.fromInput.value && Number.isFinite(result.from)) this.fromInput.value = cityInput(result.from);
    if (!this.toInput.value && Number.isFinite(result.to)) this.toInput.value = cityInput(result.to);

    const raw = result.raw || {};
    const slot = result.slot ? `，班次自 ${formatClock(result.slot.start)}` : '';
    const device = [...this.devices()].find((d) => d.id === result.device);
    const label = device ? deviceLabel(device) : result.device;
    const who = label !== result.device ? `${label}（${result.device}）` : result.device;
    this.summary.textContent = `${who}：原始 ${raw.points ?? 0} 点，去抖后 ${this.points.length} 点，`
      + `里程 ${formatDistance(result.distance_m || 0)}（未去抖连线 ${formatDistance(raw.distance_m || 0)}），`
      + `停留 ${this.stops.length} 处${slot}`;
    this.summary.title = `${formatClock(result.from)} – ${formatClock(result.to)}`
      + (raw.truncated ? ' (more fixes than one answer holds: the first ones only)' : '');
    this.summary.dataset.distance = String(result.distance_m || 0);
    const range = Number.isFinite(result.from) && Number.isFinite(result.to);
    this.downloads.hidden = !range;
    this.downloads.replaceChildren(...(range ? ['轨迹 下载：', ...trackLinks(result.device, result.from, result.to)] : []));
    this.summary.dataset.rawPoints = String(raw.points ?? 0);
    this.method.textContent = (result.method && (result.method.zh || result.method.en)) || '';
    this.method.title = (result.method && result.method.en) || '';

    if (this.points.length) {
      const line = L.polyline(this.points.map((p) => [p.lat, p.lng]), {
        renderer: this.renderer, className: 'gw-history-track', color: '#38bdf8', weight: 3, opacity: 0.9, interactive: false,
      }).addTo(this.layer);
      this.map.fitBounds(line.getBounds(), { padding: [40, 40], maxZoom: 18 });
    }
    this.stopList.replaceChildren(...this.stops.map((s, i) => el('li', {
      class: 'gw-history-stop', 'data-stop': i, tabindex: 0, title: `${s.fixes} fixes`,
    }, `${formatClock(s.start)} – ${formatClock(s.end)}，停留 ${Math.round(s.minutes)} 分钟`)));
    this.stops.forEach((s, i) => {
      L.marker([s.lat, s.lon], {
        icon: L.divIcon({ className: 'gw-stop-marker', html: `<span>${i + 1}</span>`, iconSize: [20, 20] }),
        pane: 'gw-history', keyboard: false,
        title: `停留 ${Math.round(s.minutes)} 分钟 ${formatClock(s.start)} – ${formatClock(s.end)}`,
      }).addTo(this.layer);
    });
    const playable = this.points.length > 1;
    this.playButton.disabled = !playable;
    this.slider.disabled = !playable;
    this.slider.max = String(Math.max(0, this.points.length - 1));
    if (this.points.length) {
      this.marker = L.marker([this.points[0].lat, this.points[0].lng], {
        icon: L.divIcon({ className: 'gw-replay-marker', iconSize: [16, 16] }), pane: 'gw-history', keyboard: false,
      }).addTo(this.layer);
      this.seek(0);
    }
  }

  setSpeed(speed) {
    this.speed = speed;
    for (const button of this.speedButtons) button.setAttribute('aria-pressed', String(Number(button.dataset.speed) === speed));
  }

  // The marker at fix ``index``.
  seek(index) {
    const p = this.points[index];
    if (!p) return;
    this.trackTime = p.t;
    this.place(index, p);
  }

  place(index, latlng) {
    if (this.marker) this.marker.setLatLng([latlng.lat, latlng.lng]);
    this.slider.value = String(index);
    this.clock.textContent = formatClock(this.trackTime);
    this.clock.dataset.index = String(index);
  }

  // Where the marker is now: [lat, lng] (what the page shows, for people and tests alike).
  position() {
    if (!this.marker) return null;
    const at = this.marker.getLatLng();
    return [at.lat, at.lng];
  }

  play() {
    if (this.points.length < 2) return;
    if (Number(this.slider.value) >= this.points.length - 1) this.seek(0);
    this.playing = true;
    this.playButton.textContent = '⏸ 暂停';
    this.lastFrame = performance.now();
    this.frame = requestAnimationFrame((now) => this.step(now));
  }

  pause() {
    this.playing = false;
    cancelAnimationFrame(this.frame);
    this.playButton.textContent = '▶ 回放';
  }

  step(now) {
    if (!this.playing) return;
    const dt = Math.min(MAX_FRAME_MS, now - this.lastFrame);
    this.lastFrame = now;
    this.trackTime += dt * this.speed;
    const last = this.points.length - 1;
    let i = Math.max(0, Number(this.slider.value));
    while (i < last && this.points[i + 1].t <= this.trackTime) i += 1;
    if (i >= last) {
      this.trackTime = this.points[last].t;
      this.place(last, this.points[last]);
      this.pause();
      return;
    }
    const a = this.points[i];
    const b = this.points[i + 1];
    const f = b.t > a.t ? Math.min(1, Math.max(0, (this.trackTime - a.t) / (b.t - a.t))) : 0;
    this.place(i, { lat: a.lat + (b.lat - a.lat) * f, lng: a.lng + (b.lng - a.lng) * f });
    this.frame = requestAnimationFrame((t) => this.step(t));
  }

  clear() {
    this.pause();
    this.layer.clearLayers();
    this.marker = null;
    this.points = [];
  }
}
