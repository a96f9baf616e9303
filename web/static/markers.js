// One map marker per device. Deltas glide a marker from where it is drawn now to its
// new fix over roughly one tick, so positions never jump on a live feed.

import { classTitle, isStale } from './format.js';
import { deviceLabel } from './names.js';

const ICON_SIZES = { collector: [16, 16], vehicle: [22, 22], sensor: [14, 14] };
const Z_OFFSETS = { sensor: 0, collector: 100, vehicle: 200 };
const VEHICLE_ARROW = '<svg viewBox="-10 -10 20 20" aria-hidden="true"><path d="M0,-9 L7,7 L0,3 L-7,7 Z"/></svg>';

export class DeviceMarkers {
  constructor(map, { onSelect }) {
    this.map = map;
    this.onSelect = onSelect;
    this.entries = new Map();
    this.glides = new Map();
    this.frame = 0;
    this.selected = null;
    this.matches = () => true;
  }

  get count() {
    return this.entries.size;
  }

  position(id) {
    const entry = this.entries.get(id);
    return entry ? entry.marker.getLatLng() : null;
  }

  set(device, { now, glideMs = 0 }) {
    const target = L.latLng(device.lat, device.lon);
    let entry = this.entries.get(device.id);
    if (!entry || entry.deviceClass !== device.class) {
      if (entry) this.remove(device.id);
      entry = this.create(device, target);
    } else if (glideMs > 0 && !document.hidden) {
      this.glide(device.id, entry.marker.getLatLng(), target, glideMs);
    } else {
      this.glides.delete(device.id);
      entry.marker.setLatLng(target);
    }
    entry.device = device;
    this.decorate(entry, now);
  }

  create(device, latlng) {
    const size = ICON_SIZES[device.class] || [14, 14];
    const icon = L.divIcon({
      className: `gw-marker gw-marker--${device.class}`,
      html: device.class === 'vehicle' ? `<span class="gw-glyph">${VEHICLE_ARROW}</span>` : '<span class="gw-glyph"></span>',
      iconSize: size,
    });
    const marker = L.marker(latlng, {
      icon,
      riseOnHover: true,
      zIndexOffset: Z_OFFSETS[device.class] || 0,
    });
    const entry = { marker, device, deviceClass: device.class };
    marker.on('click', () => this.onSelect(entry.device.id));
    marker.addTo(this.map);
    this.entries.set(device.id, entry);
    return entry;
  }

  remove(id) {
    const entry = this.entries.get(id);
    if (!entry) return;
    entry.marker.remove();
    this.entries.delete(id);
    this.glides.delete(id);
  }

  retainOnly(ids) {
    for (const id of [...this.entries.keys()]) if (!ids.has(id)) this.remove(id);
  }

  decorate(entry, now) {
    const node = entry.marker.getElement();
    if (!node) return;
    const { device } = entry;
    node.dataset.device = device.id;
    node.title = `${deviceLabel(device)}${device.label && device.label !== device.id ? ` (${device.id})` : ''} · ${classTitle(device.class)}`;
    node.classList.toggle('gw-stale', isStale(device, now));
    node.classList.toggle('gw-selected', device.id === this.selected);
    node.classList.toggle('gw-dimmed', !this.matches(device));
    const heading = Number.isFinite(device.hdg) ? device.hdg : null;
    node.classList.toggle('gw-no-heading', heading === null);
    const glyph = node.firstElementChild;
    if (glyph && device.class === 'vehicle') glyph.style.transform = heading === null ? '' : `rotate(${heading}deg)`;
  }

  refresh(now) {
    for (const entry of this.entries.values()) this.decorate(entry, now);
  }

  select(id, now) {
    this.selected = id;
    this.refresh(now);
  }

  setFilter(matches, now) {
    this.matches = matches;
    this.refresh(now);
  }

  glide(id, from, to, durationMs) {
    this.glides.set(id, { from, to, start: performance.now(), durationMs });
    if (!this.frame) this.frame = requestAnimationFrame((t) => this.step(t));
  }

  step(time) {
    this.frame = 0;
    for (const [id, g] of this.glides) {
      const entry = this.entries.get(id);
      const f = Math.min(1, Math.max(0, (time - g.start) / g.durationMs));
      if (entry) {
        entry.marker.setLatLng([g.from.lat + (g.to.lat - g.from.lat) * f, g.from.lng + (g.to.lng - g.from.lng) * f]);
      }
      if (!entry || f >= 1) this.glides.delete(id);
    }
    if (this.glides.size) this.frame = requestAnimationFrame((t) => this.step(t));
  }
}
