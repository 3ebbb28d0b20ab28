"""Line charts as inline SVG, drawn on the server: no script, no font, no external resource.

Only presentation attributes (fill, stroke), never `style`, so the pages' Content-Security-
Policy needs no 'unsafe-inline'. Gaps in the readings (None) break the line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from xml.sax.saxutils import escape

WIDTH, HEIGHT = 720, 200
_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 12, 12, 28


def line_chart(points: Sequence[tuple[datetime, float | None]], *, start: datetime,
               end: datetime, title: str, y_label: Callable[[float], str],
               y_max: float | None = None, x_label: Callable[[datetime], str],
               colour: str = "#1f6feb", threshold: float | None = None,
               threshold_colour: str = "#d1242f") -> str:
    """An SVG element plotting `points` between `start` and `end`."""
    values = [v for _, v in points if v is not None]
    top = y_max if y_max is not None else max([*values, threshold or 0.0, 1.0]) * 1.1
    span = max((end - start).total_seconds(), 1.0)
    plot_w, plot_h = WIDTH - _LEFT - _RIGHT, HEIGHT - _TOP - _BOTTOM

    def x(at: datetime) -> float:
        return _LEFT + plot_w * min(max((at - start).total_seconds() / span, 0.0), 1.0)

    def y(value: float) -> float:
        return _TOP + plot_h * (1.0 - min(max(value / top, 0.0), 1.0))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}">',
             f"<title>{escape(title)}</title>",
             f'<rect x="{_LEFT}" y="{_TOP}" width="{plot_w}" height="{plot_h}" fill="#ffffff" '
             f'stroke="#d0d7de"/>']
    for i in range(5):  # horizontal grid and y labels
        level = top * i / 4
        gy = y(level)
        parts.append(f'<line x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{gy:.1f}" y2="{gy:.1f}" '
                     f'stroke="#eaeef2"/>')
        parts.append(f'<text x="{_LEFT - 6}" y="{gy + 4:.1f}" text-anchor="end" '
                     f'font-size="11" fill="#57606a">{escape(y_label(level))}</text>')
    for i in range(8):  # vertical grid: days of a 7-day window
        at = start + (end - start) * i / 7
        gx = x(at)
        parts.append(f'<line x1="{gx:.1f}" x2="{gx:.1f}" y1="{_TOP}" y2="{HEIGHT - _BOTTOM}" '
                     f'stroke="#eaeef2"/>')
        parts.append(f'<text x="{gx:.1f}" y="{HEIGHT - 10}" text-anchor="middle" '
                     f'font-size="11" fill="#57606a">{escape(x_label(at))}</text>')
    if threshold is not None and threshold <= top:
        ty = y(threshold)
        parts.append(f'<line x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{ty:.1f}" y2="{ty:.1f}" '
                     f'stroke="{threshold_colour}" stroke-dasharray="4 3"/>')
    path: list[str] = []
    pen_down = False
    for at, value in points:
        if value is None:
            pen_down = False
            continue
        path.append(f"{'L' if pen_down else 'M'}{x(at):.1f} {y(value):.1f}")
        pen_down = True
    if path:
        parts.append(f'<path d="{" ".join(path)}" fill="none" stroke="{colour}" '
                     f'stroke-width="2" stroke-linejoin="round"/>')
        last_at, last = next((a, v) for a, v in reversed(points) if v is not None)
        parts.append(f'<circle cx="{x(last_at):.1f}" cy="{y(last or 0.0):.1f}" r="3" '
                     f'fill="{colour}"/>')
    parts.append("</svg>")
    return "".join(parts)
