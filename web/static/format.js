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

const two = (n) => String(n).padStart(2, '0');

export function formatClock(epochMs) {
  if (!Number.isFinite(epochMs)) return '—';
  const d = new Date(epochMs);
  const time = `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
  const today = new Date();
  if (d.toDateString() === today.toDateString()) return time;
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${time}`;
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
