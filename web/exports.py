"""Tables for people: CSV and Excel (and, for tracks, GPX) of what the API lists as JSON.

One shape for every export, documented in docs/api.md: a first header row in Chinese, a
second in English; times in the city's zone as ``2026-12-01 15:00:00`` with the zone named
in both headers (Excel gets real date-times, zone-less as Excel's are); yes/no as 是/否;
nothing empty spelt ``None``. CSV is UTF-8 with a byte-order mark, which Excel needs to
read Chinese headers.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from openpyxl import Workbook

YES, NO = "是", "否"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    zh: str
    en: str
    kind: str = "text"  # text | time (epoch ms or datetime) | bool | number


def zone_name(zone: str) -> str:
    return "北京时间" if zone == "Asia/Shanghai" else zone


def headers(columns: Sequence[Column], zone: str) -> tuple[list[str], list[str]]:
    zh = [f"{c.zh} ({zone_name(zone)})" if c.kind == "time" else c.zh for c in columns]
    en = [f"{c.en} ({zone})" if c.kind == "time" else c.en for c in columns]
    return zh, en


def local_time(value: object, zone: ZoneInfo) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(zone).replace(tzinfo=None)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value / 1000, zone).replace(tzinfo=None)
    raise TypeError(f"not a time: {value!r}")


def cell(column: Column, record: Mapping[str, Any], zone: ZoneInfo) -> object:
    value = record.get(column.key)
    if value is None:
        return None
    if column.kind == "time":
        return local_time(value, zone)
    if column.kind == "bool":
        return YES if value else NO
    if column.kind == "number" or isinstance(value, int | float | str):
        return value
    return str(value)


def to_csv(columns: Sequence[Column], records: Iterable[Mapping[str, Any]], zone: str) -> bytes:
    tz = ZoneInfo(zone)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerows(headers(columns, zone))
    for record in records:
        row = []
        for column in columns:
            value = cell(column, record, tz)
            row.append("" if value is None else value.strftime(TIME_FORMAT) if isinstance(value, datetime) else value)
        writer.writerow(row)
    return ("\ufeff" + out.getvalue()).encode()


def to_xlsx(columns: Sequence[Column], records: Iterable[Mapping[str, Any]], zone: str, title: str) -> bytes:
    tz = ZoneInfo(zone)
    book = Workbook()
    sheet = book.active
    sheet.title = title[:31]
    for row in headers(columns, zone):
        sheet.append(row)
    for record in records:
        sheet.append([cell(column, record, tz) for column in columns])
    for index, column in enumerate(columns, start=1):
        if column.kind == "time":
            for (xl_cell,) in sheet.iter_rows(min_row=3, min_col=index, max_col=index):
                xl_cell.number_format = "yyyy-mm-dd hh:mm:ss"
    sheet.freeze_panes = "A3"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def to_gpx(device: str, points: Iterable[tuple[float, float, datetime]]) -> bytes:
    """GPX 1.1: one track of one segment; GPX times are UTC by its schema."""
    trkpts = "".join(f'<trkpt lat="{lat:.7f}" lon="{lon:.7f}"><time>{t.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")}</time></trkpt>'
                     for lat, lon, t in points)
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<gpx version="1.1" creator="Gridwatch" xmlns="http://www.topografix.com/GPX/1/1">'
            f"<trk><name>{escape(device)}</name><trkseg>{trkpts}</trkseg></trk></gpx>\n").encode()
