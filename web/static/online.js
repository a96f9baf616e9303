// Online or offline, as the service configures it ([live] online_*_s, from /api/config):
// a device is online while its LAST MESSAGE OF ANY KIND (position, status, alarm,
// reading: the view's `heard`) is recent enough for its class. A manhole sensor stands
// still, so its position's time does not move while its status reports keep coming.

const DEFAULT_ONLINE_MS = Object.freeze({ collector: 300_000, vehicle: 300_000, sensor: 1_800_000 });
let onlineMs = { ...DEFAULT_ONLINE_MS };

// `seconds`: {class: seconds} from /api/config's online_s; anything else keeps the defaults.
export function setOnlineThresholds(seconds) {
  onlineMs = { ...DEFAULT_ONLINE_MS };
  if (!seconds || typeof seconds !== 'object') return;
  for (const [cls, s] of Object.entries(seconds)) if (Number.isFinite(s) && s > 0) onlineMs[cls] = s * 1000;
}

export function onlineWindowMs(deviceClass) {
  return onlineMs[deviceClass] || DEFAULT_ONLINE_MS.collector;
}

// When the device was last heard from: its newest message, else its fix's receipt.
export function lastHeard(device) {
  if (Number.isFinite(device.heard)) return device.heard;
  return device.t;
}

export function isOnline(device, now) {
  const heard = lastHeard(device);
  return Number.isFinite(heard) && now - heard <= onlineWindowMs(device.class);
}
