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
# Shades within a family, so two TLS (or DNS...) methods never share one colour.
FAMILY_SHADES: Final[dict[str, tuple[str, ...]]] = {
    "DNS": ("#cc79a7", "#8a4470", "#e8b5d0", "#5e2e4c"),
    "TCP/IP": ("#e69f00", "#9a6a00", "#f5cf73", "#5f4100"),
    "TLS": ("#d55e00", "#8c3d00", "#f0a070", "#4f2200"),
    "HTTP": ("#56b4e9", "#1f6f9f", "#a9d8f4", "#0d3a55"),
}
# Series colours of the overview chart (Okabe-Ito, then greys).
SERIES_COLOURS: Final[tuple[str, ...]] = ("#d55e00", "#0072b2", "#009e73", "#cc79a7",
                                          "#e69f00", "#56b4e9", "#000000", "#999999")
NO_DATA = "#f3f3f3"
# Width of one character of the 11 px sans-serif labels, generously (for fitting labels).
CHAR_WIDTH = 6.6
_FONT = "font-family=\"system-ui, sans-serif\" font-size=\"11\""


def _svg(width: int, height: int, label: str, body: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}">'
            f"<title>{escape(label)}</title>" + "".join(body) + "</svg>")


def _rect(x: float, y: float, width: float, height: float, fill: str, tip: str = "") -> str:
    title = f"<title>{escape(tip)}</title>" if tip else ""
    return (f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{height:.1f}" '
            f'fill="{fill}">{title}</rect>')


def _text(x: float, y: float, words: str, anchor: str = "start", fill: str = "#333",
          full: str | None = None) -> str:
    # A shortened label carries its whole text as a tooltip (and for the layout test).
    title = f"<title>{escape(full)}</title>" if full and full != words else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{fill}" {_FONT}>'
            f"{escape(words)}{title}</text>")


def fit_label(text: str, width: float) -> str:
    """The label as is when it fits `width` px, else cut at a word boundary with an ellipsis
    (never mid-word unless one word alone is too long)."""
    room = int(width // CHAR_WIDTH)
    if len(text) <= room:
        return text
    cut = text[:max(room - 1, 1)]
    space = cut.rfind(" ")
    if not text[len(cut)].isspace() and space > room // 3:
        cut = cut[:space]  # end at the last whole word
    return cut.rstrip(" /,-") + "…"


def _legend(x: float, y: float, entries: Sequence[tuple[str, str]],
            right: float = 10_000) -> tuple[list[str], float]:
    """Legend entries left to right, wrapping before `right`; returns (parts, last line y)."""
    parts: list[str] = []
    start = x
    for name, colour in entries:
        step = 22 + CHAR_WIDTH * len(name)
        if x > start and x + step > right:
            x, y = start, y + 16
        parts += [_rect(x, y - 9, 10, 10, colour), _text(x + 14, y, name)]
        x += step
    return parts, y


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
    legend, _ = _legend(left, top + bar_height + 32, [
        (name, colour) for name, colour in OUTCOME_COLOURS.items()] + [("no data", NO_DATA)])
    return _svg(max(width, 420), top + bar_height + 38, label, body + legend)


def method_colours(methods: Sequence[str]) -> dict[str, str]:
    """One colour per method: its family's hue, a different shade for each of its methods."""
    colours: dict[str, str] = {}
    used: dict[str, int] = {}
    for method in sorted(set(methods)):
        family = method_family(method)
        shades = FAMILY_SHADES.get(family, ("#999999", "#666666", "#cccccc", "#333333"))
        colours[method] = shades[used.get(family, 0) % len(shades)]
        used[family] = used.get(family, 0) + 1
    return colours


def render_methods_by_asn_svg(rows: Sequence[AsnMethods]) -> str:
    """Horizontal bars per network (ASN): blocked measurements split by blocking method; every
    method is named in the legend (and inside its segment when there is room)."""
    label_width, bar_width, row_height, top = 230, 380, 26, 8
    width = label_width + bar_width + 60
    colours = method_colours([method for row in rows for method, _ in row.counts])
    body: list[str] = []
    largest = max((sum(count for _, count in row.counts) for row in rows), default=0)
    if not rows:
        body.append(_text(8, top + 16, "No blocking seen in the period."))
    for index, row in enumerate(rows):
        y = top + index * row_height
        name = f"{row.probe_asn} {row.probe_network_name or ''}".strip()
        body.append(_text(label_width - 8, y + 15, fit_label(name, label_width - 12), "end",
                          full=name))
        x = float(label_width)
        total = sum(count for _, count in row.counts)
        for method, count in row.counts:
            segment = bar_width * count / largest
            body.append(_rect(x, y + 4, segment, row_height - 8, colours[method],
                              f"{name}: {method}, {count} measurements"))
            if segment > CHAR_WIDTH * len(method) + 8:
                body.append(_text(x + 4, y + 16, method, fill="#fff"))
            x += segment
        body.append(_text(x + 6, y + 16, str(total)))
    legend_top = top + row_height * max(len(rows), 1) + 22
    legend, last = _legend(8, legend_top, list(colours.items()), right=width - 8)
    return _svg(width, int(last) + 10, "Blocked measurements by network and method",
                body + legend)


def render_overview_svg(points: Sequence[tuple[str, str, int]], days: Sequence[str],
                        label: str = "Blocked URLs per day, by list and vantage") -> str:
    """(day, series, blocked URLs) as one line per series (a list at a vantage) over `days`."""
    left, top, plot_width, plot_height = 36, 10, 620, 120
    series = sorted({name for _, name, _ in points})
    largest = max((count for _, _, count in points), default=0)
    step = plot_width / max(len(days) - 1, 1)
    index_of = {day: index for index, day in enumerate(days)}
    body: list[str] = [f'<line x1="{left}" y1="{top + plot_height}" x2="{left + plot_width}" '
                       f'y2="{top + plot_height}" stroke="#999"/>']
    body.append(_text(left - 4, top + 8, str(largest), "end"))
    body.append(_text(left - 4, top + plot_height, "0", "end"))
    if not series:
        body.append(_text(left + 8, top + plot_height / 2, "No URL was blocked in the period."))
    for number, name in enumerate(series):
        colour = SERIES_COLOURS[number % len(SERIES_COLOURS)]
        counts = {day: count for day, each, count in points if each == name}
        coordinates = [(left + index_of[day] * step,
                        top + plot_height - (plot_height * counts.get(day, 0) / largest
                                             if largest else 0)) for day in days]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coordinates)
        body.append(f'<polyline points="{path}" fill="none" stroke="{colour}" '
                    f'stroke-width="2"><title>{escape(name)}</title></polyline>')
        for (x, y), day in zip(coordinates, days, strict=True):
            if counts.get(day):
                body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colour}">'
                            f"<title>{escape(f'{name}, {day}: {counts[day]} blocked URLs')}"
                            "</title></circle>")
    if days:
        body.append(_text(left, top + plot_height + 14, days[0]))
        body.append(_text(left + plot_width, top + plot_height + 14, days[-1], "end"))
    legend, last = _legend(left, top + plot_height + 32,
                           [(name, SERIES_COLOURS[number % len(SERIES_COLOURS)])
                            for number, name in enumerate(series)],
                           right=left + plot_width)
    return _svg(left + plot_width + 12, int(last) + 10, label, body + legend)


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
        body.append(_text(label_width - 6, y + 11, fit_label(row.target_name, label_width - 10),
                          "end", full=row.target_name))
        for index, day in enumerate(row.cells):
            body.append(_rect(label_width + index * cell, y, cell - 1, cell - 1,
                              heat_colour(day), f"{row.target_name}, {_day_tip(day)}"))
    legend, last = _legend(8, height - 8, [("all blocked", OUTCOME_COLOURS["blocked"]),
                                           ("partly blocked", "#fdd0a2"),
                                           ("not blocked", "#9ecae1"),
                                           ("down", OUTCOME_COLOURS["down"]),
                                           ("no data", NO_DATA)], right=max(width, 560) - 8)
    return _svg(max(width, 560), int(last) + 8, "Blocking by target and day", body + legend)
