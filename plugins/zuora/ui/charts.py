"""Charts for the Zuora sync page as inline SVG, drawn on the server: nothing to download, so
they work air-gapped. Colours are CSS classes (``ok``, ``bad``, ``run``, ``line``, ``axis``)
that the page's light and dark themes colour; every text is escaped.

    sparkline(values) -> Markup                 a customer's 30-day duration trend (or tasks: label, fmt)
    fleet_bars(days) -> Markup                  customers synced and failed per day
    duration_bars(days, key, label) -> Markup   seconds per day
    count_bars(days, key, label) -> Markup      a count per day (a customer's tasks)
    sync_bars(syncs) -> Markup                  a customer's syncs, oldest left, coloured by status
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from html import escape
from typing import Any

from markupsafe import Markup

WIDTH = 720
WIDE = 1400  # a chart across the whole page
HEIGHT = 160
LEFT = 44  # room for the y axis labels
BOTTOM = 22  # room for the x axis labels
TOP = 8


def sparkline(
    values: Sequence[float | None],
    width: int = 120,
    height: int = 24,
    *,
    label: str = "median duration per day",
    fmt=None,
    empty: str = "no runs",
) -> Markup:
    """A line through the days that have a value (gaps left open), the last point marked;
    its title says ``label`` and the highest value (``fmt``: seconds by default)."""
    fmt = fmt or seconds_text
    known = [v for v in values if v is not None]
    if not known:
        return Markup(f'<span class="muted">{escape(empty)}</span>')
    top = max(known) or 1.0
    step = width / max(len(values) - 1, 1)
    segments: list[list[str]] = [[]]
    last = (0.0, 0.0)
    for i, value in enumerate(values):
        if value is None:
            if segments[-1]:
                segments.append([])
            continue
        x, y = i * step, height - 2 - (value / top) * (height - 4)
        segments[-1].append(f"{x:.1f},{y:.1f}")
        last = (x, y)
    lines = "".join(
        f'<polyline class="line" points="{" ".join(points)}"/>' for points in segments if len(points) > 1
    )
    title = f"{label}, last {len(values)} days: max {fmt(max(known))}"
    return Markup(
        f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>{lines}'
        f'<circle class="dot" cx="{last[0]:.1f}" cy="{last[1]:.1f}" r="2"/></svg>'
    )


def fleet_bars(days: Sequence[dict[str, Any]]) -> Markup:
    """Per day, customers synced (green) with customers failed (red) stacked on top."""
    top = max([d["synced"] + d["failed"] for d in days] + [1])
    bars = []
    for i, d in enumerate(days):
        x, w = _slot(i, len(days))
        ok_h = _height(d["synced"], top)
        bad_h = _height(d["failed"], top)
        title = escape(f"{_day(d['day'])}: {d['synced']} synced, {d['failed']} failed")
        bars.append(
            f"<g><title>{title}</title>"
            f'<rect class="ok" x="{x:.1f}" y="{_y(ok_h):.1f}" width="{w:.1f}" height="{ok_h:.1f}"/>'
            f'<rect class="bad" x="{x:.1f}" y="{_y(ok_h + bad_h):.1f}" width="{w:.1f}" '
            f'height="{bad_h:.1f}"/></g>'
        )
    return _frame("customers synced and failed per day", top, _count, bars, _day_labels(days))


def duration_bars(days: Sequence[dict[str, Any]], key: str, label: str) -> Markup:
    """Per day, ``day[key]`` seconds (blank for a day without runs)."""
    return _day_bars(days, key, label, seconds_text)


def count_bars(days: Sequence[dict[str, Any]], key: str, label: str) -> Markup:
    """Per day, the count ``day[key]`` (blank for a day without one), e.g. tasks."""
    return _day_bars(days, key, label, tasks_text)


def _day_bars(days: Sequence[dict[str, Any]], key: str, label: str, fmt) -> Markup:
    top = max([d[key] or 0 for d in days] + [1])
    bars = []
    for i, d in enumerate(days):
        if d[key] is None:
            continue
        x, w = _slot(i, len(days))
        h = _height(d[key], top)
        title = escape(f"{_day(d['day'])}: {fmt(d[key])}")
        bars.append(
            f'<rect class="run" x="{x:.1f}" y="{_y(h):.1f}" width="{w:.1f}" height="{h:.1f}">'
            f"<title>{title}</title></rect>"
        )
    return _frame(label, top, fmt, bars, _day_labels(days))


def sync_bars(syncs: Sequence[dict[str, Any]]) -> Markup:
    """One bar per sync (``syncs`` newest first, drawn oldest left): its duration, green for
    success, red for failed, grey while running."""
    ordered = list(reversed(syncs))
    width = WIDE
    top = max([s["duration_seconds"] or 0 for s in ordered] + [1])
    bars = []
    for i, s in enumerate(ordered):
        x, w = _slot(i, len(ordered), width)
        seconds = s["duration_seconds"]
        h = max(_height(seconds or 0, top), 2.0)  # a failure without a duration still shows
        kind = {"success": "ok", "failed": "bad"}.get(s["status"], "muted-bar")
        title = escape(
            f"{_stamp(s['started_at'])}: {s['status']}, "
            f"{seconds_text(seconds) if seconds is not None else 'no duration'}, run {s['run_id']}"
        )
        bars.append(
            f'<rect class="{kind}" x="{x:.1f}" y="{_y(h):.1f}" width="{w:.1f}" height="{h:.1f}">'
            f"<title>{title}</title></rect>"
        )
    labels = []
    if ordered:
        labels = [(0, _day(ordered[0]["started_at"])), (len(ordered) - 1, _day(ordered[-1]["started_at"]))]
    return _frame(
        f"duration of the last {len(ordered)} syncs",
        top,
        seconds_text,
        bars,
        labels,
        count=len(ordered),
        width=width,
    )


def _frame(
    title: str,
    top: float,
    fmt,
    bars: list[str],
    labels: list[tuple[int, str]],
    count: int = 30,
    width: int = WIDTH,
) -> Markup:
    plot_h = HEIGHT - TOP - BOTTOM
    grid = []
    for fraction in (0.0, 0.5, 1.0):
        y = TOP + plot_h * (1 - fraction)
        grid.append(
            f'<line class="grid" x1="{LEFT}" x2="{width}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="axis" x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(fmt(top * fraction))}</text>"
        )
    texts = []
    for index, text in labels:
        x, w = _slot(index, max(count, 1), width)
        anchor = "start" if index == 0 else "end"
        at = x if index == 0 else x + w
        texts.append(
            f'<text class="axis" x="{at:.1f}" y="{HEIGHT - 6}" text-anchor="{anchor}">{escape(text)}</text>'
        )
    return Markup(
        f'<svg class="chart" viewBox="0 0 {width} {HEIGHT}" role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>{''.join(grid)}{''.join(bars)}{''.join(texts)}</svg>"
    )


def _slot(index: int, count: int, width: int = WIDTH) -> tuple[float, float]:
    slot = (width - LEFT) / max(count, 1)
    return LEFT + index * slot + slot * 0.15, slot * 0.7


def _height(value: float, top: float) -> float:
    return (value / top) * (HEIGHT - TOP - BOTTOM) if top else 0.0


def _y(height: float) -> float:
    return HEIGHT - BOTTOM - height


def _day_labels(days: Sequence[dict[str, Any]]) -> list[tuple[int, str]]:
    if not days:
        return []
    return [(0, _day(days[0]["day"])), (len(days) - 1, _day(days[-1]["day"]))]


def _day(value: date | datetime) -> str:
    if isinstance(value, datetime):
        value = value.astimezone(UTC)
    return value.strftime("%b %d")


def _stamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _count(value: float) -> str:
    return f"{value:.0f}"


def tasks_text(value: float) -> str:
    """950, 12.5k, 1.2M."""
    if value < 10_000:
        return f"{value:,.0f}"
    if value < 1_000_000:
        return f"{value / 1000:.1f}k"
    return f"{value / 1_000_000:.1f}M"


def seconds_text(value: float) -> str:
    """12 s, 3.5 min, 2.1 h."""
    if value < 120:
        return f"{value:.0f} s" if value >= 10 or value == 0 else f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"
