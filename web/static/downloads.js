// Download links for the lists the map shows: alarms and patrol alerts (alerts panel), the
// day's coverage report (chart panel), the selected device's track (details panel). The
// files come from /api/exports (CSV and Excel; a track also as GPX and GeoJSON), scoped
// to the account like the lists, with times in the city's zone.

import { el } from './format.js';

const LABELS = Object.freeze({ csv: 'CSV', xlsx: 'Excel', gpx: 'GPX', geojson: 'GeoJSON' });

export function exportUrl(kind, format, params = {}) {
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v != null && v !== '')).toString();
  return `/api/exports/${kind}.${format}${query ? `?${query}` : ''}`;
}

function links(kind, formats, params, title) {
  return formats.map((format) => el('a', {
    class: 'gw-download', href: exportUrl(kind, format, params), download: '', 'data-kind': kind, 'data-format': format,
    title: `${title} (${LABELS[format]})`,
  }, LABELS[format]));
}

// The links to a device's track files over fromMs..toMs (CSV, Excel, GPX, GeoJSON).
export function trackLinks(device, fromMs, toMs) {
  return links('track', ['csv', 'xlsx', 'gpx', 'geojson'], { device, from: String(fromMs), to: String(toMs) },
    `Download the track of ${device}`);
}

function row(label, kind, formats, params, title) {
  return el('p', { class: 'gw-downloads', 'data-kind': kind }, `${label} 下载：`, ...links(kind, formats, params, title));
}

export class Downloads {
  constructor({ alertsPanel, chartPanel, detailsClose }) {
    alertsPanel.append(
      row('设备报警', 'alarms', ['csv', 'xlsx'], {}, 'Download alarms'),
      row('巡查告警', 'alerts', ['csv', 'xlsx'], {}, 'Download patrol alerts'),
    );
    this.coverage = row('覆盖报告', 'coverage', ['csv', 'xlsx'], {}, "Download today's coverage report");
    chartPanel.append(this.coverage);
    // in the details header, beside its close button: the panel stays as tall as it was
    this.track = el('span', { class: 'gw-downloads gw-downloads--inline', 'data-kind': 'track', hidden: true });
    detailsClose.before(this.track);
  }

  // The report of the city day the chart shows.
  setCoverageDate(date) {
    this.coverage.replaceChildren('覆盖报告 下载：',
      ...links('coverage', ['csv', 'xlsx'], { date }, `Download the coverage report of ${date}`));
  }

  // The track the details panel draws (fromMs..toMs); null hides the links.
  setTrack(device, fromMs, toMs) {
    this.track.hidden = device == null;
    if (device == null) return;
    this.track.replaceChildren('轨迹', ...trackLinks(device, fromMs, toMs));
  }
}
