"""Reading what the map page shows, as a person would see it: where elements are on screen,
which one is drawn on top at a point, the colours the browser computed, and whether text
stands out from what is behind it (WCAG 2 contrast)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from tests.web.fake_map import Page

_RGB = re.compile(r"rgba?\(\s*([\d.]+)[,\s]+([\d.]+)[,\s]+([\d.]+)(?:\s*[,/]\s*([\d.]+))?\s*\)")
_HEX = re.compile(r"#([0-9a-fA-F]{6})")

# WCAG 2 AA: the least contrast for body text.
READABLE = 4.5


@dataclass(frozen=True, slots=True)
class Box:
    left: float
    top: float
    right: float
    bottom: float

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.bottom - self.top

    @property
    def centre(self) -> tuple[float, float]:
        return (self.left + self.right) / 2, (self.top + self.bottom) / 2

    def contains(self, other: Box, slack: float = 0.5) -> bool:
        return (self.left - slack <= other.left and other.right <= self.right + slack
                and self.top - slack <= other.top and other.bottom <= self.bottom + slack)

    def overlaps(self, other: Box) -> bool:
        return self.left < other.right and other.left < self.right and self.top < other.bottom and other.top < self.bottom


def rgb(css: str) -> tuple[int, int, int]:
    """A computed colour (``rgb(…)``, ``rgba(…)`` or ``#rrggbb``) as three 0..255 ints."""
    if match := _RGB.fullmatch(css.strip()):
        red, green, blue = (round(float(v)) for v in match.groups()[:3])
        return red, green, blue
    if match := _HEX.fullmatch(css.strip()):
        value = int(match.group(1), 16)
        return value >> 16, value >> 8 & 0xFF, value & 0xFF
    raise ValueError(f"not a colour: {css!r}")


def contrast(foreground: tuple[int, int, int], background: tuple[int, int, int]) -> float:
    """WCAG 2 contrast ratio, 1 (none) to 21 (black on white)."""
    def luminance(colour: tuple[int, int, int]) -> float:
        linear = [c / 255 / 12.92 if c / 255 <= 0.04045 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in colour]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    lighter, darker = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


_BOXES = """
return [...document.querySelectorAll(arguments[0])].map(e => {
  const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; });
"""


def boxes(page: Page, selector: str) -> list[Box]:
    """Where each element matching ``selector`` is drawn, in viewport pixels."""
    return [Box(*edges) for edges in page.js(_BOXES, selector)]


def box(page: Page, selector: str) -> Box:
    (found,) = boxes(page, selector)
    return found


def extent(page: Page, selector: str) -> Box:
    """The smallest box around every element matching ``selector``."""
    found = boxes(page, selector)
    assert found, f"nothing matches {selector}"
    return Box(min(b.left for b in found), min(b.top for b in found), max(b.right for b in found), max(b.bottom for b in found))


_ON_TOP = """
return [...document.querySelectorAll(arguments[0])].map(e => {
  const r = e.getBoundingClientRect();
  const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
  if (hit === null) return [e.getAttribute(arguments[1]), 'nothing'];
  if (e.contains(hit)) return [e.getAttribute(arguments[1]), null];
  const over = hit.closest('.leaflet-control, .gw-alarm-marker, .gw-marker, .gw-label') || hit;
  return [e.getAttribute(arguments[1]), over.getAttribute('class')];
});
"""


def covered(page: Page, selector: str, key: str) -> dict[str, str | None]:
    """For each element (by its ``key`` attribute): None when it is what the browser shows
    at its centre, else the class of the element drawn over it there."""
    return dict(page.js(_ON_TOP, selector, key))


_STYLE = """
const e = document.querySelector(arguments[0]);
const style = getComputedStyle(e);
return Object.fromEntries(arguments[1].map(p => [p, style.getPropertyValue(p).trim()]));
"""


def style(page: Page, selector: str, *properties: str) -> dict[str, str]:
    """Computed style of the first element matching ``selector``."""
    return page.js(_STYLE, selector, list(properties))


_BACKDROP = """
for (let e = document.querySelector(arguments[0]); e; e = e.parentElement) {
  const colour = getComputedStyle(e).backgroundColor;
  const alpha = colour.match(/rgba\\(.*,\\s*([\\d.]+)\\)/);
  if (colour !== 'transparent' && !(alpha && Number(alpha[1]) < 0.5)) return colour;
}
return getComputedStyle(document.documentElement).backgroundColor;
"""


def backdrop(page: Page, selector: str) -> tuple[int, int, int]:
    """The first mostly opaque background colour behind the element, up its ancestors."""
    return rgb(page.js(_BACKDROP, selector))


def text_contrast(page: Page, selector: str) -> float:
    """Contrast of the element's text colour against its backdrop."""
    return contrast(rgb(style(page, selector, "color")["color"]), backdrop(page, selector))


def displayed_text(page: Page, selector: str) -> list[str]:
    """The rendered text of every element matching ``selector`` that takes up space."""
    script = ("return [...document.querySelectorAll(arguments[0])]"
              ".filter(e => e.getClientRects().length > 0).map(e => e.innerText.trim());")
    texts: list[Any] = page.js(script, selector)
    return [str(t) for t in texts]


_PIXELS = """
const [png, points, done] = arguments;
const image = new Image();
image.onload = () => {
  const canvas = document.createElement('canvas');
  canvas.width = image.width;
  canvas.height = image.height;
  const context = canvas.getContext('2d');
  context.drawImage(image, 0, 0);
  done(points.map(([x, y]) => [...context.getImageData(Math.round(x), Math.round(y), 1, 1).data.slice(0, 3)]));
};
image.onerror = () => done(null);
image.src = 'data:image/png;base64,' + png;
"""


def screen_colours(page: Page, points: list[tuple[float, float]]) -> list[tuple[int, int, int]]:
    """The colours on screen at viewport points, read from a screenshot: what is painted
    there, whatever element painted it and whatever lies over it."""
    page.driver.set_script_timeout(10)
    shot = page.driver.get_screenshot_as_base64()
    found = page.driver.execute_async_script(_PIXELS, shot, [list(p) for p in points])
    assert found is not None, "the browser could not read its own screenshot"
    return [(r, g, b) for r, g, b in found]


def distance(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    return sum((x - y) ** 2 for x, y in zip(a, b, strict=True)) ** 0.5


_SCROLLS = """
const [container, rows] = arguments;
const box = document.querySelector(container);
let el = box;
const scrollers = [];
while (el) {
  const overflow = getComputedStyle(el).overflowY;
  if ((overflow === 'auto' || overflow === 'scroll') && el.scrollHeight > el.clientHeight) scrollers.push(el);
  el = el.parentElement;
}
return scrollers.length > 0;
"""


def rows_whole_or_scrolled(page: Page, container: str, rows: str) -> bool:
    """Every row of ``rows`` lies whole across ``container`` (no row cut at either side);
    the rows below its bottom edge are reached by scrolling it (it, or a box around it,
    scrolls), not cut off. A list longer than its panel is read by scrolling."""
    panel = box(page, container)
    found = boxes(page, rows)
    across = all(panel.left - 0.5 <= row.left and row.right <= panel.right + 0.5 for row in found)
    below = [row for row in found if not panel.contains(row)]
    return bool(found) and across and (not below or bool(page.js(_SCROLLS, container, rows)))
