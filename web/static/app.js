// Gridwatch command map: boots the map from /api/config, draws the unit grids and the
// devices, then follows the live feed. Frames are routed through one dispatch table.

import { displayPoint, setDatum, toDisplay } from './datum.js';
import { AlarmMarkers } from './alarmmarkers.js';
import { AlertBoard } from './alerts.js';
import { addBaseMap } from './basemap.js';
import { CaseBoard } from './cases.js';
import { CoverageChart } from './chart.js';
import { CoverageLayer } from './coverage.js';
import { DeviceDetails } from './details.js';
import { Downloads } from './downloads.js';
import { DeviceList } from './devicelist.js';
import { isStale, setCityZone } from './format.js';
import { setOnlineThresholds } from './online.js';
import { GridLayer } from './grids.js';
import { HistoryPanel } from './history.js';
import { LabelLayout } from './labels.js';
import { LiveFeed, liveFeedUrl } from './live.js';
import { deviceLabel } from './names.js';
import { RoadGaps } from './roads.js';
import { DeviceMarkers } from './markers.js';
import { Tabs } from './tabs.js';
import { AlertTriage, pageLang } from './triage.js';
import { WallPanels, isWall, markWall, wallMapOptions } from './wall.js';

const FALLBACK_CENTER = [36.1, 103.72];
const FALLBACK_ZOOM = 14;
const MIN_GLIDE_MS = 200;
const MAX_GLIDE_MS = 1500;
const FOCUS_MS = 12000;
const NEAR_DEVICE_ZOOM = 17.5;
const MAX_FOCUS_ZOOM = 18;
// Margin around the grids in the first view, in pixels, so the outermost grids' edges and
// labels do not touch the map's border.
const FIT_MARGIN_PX = 24;

const ROLE_NAMES = {
  admin: ['管理员', 'Administrator'],
  commander: ['指挥员', 'Commander'],
  supervisor: ['监督员', 'Supervisor'],
  viewer: ['查看员', 'Viewer'],
  collector: ['采集员', 'Collector'],
};

const state = {
  user: null,
  devices: new Map(),
  gridsLoaded: false,
  wsState: 'idle',
  framesReceived: 0,
  selected: null,
  lastDeltaAt: 0,
};

window.gridwatch = Object.freeze({
  get user() { return state.user; },
  get devices() { return state.devices; },
  get gridsLoaded() { return state.gridsLoaded; },
  get wsState() { return state.wsState; },
  get framesReceived() { return state.framesReceived; },
  get selected() { return state.selected; },
  get alerts() { return board ? board.alerts : new Map(); },
  get alarms() { return board ? board.alarms : new Map(); },
  get alertsLoaded() { return Boolean(board && board.loaded); },
  get triage() { return triage; },
  get history() { return historyPanel; },
  get cases() { return caseBoard ? caseBoard.cases : new Map(); },
  get casesLoaded() { return Boolean(caseBoard && caseBoard.loaded); },
  get caseDetailFetches() { return caseBoard ? caseBoard.opened : 0; },
});

const $ = (id) => document.getElementById(id);

const CONNECTION_TEXT = {
  idle: ['未连接', 'Not connected'],
  connecting: ['连接中…', 'Connecting'],
  open: ['实时', 'Live'],
  closed: ['已断开', 'Disconnected'],
};

let map;
let grids;
let markers;
let list;
let details;
let board;
let alarmMarkers;
let coverage;
let tabs;
let triage;
let historyPanel;
let caseBoard;
let retryAt = null;

const describeGrid = (code) => (grids ? grids.info(code) : null);

// Every frame type the server may send; unknown types are ignored.
const FRAME_HANDLERS = {
  snapshot: (frame) => {
    applySnapshot(frame.devices || []);
    // A snapshot opens every connection: refetch what may have changed during an outage.
    if (state.selected) details.reloadTrack(Date.now());
    board.load(Date.now());
    if (caseBoard) caseBoard.load();
  },
  delta: (frame) => applyDelta(frame.devices || []),
  alert: (frame) => {
    board.alertFrame(frame, Date.now());
    triage.alertFrame(frame);
  },
  alarm: (frame) => board.alarmFrame(frame, Date.now()),
  incident: () => {},
  case: (frame) => caseBoard && caseBoard.frame(frame),
};

// What the device list calls a device (its registry name, plate), its id if unknown here.
function deviceName(id) {
  return state.devices.has(id) ? deviceLabel(state.devices.get(id)) : id;
}

function onFrame(frame) {
  state.framesReceived += 1;
  const handler = Object.hasOwn(FRAME_HANDLERS, frame.type) ? FRAME_HANDLERS[frame.type] : null;
  if (handler) handler(frame);
}

function applySnapshot(devices) {
  const now = Date.now();
  const ids = new Set(devices.map((d) => d.id));
  for (const id of [...state.devices.keys()]) if (!ids.has(id)) state.devices.delete(id);
  markers.retainOnly(ids);
  list.retainOnly(ids);
  for (const device of devices) upsert(device, now, 0);
  if (state.selected && !ids.has(state.selected)) select(null);
  updateCounts(now);
}

function applyDelta(devices) {
  const now = Date.now();
  const sinceLast = state.lastDeltaAt ? performance.now() - state.lastDeltaAt : 1000;
  state.lastDeltaAt = performance.now();
  const glideMs = Math.min(MAX_GLIDE_MS, Math.max(MIN_GLIDE_MS, sinceLast * 0.9));
  for (const device of devices) upsert(device, now, glideMs);
  updateCounts(now);
}

function upsert(device, now, glideMs) {
  if (!device || typeof device.id !== 'string' || !Number.isFinite(device.lat) || !Number.isFinite(device.lon)) return;
  state.devices.set(device.id, device);
  markers.set(device, { now, glideMs });
  list.set(device, now);
  details.update(device, now);
}

function select(id, { pan = false } = {}) {
  const now = Date.now();
  const device = id ? state.devices.get(id) : null;
  state.selected = device ? device.id : null;
  markers.select(state.selected, now);
  list.select(state.selected);
  if (historyPanel && device) historyPanel.setDevice(device.id);
  if (!device) {
    details.clear();
    return;
  }
  details.show(device, now);
  const at = markers.position(device.id);
  if (pan && at && !map.getBounds().contains(at)) map.panTo(at);
}

// An alert or alarm picked in the alerts panel or on the map: bring its place into view.
function pick(item) {
  if (item.type === 'alarm') {
    pickAlarm(item.alarm);
    return;
  }
  const { alert } = item;
  const known = state.devices.has(alert.collector);
  const detailGrids = alert.detail && Array.isArray(alert.detail.grids)
    ? alert.detail.grids.filter((code) => typeof code === 'string') : [];
  const codes = alert.grid ? [alert.grid] : detailGrids;
  if (codes.length && focusGrids(codes)) {
    if (known) select(alert.collector);
  } else if (known) {
    select(alert.collector);
    zoomTo(markers.position(alert.collector));
  } else if (alert.area) {
    focusGrids(grids.codesWithin(alert.area));
  }
}

function pickAlarm(alarm) {
  const known = state.devices.has(alarm.device);
  if (known) select(alarm.device);
  if (Number.isFinite(alarm.lat) && Number.isFinite(alarm.lon)) zoomTo(L.latLng(alarm.lat, alarm.lon));
  else if (!(alarm.grid && focusGrids([alarm.grid])) && known) zoomTo(markers.position(alarm.device));
}

function focusGrids(codes) {
  const bounds = grids.boundsOf(codes);
  if (!bounds) return false;
  grids.focus(codes, FOCUS_MS);
  map.fitBounds(bounds, { padding: [60, 60], maxZoom: MAX_FOCUS_ZOOM });
  return true;
}

// The first view frames the grids the page was given, the city's or the one district an
// account sees, whatever the window's size; the configured centre and zoom only stand in
// until they arrive (or when there are none). A resized window is framed again until the
// view is moved by anyone (dragged, zoomed, or panned to a device or an alarm).
function frameGrids(bounds) {
  let framing = false;
  let moved = false;
  const frame = () => {
    framing = true;
    map.fitBounds(bounds, { padding: [FIT_MARGIN_PX, FIT_MARGIN_PX], maxZoom: MAX_FOCUS_ZOOM, animate: false });
    framing = false;
  };
  frame();
  map.on('movestart', () => {
    if (!framing) moved = true;
  });
  map.on('resize', () => {
    if (!moved) frame();
  });
}

function zoomTo(latlng) {
  if (latlng) map.setView(latlng, Math.max(map.getZoom(), NEAR_DEVICE_ZOOM));
}

function showAlarmOnList(key) {
  tabs.show('gw-tab-alerts');
  board.reveal('alarm', key);
  const alarm = board.alarms.get(key);
  if (alarm && state.devices.has(alarm.device)) select(alarm.device);
}

function updateCounts(now) {
  let live = 0;
  for (const device of state.devices.values()) if (!isStale(device, now)) live += 1;
  $('gw-live-count').textContent = String(live);
  $('gw-total-count').textContent = String(state.devices.size);
}

function showConnection(wsState, nextRetryAt) {
  state.wsState = wsState;
  retryAt = nextRetryAt;
  const node = $('gw-conn');
  node.dataset.state = wsState;
  renderConnectionText();
}

function renderConnectionText() {
  const [zh, en] = CONNECTION_TEXT[state.wsState] || [state.wsState, state.wsState];
  const text = $('gw-conn-text');
  if (state.wsState === 'closed' && retryAt) {
    const seconds = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
    text.textContent = `${zh}，${seconds}秒后重连`;
    $('gw-conn').title = `${en}; reconnecting in ${seconds} s`;
  } else {
    text.textContent = zh;
    $('gw-conn').title = `Live feed: ${en}`;
  }
}

function showHover(props) {
  const node = $('gw-hover-grid');
  node.textContent = props ? `${props.code} ${props.community_name || ''}` : '—';
  node.title = props ? `${props.street_name || ''} · ${props.community_name || ''}` : 'Grid code under the mouse pointer';
  node.dataset.code = props ? props.code : '';
}

function showBanner(message) {
  const banner = $('gw-banner');
  banner.textContent = message;
  banner.hidden = !message;
}

function tick() {
  const now = Date.now();
  markers.refresh(now);
  list.refresh(now);
  details.refresh(now);
  updateCounts(now);
  board.tick(now);
  renderConnectionText();
}

function toLogin() {
  const here = window.location.pathname + window.location.search;
  window.location.replace(here === '/' ? '/login' : `/login?next=${encodeURIComponent(here)}`);
}

async function getJSON(path) {
  const response = await fetch(path, { headers: { Accept: 'application/json' } });
  if (response.status === 401) toLogin(); // the session ended (logout elsewhere, expiry, account disabled)
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return toDisplay(await response.json());
}

// The header names the districts whose grids are served (one for a district's account),
// their codes in the tooltip; a service that lists none shows its default district's code.
function showDistricts(config) {
  const districts = Array.isArray(config.districts) ? config.districts.filter((d) => d && d.code) : [];
  const label = $('gw-district');
  if (districts.length) {
    label.textContent = `辖区 ${districts.map((d) => d.name || d.code).join(' · ')}`;
    label.title = districts.map((d) => `${d.code} ${d.name || ''}`.trim()).join(', ');
  } else if (config.district) {
    label.textContent = `辖区 ${config.district}`;
  }
}

// Who is logged in: null (and off to the login page) without a session.
async function loadUser() {
  const response = await fetch('/api/session', { headers: { Accept: 'application/json' } });
  if (response.status === 401) {
    toLogin();
    return null;
  }
  if (!response.ok) throw new Error(`/api/session: HTTP ${response.status}`);
  return response.json();
}

function showUser(user) {
  const [zh, en] = ROLE_NAMES[user.role] || [user.role, user.role];
  $('gw-user-name').textContent = user.account;
  $('gw-user-role').textContent = zh;
  $('gw-user-role').title = en;
  $('gw-user-scope').textContent = user.scope === 'city' ? '全市' : `辖区 ${user.scope}`;
  $('gw-user-scope').title = user.scope === 'city' ? 'Scope: the whole city' : `Scope: district ${user.scope}`;
  $('gw-user').hidden = false;
  $('gw-logout').addEventListener('click', logOut);
}

async function logOut() {
  try {
    await fetch('/api/session', {
      method: 'DELETE',
      headers: { Accept: 'application/json', 'X-CSRF-Token': state.user ? state.user.csrf || '' : '' },
    });
  } finally {
    toLogin();
  }
}

function validCenter(center) {
  return Array.isArray(center) && center.length === 2 && center.every(Number.isFinite);
}

async function boot() {
  markWall();
  state.user = await loadUser();
  if (!state.user) return;
  showUser(state.user);
  if (state.user.role === 'collector') {
    // the map's data is for the desk roles; a collector's account sees its own device
    // through the API (/api/devices/{id}) and nothing else
    showBanner('采集员账号仅可查看本人设备，指挥地图不对其开放 (collector accounts see their own device only)');
    return;
  }
  let config = {};
  try {
    config = await getJSON('/api/config');
  } catch (error) {
    showBanner(`配置加载失败，使用默认设置 (config failed to load: ${error.message})`);
  }
  setDatum(config.map_datum);
  setOnlineThresholds(config.online_s);
  setCityZone(config.zone);
  showDistricts(config);

  // the wall's panels take their place before the map measures its container
  const live = () => ({ devices: state.devices, alerts: board.alerts, alarms: board.alarms });
  const wall = isWall() ? new WallPanels(document.querySelector('.gw-main'), { getJSON, live }) : null;
  map = L.map('gw-map', { minZoom: 3, maxZoom: 20, zoomSnap: 0.5, ...wallMapOptions() });
  map.attributionControl.setPrefix('Leaflet');
  const tiled = addBaseMap(map, config);
  map.getContainer().classList.add(tiled ? 'gw-tiled' : 'gw-untiled');
  L.control.scale({ imperial: false }).addTo(map);
  const hasCenter = validCenter(config.center);
  map.setView(hasCenter ? displayPoint(...config.center) : FALLBACK_CENTER, Number.isFinite(config.zoom) ? config.zoom : FALLBACK_ZOOM);

  grids = new GridLayer(map, { tiled });
  markers = new DeviceMarkers(map, { onSelect: (id) => select(id) });
  list = new DeviceList($('gw-device-rows'), $('gw-empty'), { onSelect: (id) => select(id, { pan: true }), describeGrid });
  const downloads = new Downloads({
    alertsPanel: $('gw-panel-alerts'), chartPanel: $('gw-chart-panel'), detailsClose: $('gw-details-close'),
  });
  details = new DeviceDetails(map, {
    panel: $('gw-details'),
    title: $('gw-details-title'),
    body: $('gw-details-body'),
    trackInfo: $('gw-track-info'),
    close: $('gw-details-close'),
    commands: $('gw-commands'),
    readings: $('gw-readings-chart'),
  }, {
    describeGrid, onClose: () => select(null), user: state.user, getJSON,
    onTrack: (id, from, to) => downloads.setTrack(id, from, to),
  });
  tabs = new Tabs($('gw-tabs'));
  alarmMarkers = new AlarmMarkers(map, { onSelect: showAlarmOnList });
  board = new AlertBoard({
    count: $('gw-alert-count'),
    alertList: $('gw-alert-rows'),
    alertEmpty: $('gw-alert-empty'),
    alertHeadCount: $('gw-alert-head-count'),
    alarmList: $('gw-alarm-rows'),
    alarmEmpty: $('gw-alarm-empty'),
    alarmHeadCount: $('gw-alarm-head-count'),
  }, {
    getJSON,
    describePlace: (code) => grids.placeName(code),
    onPick: pick,
    onAlarmChange: (key, alarm) => alarmMarkers.set(key, alarm),
    onRender: () => triage && triage.update(),
    alertsUrl: pageLang() === 'en' ? '/api/alerts?open=1&limit=200&lang=en' : undefined,
    nameOf: deviceName,
  });
  triage = new AlertTriage(map, {
    list: $('gw-alert-rows'), board, grids, lang: pageLang(),
    devicePosition: (id) => (state.devices.has(id) ? markers.position(id) : null),
    nameOf: deviceName,
    onPick: (item) => {
      tabs.show('gw-tab-alerts');
      pick(item);
    },
  });
  historyPanel = new HistoryPanel(map, $('gw-panel-history'), {
    getJSON, devices: () => state.devices.values(),
  });
  $('gw-tab-history').addEventListener('click', () => historyPanel.refreshDevices());
  coverage = new CoverageLayer(map, grids, { getJSON });
  const chart = new CoverageChart({
    panel: $('gw-chart-panel'),
    container: $('gw-coverage-chart'),
    latest: $('gw-chart-latest'),
  }, { getJSON, zone: config.zone, onDate: (date) => downloads.setCoverageDate(date) });

  $('gw-filter').addEventListener('input', (event) => {
    list.setFilter(event.target.value);
    markers.setFilter((device) => list.matches(device), Date.now());
  });
  map.on('mousemove', (event) => {
    const props = grids.find(event.latlng);
    grids.highlight(props ? props.code : null);
    showHover(props);
  });
  map.getContainer().addEventListener('mouseleave', () => {
    grids.highlight(null);
    showHover(null);
  });

  const [gridResult, deviceResult] = await Promise.allSettled([getJSON('/api/grids'), getJSON('/api/devices')]);
  if (gridResult.status === 'fulfilled') {
    const bounds = grids.load(gridResult.value);
    const labels = new LabelLayout(map, grids);
    if (!tiled) new RoadGaps(map, gridResult.value.features || []);
    state.gridsLoaded = true;
    if (bounds) frameGrids(bounds);
    labels.schedule();
    coverage.refresh();
  } else {
    showBanner(`网格加载失败 (grids failed to load: ${gridResult.reason.message})`);
  }
  if (deviceResult.status === 'fulfilled') {
    applySnapshot(deviceResult.value.devices || []);
  }

  caseBoard = new CaseBoard(map, { panel: $('gw-panel-cases'), count: $('gw-case-count') }, {
    getJSON, csrf: () => (state.user ? state.user.csrf || '' : ''), onPick: zoomTo,
  });
  caseBoard.start().catch((error) => showBanner(`案卷加载失败 (cases failed to load: ${error.message})`));
  chart.start(Date.now());
  if (wall) wall.start();
  new LiveFeed(liveFeedUrl(window.location), { onFrame, onState: showConnection, onDenied: toLogin }).start();
  setInterval(tick, 1000);
}

boot().catch((error) => {
  showBanner(`页面初始化失败 (page failed to start: ${error.message})`);
  throw error;
});
