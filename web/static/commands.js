// Commands to the selected device from its details panel: "定位" (report your position
// now) for commanders and administrators, hidden for everyone else (the role comes from
// GET /api/session). The answer says whether the command went out (and by which link),
// then whether the device answered: its next report after the command.

import { el, formatClock } from './format.js';

const MAY_COMMAND = new Set(['commander', 'admin']);
// How long the answer is awaited: then the device is said not to have answered (it may be
// off, out of coverage, or not take the command, as a fixed sensor may not).
export const LOCATE_WAIT_MS = 60 * 1000;
const VIA = { mqtt: 'MQTT', jt808: 'JT/T 808' };

export class LocateControl {
  constructor(container, { user, fetchImpl = (...args) => fetch(...args) }) {
    this.container = container;
    this.user = user;
    this.fetch = fetchImpl;
    this.device = null;
    this.pending = null; // {id, heard, t}: the device's newest report when the command went out
    this.request = 0;
    this.button = el('button', { type: 'button', class: 'gw-command-locate', title: 'Ask the device to report its position now' }, '定位');
    this.result = el('span', { class: 'gw-command-result', role: 'status' });
    this.button.addEventListener('click', () => this.locate());
    container.replaceChildren(this.button, this.result);
    container.hidden = true;
  }

  get allowed() {
    return Boolean(this.user && MAY_COMMAND.has(this.user.role));
  }

  show(device) {
    const changed = !this.device || this.device.id !== device.id;
    this.device = device;
    this.container.hidden = !this.allowed;
    if (changed) {
      this.request += 1;
      this.pending = null;
      this.setResult('', null, '');
      this.button.disabled = false;
    }
  }

  // A newer view of the shown device: its first report after the command is the answer.
  update(device) {
    if (!this.device || this.device.id !== device.id) return;
    this.device = device;
    const p = this.pending;
    if (p && p.id === device.id && device.t > p.t) {
      this.pending = null;
      this.setResult(`设备已回报 ${formatClock(device.t)}`, 'answered', `The device reported at ${new Date(device.t).toISOString()}`);
    }
  }

  // Every second: an answer awaited longer than LOCATE_WAIT_MS is not coming.
  tick(now) {
    const p = this.pending;
    if (p && now - p.sentAt >= LOCATE_WAIT_MS) {
      this.pending = null;
      this.setResult(`${LOCATE_WAIT_MS / 1000} 秒内未回报`, 'silent',
        `No report within ${LOCATE_WAIT_MS / 1000} s of the command: the device may be off, out of coverage, or not take it`);
    }
  }

  clear() {
    this.device = null;
    this.pending = null;
    this.request += 1;
    this.container.hidden = true;
  }

  setResult(text, state, title) {
    this.result.textContent = text;
    if (state) this.result.dataset.state = state;
    else delete this.result.dataset.state;
    this.result.title = title;
  }

  async locate() {
    const device = this.device;
    if (!device || !this.allowed) return;
    const request = ++this.request;
    this.button.disabled = true;
    this.setResult('发送中…', 'sending', 'Sending');
    let response;
    let body = {};
    try {
      response = await this.fetch(`/api/devices/${encodeURIComponent(device.id)}/locate`, {
        method: 'POST',
        headers: { Accept: 'application/json', 'X-CSRF-Token': this.user.csrf || '' },
      });
      body = await response.json().catch(() => ({}));
    } catch (error) {
      if (request === this.request) this.fail(`网络错误`, error.message);
      return;
    } finally {
      if (request === this.request) this.button.disabled = false;
    }
    if (request !== this.request) return;
    if (!response.ok) {
      this.fail(`HTTP ${response.status}`, body.error || `HTTP ${response.status}`);
      return;
    }
    this.pending = { id: device.id, t: this.device.t, sentAt: Date.now() };
    const via = VIA[body.via] || body.via || '';
    this.setResult(`已发送${via ? `（${via}）` : ''}，等待回报…`, 'sent', `Sent${body.topic ? ` to ${body.topic}` : ''}; waiting for the device to report`);
  }

  fail(short, detail) {
    this.pending = null;
    this.setResult(`发送失败：${detail || short}`, 'failed', `Failed: ${detail || short}`);
  }
}
