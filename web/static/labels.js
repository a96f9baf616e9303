// Where the map's names go, so that none is drawn over another: street (街道) names spread
// along their street's extent, community names at their centroids, and, near in, the code
// of every unit grid in view. After every move a collision pass measures each label's box
// on screen and hides any that would overlap one already placed, in order of precedence:
// streets, then communities, then grid codes. A street's name tries a few places across
// its extent and takes the first that leaves its communities' names clear.

import { escapeHtml } from './grids.js';

// Grid codes from this zoom on (a 100 m grid is then ~200 px across at Lanzhou's latitude).
export const GRID_CODE_ZOOM = 17;
const PAD_PX = 3; // space kept between two labels
const SPREAD_SHARE = 0.7; // a street's name spans up to this share of its street's width
const MAX_SPACING_EM = 3;
const PRECEDENCE = { street: 0, community: 1, grid: 2 };
// Where a street's name may sit, as fractions of its extent's height from the centre:
// the centre first, then between its rows of communities.
const STREET_OFFSETS = [0, -0.25, 0.25, -0.375, 0.375, -0.125, 0.125];

export class LabelLayout {
  constructor(map, grids) {
    this.map = map;
    this.grids = grids;
    this.gridLabels = L.layerGroup().addTo(map);
    this.gridLabelCodes = new Set();
    this.streets = streetExtents(grids.entries);
    this.passes = 0;
    this.scheduled = 0;
    map.on('moveend', () => this.schedule());
    if (document.fonts && document.fonts.ready) document.fonts.ready.then(() => this.schedule());
  }

  schedule() {
    cancelAnimationFrame(this.scheduled);
    this.scheduled = requestAnimationFrame(() => this.layout());
  }

  layout() {
    this.placeGridCodes();
    const container = this.map.getContainer();
    const labels = [...container.querySelectorAll('.gw-label')];
    for (const label of labels) label.classList.remove('gw-collided');
    this.spreadStreets(labels);
    const spans = labels
      .map((label) => ({ label, span: label.querySelector('span'), kind: kindOf(label) }))
      .filter(({ span }) => span && span.getClientRects().length > 0);
    spans.sort((a, b) => PRECEDENCE[a.kind] - PRECEDENCE[b.kind] || a.span.textContent.localeCompare(b.span.textContent));
    const communities = spans.filter(({ kind }) => kind === 'community').map(({ span }) => span.getBoundingClientRect());
    const placed = [];
    for (const { label, span, kind } of spans) {
      let rect = span.getBoundingClientRect();
      if (kind === 'street') rect = this.placeStreet(span, rect, placed, communities);
      if (placed.some((other) => overlaps(rect, other))) label.classList.add('gw-collided');
      else placed.push(rect);
    }
    this.passes += 1;
    container.dataset.labelPasses = String(this.passes);
  }

  // Grid codes for the grids in view (and a margin), only near in: a city has thousands.
  placeGridCodes() {
    const near = this.map.getZoom() >= GRID_CODE_ZOOM;
    const view = this.map.getBounds().pad(0.2);
    const wanted = new Set();
    if (near) for (const { props, bounds } of this.grids.entries) if (view.intersects(bounds)) wanted.add(props.code);
    if (wanted.size === this.gridLabelCodes.size && [...wanted].every((code) => this.gridLabelCodes.has(code))) return;
    this.gridLabels.clearLayers();
    for (const { props, bounds } of this.grids.entries) {
      if (!wanted.has(props.code)) continue;
      const icon = L.divIcon({
        className: 'gw-label gw-label--grid',
        html: `<span data-code="${escapeHtml(props.code)}">${escapeHtml(props.code)}</span>`,
        iconSize: null,
      });
      L.marker(bounds.getCenter(), { icon, interactive: false, keyboard: false }).addTo(this.gridLabels);
    }
    this.gridLabelCodes = wanted;
  }

  // A street's name letter-spaced to run along its extent, as area names run on a map.
  spreadStreets(labels) {
    for (const label of labels) {
      if (kindOf(label) !== 'street') continue;
      const span = label.querySelector('span');
      const extent = span && this.streets.get(span.dataset.code);
      if (!extent || span.getClientRects().length === 0) continue;
      span.style.letterSpacing = '';
      span.style.removeProperty('--gw-dy');
      const west = this.map.latLngToContainerPoint(extent.getSouthWest());
      const east = this.map.latLngToContainerPoint(extent.getNorthEast());
      const target = Math.abs(east.x - west.x) * SPREAD_SHARE;
      const natural = span.getBoundingClientRect().width;
      const letters = [...span.textContent].length;
      const em = parseFloat(getComputedStyle(span).fontSize) || 14;
      const extra = Math.min(MAX_SPACING_EM * em, Math.max(0, (target - natural) / letters));
      if (extra > 0) span.style.letterSpacing = `${extra.toFixed(1)}px`;
    }
  }

  // The first of the street's places whose box leaves every placed label and every
  // community name clear (else the centre): the street's label is moved there.
  placeStreet(span, rect, placed, communities) {
    const extent = this.streets.get(span.dataset.code);
    if (!extent) return rect;
    const top = this.map.latLngToContainerPoint(extent.getNorthEast()).y;
    const bottom = this.map.latLngToContainerPoint(extent.getSouthWest()).y;
    const height = bottom - top;
    for (const offset of STREET_OFFSETS) {
      const dy = offset * height;
      const moved = shifted(rect, dy);
      if (!placed.some((other) => overlaps(moved, other)) && !communities.some((other) => overlaps(moved, other))) {
        if (dy) span.style.setProperty('--gw-dy', `${dy.toFixed(1)}px`);
        return dy ? span.getBoundingClientRect() : rect;
      }
    }
    return rect;
  }
}

function kindOf(label) {
  if (label.classList.contains('gw-label--street')) return 'street';
  if (label.classList.contains('gw-label--community')) return 'community';
  return 'grid';
}

function streetExtents(entries) {
  const extents = new Map();
  for (const { props, bounds } of entries) {
    const extent = extents.get(props.street);
    if (extent) extent.extend(bounds);
    else extents.set(props.street, L.latLngBounds(bounds.getSouthWest(), bounds.getNorthEast()));
  }
  return extents;
}

function shifted(rect, dy) {
  return { left: rect.left, right: rect.right, top: rect.top + dy, bottom: rect.bottom + dy };
}

function overlaps(a, b) {
  return a.left < b.right + PAD_PX && b.left < a.right + PAD_PX && a.top < b.bottom + PAD_PX && b.top < a.bottom + PAD_PX;
}
