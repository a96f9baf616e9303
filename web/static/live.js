// The live feed: one WebSocket to /ws, reopened with jittered exponential backoff.
// Every new connection starts with a snapshot, which replaces the page's state. A large
// snapshot comes in several frames: "snapshot" then "snapshot_part" frames, each but the
// last marked "more": true. They are put together here, so the page sees one snapshot.

import { toDisplay } from './datum.js';

const FIRST_RETRY_MS = 1000;
const MAX_RETRY_MS = 30000;

export function liveFeedUrl(location) {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/ws`;
}

const POLICY_VIOLATION = 1008; // the server's answer to a socket without a valid session

export class LiveFeed {
  constructor(url, { onFrame, onState, onDenied = () => {} }) {
    this.url = url;
    this.onFrame = onFrame;
    this.onState = onState;
    this.onDenied = onDenied;
    this.socket = null;
    this.failures = 0;
    this.retryAt = null;
    this.timer = 0;
    this.state = 'idle';
  }

  start() {
    this.connect();
  }

  setState(state) {
    this.state = state;
    this.onState(state, this.retryAt);
  }

  connect() {
    this.timer = 0;
    this.retryAt = null;
    this.setState('connecting');
    const socket = new WebSocket(this.url);
    this.socket = socket;
    let framesOnThisSocket = 0;
    let partial = null; // the devices of a snapshot still arriving
    socket.addEventListener('open', () => this.setState('open'));
    socket.addEventListener('message', (event) => {
      if (typeof event.data !== 'string') return;
      let frame;
      try {
        frame = toDisplay(JSON.parse(event.data));
      } catch {
        return;
      }
      if (frame === null || typeof frame !== 'object') return;
      framesOnThisSocket += 1;
      if (framesOnThisSocket === 1) this.failures = 0;
      if (frame.type === 'snapshot' || (frame.type === 'snapshot_part' && partial !== null)) {
        const devices = Array.isArray(frame.devices) ? frame.devices : [];
        if (frame.type === 'snapshot') partial = devices;
        else for (const device of devices) partial.push(device);
        if (frame.more === true) return;
        frame = { type: 'snapshot', devices: partial };
        partial = null;
      }
      this.onFrame(frame);
    });
    socket.addEventListener('close', (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      if (event.code === POLICY_VIOLATION) {
        // not logged in (any more): reconnecting cannot help
        this.setState('closed');
        this.onDenied(event.reason);
        return;
      }
      this.scheduleReconnect();
    });
  }

  scheduleReconnect() {
    const base = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** this.failures);
    const delay = Math.round(base * (0.8 + Math.random() * 0.4));
    this.failures += 1;
    this.retryAt = Date.now() + delay;
    this.setState('closed');
    this.timer = setTimeout(() => this.connect(), delay);
  }
}
