// The selected device: its details panel and its track over the last 30 minutes.

import {
  classLabel, classTitle, el, formatAge, formatBattery, formatClock, formatDistance, formatNumber, formatSpeed, isStale,
} from './format.js';
import { LocateControl } from './commands.js';
import { deviceLabel } from './names.js';
import { lastHeard } from './online.js';
import { ReadingsChart, readingRows } from './readings.js';

export const TRACK_WINDOW_MS = 30 * 60 * 1000;

export class DeviceDetails {
  constructor(map, nodes, { describeGrid, onClose, onTrack, user = null, getJSON = null }) {
    this.onTrack = onTrack || (() => {});
    this.map = map;
    this.locate = nodes.commands ? new LocateControl(nodes.commands, { user }) : null;
    this.chart = nodes.readings && getJSON ? new ReadingsChart(nodes.readings, { getJSON }) : null;
    this.nodes = nodes;
    this.describeGrid = describeGrid;
    this.device = null;
    this.track = null;
    this.trackStart = null;
    this.request = 0;
    map.createPane('gw-tracks').style.zIndex = 450;
    this.renderer = L.svg({ pane: 'gw-tracks' });
    nodes.close.addEventListener('click', onClose);
  }

  get selected() {
    return this.device ? this.device.id : null;
  }

  show(device, now) {
    const changed = !this.device || this.device.id !== device.id;
    this.device = device;
    this.nodes.panel.hidden = false;
    this.render(now);
    if (this.locate) this.locate.show(device);
    if (changed) {
      this.loadTrack(device.id, now);
      if (this.chart) {
        if (device.class === 'sensor') this.chart.load(device, now);
        else this.chart.clear();
      }
    }
  }

  update(device, now) {
    if (!this.device || this.device.id !== device.id) return;
    const previousT = this.device.t;
    this.device = device;
    if (this.locate) this.locate.update(device);
    if (this.track && device.t > previousT) {
      this.track.addLatLng([device.lat, device.lon]);
      this.updateTrackInfo();
    }
    this.render(now);
  }

  reloadTrack(now) {
    if (this.device) this.loadTrack(this.device.id, now);
  }

  refresh(now) {
    if (this.device) this.render(now);
    if (this.locate) this.locate.tick(now);
  }

  clear() {
    this.device = null;
    this.request += 1;
    this.nodes.panel.hidden = true;
    if (this.locate) this.locate.clear();
    if (this.chart) this.chart.clear();
    this.removeTrack();
  }

  render(now) {
    const d = this.device;
    const place = this.describeGrid(d.grid);
    const stale = isStale(d, now);
    const title = this.nodes.title;
    const label = deviceLabel(d);
    title.replaceChildren(
      ...(label !== d.id ? [el('span', { class: 'gw-details-label' }, label)] : []),
      el('span', { class: 'gw-details-id', title: 'Device id' }, d.id),
      el('span', { class: 'gw-badge', 'data-class': d.class, title: classTitle(d.class) }, classLabel(d.class)),
      el('span', { class: `gw-status ${stale ? 'gw-status--stale' : 'gw-status--live'}`, title: stale ? 'stale' : 'live' },
        stale ? '离线' : '在线'),
    );
    const gridText = d.grid
      ? place ? `${d.grid}（${place.community_name} · ${place.street_name}）` : d.grid
      : '网格外';
    const heard = lastHeard(d);
    const rows = [
      ...(d.plate ? [['车牌', 'Plate', d.plate]] : []),
      ...(d.person ? [['采集员', 'Collector', d.person]] : []),
      ...(d.name && d.name !== label ? [['名称', 'Name', d.name]] : []),
      ...(d.component ? [['部件', 'Component code', d.component]] : []),
      ['最后消息', 'Last message of any kind', Number.isFinite(heard) ? `${formatClock(heard)}（${formatAge(now - heard)}前）` : '—'],
      ...readingRows(d),
      ['网格', 'Unit grid', gridText],
      ['定位时间', 'Fix time', `${formatClock(d.t)}（${formatAge(now - d.t)}前）`],
      ['坐标', 'Latitude, longitude (WGS-84)', `${(d.wgs ? d.wgs[0] : d.lat).toFixed(6)}, ${(d.wgs ? d.wgs[1] : d.lon).toFixed(6)}`],
      ['精度', 'Horizontal accuracy', formatNumber(d.acc, 0, ' m')],
      ['速度', 'Speed', formatSpeed(d.spd)],
      ['航向', 'Heading', formatNumber(d.hdg, 0, '°')],
      ['电量', 'Battery', formatBattery(d.bat)],
      ['H3', 'H3 cell', d.cell || '—'],
      ['辖区', 'District', d.district || '—'],
    ];
    this.nodes.body.replaceChildren(
      ...rows.flatMap(([zh, en, value]) => [el('dt', { title: en }, zh), el('dd', {}, value)]),
    );
  }

  async loadTrack(id, now) {
    const request = ++this.request;
    this.removeTrack();
    this.nodes.trackInfo.textContent = '轨迹加载中…';
    this.nodes.trackInfo.title = 'Loading track';
    const to = new Date(now);
    const from = new Date(now - TRACK_WINDOW_MS);
    const url = `/api/devices/${encodeURIComponent(id)}/track`
      + `?from=${encodeURIComponent(from.toISOString())}&to=${encodeURIComponent(to.toISOString())}`;
    let feature;
    try {
      const response = await fetch(url, { headers: { Accept: 'application/json' } });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      feature = await response.json();
    } catch (error) {
      if (request === this.request) {
        this.nodes.trackInfo.textContent = '轨迹加载失败';
        this.nodes.trackInfo.title = `Track failed to load: ${error.message}`;
      }
      return;
    }
    if (request !== this.request) return;
    // one fix is a Point, none an empty FeatureCollection: both draw as no line
    const geometry = feature && feature.geometry;
    const coords = geometry && geometry.type === 'LineString' ? geometry.coordinates
      : geometry && geometry.type === 'Point' ? [geometry.coordinates] : [];
    const latlngs = coords.map(([lon, lat]) => [lat, lon]);
    const times = (feature.properties && feature.properties.times) || [];
    this.trackStart = times.length ? times[0] : null;
    this.track = L.polyline(latlngs, {
      renderer: this.renderer,
      className: 'gw-track',
      color: '#facc15',
      weight: 3,
      opacity: 0.95,
      interactive: false,
    }).addTo(this.map);
    const path = this.track.getElement();
    if (path) path.setAttribute('data-device', id);
    this.updateTrackInfo();
    this.onTrack(id, from.getTime(), to.getTime());
  }

  updateTrackInfo() {
    const latlngs = this.track.getLatLngs();
    let metres = 0;
    for (let i = 1; i < latlngs.length; i++) metres += this.map.distance(latlngs[i - 1], latlngs[i]);
    const since = this.trackStart ? `，自 ${formatClock(this.trackStart)}` : '';
    const who = this.device ? `${deviceLabel(this.device)} ` : '';
    this.nodes.trackInfo.textContent = `${who}近30分钟轨迹：${latlngs.length} 点，${formatDistance(metres)}${since}`;
    this.nodes.trackInfo.title = 'Track over the last 30 minutes: points, length';
  }

  removeTrack() {
    if (this.track) this.track.remove();
    this.track = null;
    this.trackStart = null;
    this.nodes.trackInfo.textContent = '';
    this.onTrack(null);
  }
}
