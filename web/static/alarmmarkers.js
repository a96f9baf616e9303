// A pulsing map marker for every open alarm that carries a position, above the devices.

import { alarmKind } from './kinds.js';

const Z_OFFSET = 1000;

export class AlarmMarkers {
  constructor(map, { onSelect }) {
    this.map = map;
    this.onSelect = onSelect;
    this.entries = new Map();
  }

  // Shows the alarm under key, or removes its marker when alarm is null or has no position.
  set(key, alarm) {
    if (!alarm || !Number.isFinite(alarm.lat) || !Number.isFinite(alarm.lon)) {
      this.remove(key);
      return;
    }
    const kind = alarmKind(alarm.kind);
    let entry = this.entries.get(key);
    if (!entry || entry.level !== kind.level) {
      this.remove(key);
      const icon = L.divIcon({
        className: `gw-alarm-marker gw-alarm-marker--${kind.level}`,
        html: '<span class="gw-alarm-ring"></span><span class="gw-alarm-core">!</span>',
        iconSize: [24, 24],
      });
      const marker = L.marker([alarm.lat, alarm.lon], { icon, zIndexOffset: Z_OFFSET, riseOnHover: true });
      marker.on('click', () => this.onSelect(key));
      marker.addTo(this.map);
      entry = { marker, level: kind.level };
      this.entries.set(key, entry);
    } else {
      entry.marker.setLatLng([alarm.lat, alarm.lon]);
    }
    const node = entry.marker.getElement();
    if (node) {
      node.dataset.alarmKey = key;
      node.dataset.kind = alarm.kind;
      node.title = `${kind.title} · ${alarm.label || alarm.device}${alarm.grid ? ` · ${alarm.grid}` : ''}`;
    }
  }

  remove(key) {
    const entry = this.entries.get(key);
    if (!entry) return;
    entry.marker.remove();
    this.entries.delete(key);
  }
}
