"""Pure: the report's charts as standalone inline SVG text (no scripts, no fonts, no fetches)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Final

from reports.build import AsnMethods, DayCell, HeatRow, Timeline
from reports.methods import method_family

# Colours chosen to stay apart for the common colour-blindnesses (blue/orange/grey).
OUTCOME_COLOURS: Final[dict[str, str]] = {
    "blocked": "#d55e00",
    "accessible": "#0072b2",
    "down": "#6b6b6b",
    "unknown": "#c8c8c8",
}
FAMILY_COLOURS: Final[dict[str, str]] = {
    "DNS": "#cc79a7",
    "TCP/IP": "#e69f00",
    "TLS": "#d55e00",
    "HTTP": "#56b4e9",
}
NO_DATA = "#f3f3f3"
_FONT = "font-family=\"system-ui, sans-serif\" font-size=\"11\""


def _svg(width: int, height: int, label: str, body: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}">'
            f"<title>{escape(label)}</title>" + "".join(body) + "</svg>")


def _rect(x: float, y: float, width: float, height: float, fill: str, tip: str = "") -> str:
    title = f"<title>{escape(tip)}</title>" if tip else ""
    return (f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{height:.1f}" '
            f'fill="{fill}">{title}</rect>')


def _text(x: float, y: float, words: str, anchor: str = "start", fill: str = "#333") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{fill}" {_FONT}>'
            f"{escape(words)}</text>")


def _legend(x: float, y: float, entries: Sequence[tuple[str, str]]) -> list[str]:
    parts = []
    for name, colour in entries:
        parts += [_rect(x, y - 9, 10, 10, colour), _text(x + 14, y, name)]
        x += 22 + 6.5 * len(name)
    return parts


def _day_tip(cell: DayCell) -> str:
    if not cell.measurements:
        return f"{cell.day}: not measured"
    return (f"{cell.day}: {cell.measurements} measurements, {cell.blocked} blocked, "
            f"{cell.accessible} accessible, {cell.down} down, {cell.unknown} unknown")


def render_timeline_svg(timeline: Timeline, label: str) -> str:
    """One column per day, split by the share of blocked / down / unknown / accessible results."""
    # About 640 px whatever the period: a week gets wide columns, a quarter thin ones.
    day_width = max(6, min(40, 640 // max(len(timeline.days), 1)))
    bar_height, left, top = 44, 4, 4
    width = left * 2 + day_width * len(timeline.days)
    body: list[str] = []
    for index, cell in enumerate(timeline.days):
        x = left + index * day_width
        if not cell.measurements:
            body.append(_rect(x, top, day_width - 2, bar_height, NO_DATA, _day_tip(cell)))
            continue
        y = top + bar_height
        for outcome in ("blocked", "down", "unknown", "accessible"):
            count = getattr(cell, outcome)
            if not count:
                continue
            height = bar_height * count / cell.measurements
            y -= height
            body.append(_rect(x, y, day_width - 2, height, OUTCOME_COLOURS[outcome],
                              _day_tip(cell)))
    if timeline.days:
        body.append(_text(left, top + bar_height + 14, timeline.days[0].day))
        body.append(_text(width - left, top + bar_height + 14, timeline.days[-1].day, "end"))
    body += _legend(left, top + bar_height + 32, [(name, colour) for name, colour in
                                                  OUTCOME_COLOURS.items()] + [("no data",
                                                                               NO_DATA)])
    return _svg(max(width, 420), top + bar_height + 38, label, body)


def render_methods_by_asn_svg(rows: Sequence[AsnMethods]) -> str:
    """Horizontal bars per network (ASN): blocked measurements split by blocking method."""
    label_width, bar_width, row_height, top = 230, 380, 26, 8
    families = sorted({method_family(method) for row in rows for method, _ in row.counts})
    height = top + row_height * max(len(rows), 1) + 30
    body: list[str] = []
    largest = max((sum(count for _, count in row.counts) for row in rows), default=0)
    if not rows:
        body.append(_text(8, top + 16, "No blocking seen in the period."))
    for index, row in enumerate(rows):
        y = top + index * row_height
        name = f"{row.probe_asn} {row.probe_network_name or ''}".strip()
        body.append(_text(label_width - 8, y + 15, name[:36], "end"))
        x = float(label_width)
        total = sum(count for _, count in row.counts)
        for method, count in row.counts:
            segment = bar_width * count / largest
            colour = FAMILY_COLOURS.get(method_family(method), "#999999")
            body.append(_rect(x, y + 4, segment, row_height - 8, colour,
                              f"{name}: {method}, {count} measurements"))
            if segment > 60:
                body.append(_text(x + 4, y + 16, method, fill="#fff"))
            x += segment
        body.append(_text(x + 6, y + 16, str(total)))
    body += _legend(label_width, height - 8, [(family, FAMILY_COLOURS.get(family, "#999999"))
                                              for family in families])
    return _svg(label_width + bar_width + 60, height, "Blocked measurements by network and method",
                body)


def heat_colour(cell: DayCell) -> str:
    """No data: pale grey; down only: grey; not blocked: blue; else orange by blocked share."""
    if not cell.measurements:
        return NO_DATA
    # Down results (the site fails for the control too) say nothing about blocking.
    telling = cell.measurements - cell.down
    if telling == 0:
        return OUTCOME_COLOURS["down"]
    if cell.blocked == 0:
        return "#9ecae1"
    share = cell.blocked / telling
    # From a light orange (a few blocked) to the full blocked colour (all blocked).
    low, high = (0xfd, 0xd0, 0xa2), (0xd5, 0x5e, 0x00)
    mixed = [round(a + (b - a) * share) for a, b in zip(low, high, strict=True)]
    return "#" + "".join(f"{channel:02x}" for channel in mixed)


def render_heatmap_svg(rows: Sequence[HeatRow]) -> str:
    """Targets by day: each cell's colour is the share of blocked measurements that day."""
    label_width, top = 170, 18
    cell = max(8, min(28, 760 // max(len(rows[0].cells) if rows else 1, 1)))
    days = rows[0].cells if rows else ()
    width = label_width + cell * len(days) + 10
    height = top + cell * len(rows) + 34
    body: list[str] = []
    for index, day in enumerate(days):
        if index % 7 == 0:
            body.append(_text(label_width + index * cell, 12, day.day[5:]))
    for row_index, row in enumerate(rows):
        y = top + row_index * cell
        body.append(_text(label_width - 6, y + 11, row.target_name[:26], "end"))
        for index, day in enumerate(row.cells):
            body.append(_rect(label_width + index * cell, y, cell - 1, cell - 1,
                              heat_colour(day), f"{row.target_name}, {_day_tip(day)}"))
    body += _legend(label_width, height - 8, [("all blocked", OUTCOME_COLOURS["blocked"]),
                                              ("partly blocked", "#fdd0a2"),
                                              ("not blocked", "#9ecae1"),
                                              ("down", OUTCOME_COLOURS["down"]),
                                              ("no data", NO_DATA)])
    return _svg(max(width, 560), height, "Blocking by target and day", body)
