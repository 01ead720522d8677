"""Inline SVG line charts, rendered on the server: no JavaScript chart library to pin,
serve or audit, and the chart reads the same with scripts off. Each chart carries a
title and a text summary for screen readers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from html import escape

WIDTH, HEIGHT = 640, 200
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 64, 16, 16, 28


def _day(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def line_chart(points: Sequence[tuple[int, Decimal]], *, title: str, unit: str) -> str:
    """An SVG line of `points` (chain timestamp, value), oldest first. With fewer than
    two points it says so instead of drawing a line."""
    label = escape(title)
    if len(points) < 2:
        only = f": {points[0][1]} {unit} at {_day(points[0][0])}" if points else ""
        return (f'<p class="chart-empty">{label}: not enough history to draw yet'
                f"{escape(only)}.</p>")
    times = [t for t, _ in points]
    values = [v for _, v in points]
    t0, t1 = min(times), max(times)
    lo, hi = min(values), max(values)
    if hi == lo:
        lo, hi = lo - abs(lo) / 10 - Decimal("0.01"), hi + abs(hi) / 10 + Decimal("0.01")
    span_t = max(t1 - t0, 1)
    inner_w, inner_h = WIDTH - PAD_LEFT - PAD_RIGHT, HEIGHT - PAD_TOP - PAD_BOTTOM

    def xy(t: int, v: Decimal) -> str:
        x = PAD_LEFT + inner_w * (t - t0) / span_t
        y = PAD_TOP + float((hi - v) / (hi - lo)) * inner_h
        return f"{x:.1f},{y:.1f}"

    path = " ".join(xy(t, v) for t, v in points)
    first, last = points[0], points[-1]
    summary = (f"{title}: {len(points)} values from {first[1]} {unit} on {_day(first[0])} to "
               f"{last[1]} {unit} on {_day(last[0])}; lowest {min(values)}, highest "
               f"{max(values)}.")
    ticks = "".join(
        f'<text x="{PAD_LEFT - 6}" y="{PAD_TOP + inner_h * i / 2 + 4:.1f}" '
        f'text-anchor="end">{escape(_fmt(hi - (hi - lo) * i / 2))}</text>'
        for i in range(3))
    return (
        f'<figure class="chart"><svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(summary)}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{label}</title>"
        f'<line class="axis" x1="{PAD_LEFT}" y1="{PAD_TOP + inner_h}" x2="{WIDTH - PAD_RIGHT}" '
        f'y2="{PAD_TOP + inner_h}"/>'
        f'<line class="axis" x1="{PAD_LEFT}" y1="{PAD_TOP}" x2="{PAD_LEFT}" '
        f'y2="{PAD_TOP + inner_h}"/>{ticks}'
        f'<text x="{PAD_LEFT}" y="{HEIGHT - 8}">{_day(t0)}</text>'
        f'<text x="{WIDTH - PAD_RIGHT}" y="{HEIGHT - 8}" text-anchor="end">{_day(t1)}</text>'
        f'<polyline class="line" points="{path}"/></svg>'
        f"<figcaption>{escape(summary)}</figcaption></figure>")


def _fmt(value: Decimal) -> str:
    return f"{value:,.4f}" if abs(value) < 10 else f"{value:,.2f}"
