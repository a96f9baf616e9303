// Display helpers shared by the map, the device list and the details panel.

import { isOnline } from './online.js';

export const DEVICE_CLASSES = Object.freeze({
  collector: Object.freeze({ zh: '采集员', en: 'collector' }),
  vehicle: Object.freeze({ zh: '车辆', en: 'vehicle' }),
  sensor: Object.freeze({ zh: '传感器', en: 'sensor' }),
});

export function classLabel(deviceClass) {
  const label = DEVICE_CLASSES[deviceClass];
  return label ? label.zh : String(deviceClass);
}

export function classTitle(deviceClass) {
  const label = DEVICE_CLASSES[deviceClass];
  return label ? `${label.zh} ${label.en}` : String(deviceClass);
}

// Offline: not heard from (by any message) within its class's window (online.js).
export function isStale(device, now) {
  return !isOnline(device, now);
}

export function formatAge(ms) {
  if (!Number.isFinite(ms)) return '—';
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}秒`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}分${String(s % 60).padStart(2, '0')}秒`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}时${String(m % 60).padStart(2, '0')}分`;
  return `${Math.floor(h / 24)}天`;
}

// Every time on the page is the city's ([city] timezone, from /api/config), never the
// browser's: a supervisor's laptop set to another zone must read the same clock as the
// reports. Until the configuration arrives (or if it fails), the browser's own zone,
// labelled as such.
let cityZone = null;
const ZONE_LABELS = Object.freeze({ 'Asia/Shanghai': '北京时间' });

export function setCityZone(zone) {
  try {
    new Intl.DateTimeFormat('en-CA', { timeZone: zone });
    cityZone = zone;
  } catch {
    cityZone = null;  // an unknown zone: the browser's, labelled with its own name
  }
}

export function timeZone() {
  return cityZone || Intl.DateTimeFormat().resolvedOptions().timeZone;
}

export function zoneLabel() {
  const zone = timeZone();
  return ZONE_LABELS[zone] || zone;
}

function zoneParts(epochMs) {
  const options = {
    timeZone: timeZone(), year: 'numeric', month: '2-digit', day: '2-digit',
    hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23',
  };
  const out = {};
  for (const { type, value } of new Intl.DateTimeFormat('en-CA', options).formatToParts(new Date(epochMs))) out[type] = value;
  return out;
}

// "15:00:00 北京时间" today (in the city), "2026-12-01 15:00:00 北京时间" another day.
export function formatClock(epochMs, now = Date.now()) {
  if (!Number.isFinite(epochMs)) return '—';
  const p = zoneParts(epochMs);
  const today = zoneParts(now);
  const time = `${p.hour}:${p.minute}:${p.second}`;
  const day = `${p.year}-${p.month}-${p.day}`;
  const shown = day === `${today.year}-${today.month}-${today.day}` ? time : `${day} ${time}`;
  return `${shown} ${zoneLabel()}`;
}

// Always with the date: "2026-12-01 15:00:00 北京时间".
export function formatDateTime(epochMs) {
  if (!Number.isFinite(epochMs)) return '—';
  const p = zoneParts(epochMs);
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second} ${zoneLabel()}`;
}

// The value of a datetime-local input for an epoch time: the city's wall clock,
// "2026-12-01T15:00", which the API reads in the city's zone as it is.
export function cityInput(epochMs) {
  if (!Number.isFinite(epochMs)) return '';
  const p = zoneParts(epochMs);
  return `${p.year}-${p.month}-${p.day}T${p.hour}:${p.minute}`;
}

export function formatBattery(bat) {
  return bat == null ? '—' : `${Math.round(bat)}%`;
}

export function formatNumber(value, digits, unit) {
  return value == null ? '—' : `${Number(value).toFixed(digits)}${unit}`;
}

export function formatSpeed(metresPerSecond) {
  if (metresPerSecond == null) return '—';
  return `${(metresPerSecond * 3.6).toFixed(1)} km/h`;
}

export function formatDistance(metres) {
  return metres < 1000 ? `${Math.round(metres)} m` : `${(metres / 1000).toFixed(2)} km`;
}

// Builds an element: el('td', {class: 'x', title: 'y'}, 'text', childNode).
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value == null || value === false) continue;
    node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children) {
    if (child == null) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}
