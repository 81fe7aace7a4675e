"""Charts as server-side SVG: nothing vendored, nothing fetched, readable without script.

Each chart is an ``<svg role="img">`` with a title and a description, followed on the page
by its figures as a table, so a screen reader gets the numbers too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup, escape

from rules_service.services.pause_periods import PausedPeriod
from rules_service.services.rollbacks import VersionChange
from rules_service.services.trends import Slice

WIDTH, HEIGHT = 480, 230
LEFT, RIGHT, TOP, BOTTOM = 48, 10, 34, 30
COLOURS = ("#0a5bc4", "#b35c00", "#a40e26", "#116329", "#6639ba")

Series = dict[str, list[float | None]]


@dataclass(frozen=True)
class Marker:
    """A moment marked across a chart: ``at`` is its place in the window, 0 to 1."""

    at: float
    label: str
    title: str


@dataclass(frozen=True)
class Band:
    """A stretch of the window shaded across a chart (a paused period): ``start`` and
    ``end`` are its place in the window, 0 to 1."""

    start: float
    end: float
    title: str


@dataclass(frozen=True)
class Chart:
    """One chart: its SVG and the figures behind it."""

    key: str
    title: str
    unit: str
    labels: list[str]
    series: Series
    svg: Markup
    kind: str = "line"

    def rows(self) -> list[tuple[str, list[float | None]]]:
        """(label, one value per series) for the figures table."""
        return [(label, [values[i] for values in self.series.values()])
                for i, label in enumerate(self.labels)]

    @property
    def has_data(self) -> bool:
        """Some slice has a figure to show (a count above zero; any measured value)."""
        if self.kind == "bars":
            return any(v for values in self.series.values() for v in values)
        return any(v is not None for values in self.series.values() for v in values)


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    step = 10 ** (len(str(int(value))) - 1)
    for factor in (1, 2, 2.5, 5, 10):
        if value <= step * factor:
            return float(step * factor)
    return float(step * 10)


def _fmt(value: float) -> str:
    return f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:.2g}"


@dataclass(frozen=True)
class _Frame:
    """Where values land on one chart: ``n`` slots across, 0..``top`` up."""

    n: int
    top: float

    @property
    def plot_w(self) -> float:
        return WIDTH - LEFT - RIGHT

    @property
    def plot_h(self) -> float:
        return HEIGHT - TOP - BOTTOM

    def x(self, i: int) -> float:
        return LEFT + self.plot_w * (i + 0.5) / self.n

    def y(self, v: float) -> float:
        return TOP + self.plot_h - self.plot_h * (v / self.top)


def _frame(labels: Sequence[str], series: Series, kind: str) -> _Frame:
    n = max(len(labels), 1)
    if kind == "bars":
        totals = [sum(v[i] or 0 for v in series.values()) for i in range(n)]
        top = _nice_max(max(totals, default=0))
    else:
        top = _nice_max(max((v or 0 for vs in series.values() for v in vs), default=0))
    if all(isinstance(v, int) for vs in series.values() for v in vs if v is not None):
        top = float(max(4, -(-int(top) // 4) * 4))  # counts: whole numbers on every grid line
    return _Frame(n, top)


def _axes(f: _Frame, key: str, title: str, unit: str, labels: Sequence[str]) -> list[str]:
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
             f'role="img" aria-labelledby="{key}-t {key}-d" data-chart="{key}">',
             f'<title id="{key}-t">{escape(title)}</title>',
             f'<desc id="{key}-d">{escape(title)} in {escape(unit)}, '
             f'{len(labels)} points from {escape(labels[0] if labels else "")} '
             f'to {escape(labels[-1] if labels else "")}</desc>',
             f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#fff"/>']
    for frac in (0, 0.25, 0.5, 0.75, 1):
        gy = f.y(f.top * frac)
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{gy:.1f}" y2="{gy:.1f}" '
                     f'stroke="#d0d7de" stroke-width="1"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{gy + 4:.1f}" text-anchor="end" '
                     f'font-size="13" fill="#57606a">{_fmt(f.top * frac)}</text>')
    every = max(1, f.n // 4)
    for i, label in enumerate(labels):
        if i % every == 0:
            parts.append(f'<text x="{f.x(i):.1f}" y="{HEIGHT - BOTTOM + 16}" '
                         f'text-anchor="middle" font-size="13" fill="#57606a">'
                         f'{escape(label)}</text>')
    return parts


def _bars(f: _Frame, labels: Sequence[str], series: Series) -> list[str]:
    parts = []
    bar_w = f.plot_w / f.n * 0.7
    base = [0.0] * f.n
    for (name, values), colour in zip(series.items(), COLOURS, strict=False):
        for i, v in enumerate(values):
            if not v:
                continue
            y0, y1 = f.y(base[i]), f.y(base[i] + v)
            parts.append(f'<rect class="bar" x="{f.x(i) - bar_w / 2:.1f}" y="{y1:.1f}" '
                         f'width="{bar_w:.1f}" height="{y0 - y1:.1f}" fill="{colour}">'
                         f'<title>{escape(name)} {escape(labels[i])}: {_fmt(v)}</title>'
                         f'</rect>')
            base[i] += v
    return parts


def _lines(f: _Frame, series: Series) -> list[str]:
    parts = []
    for (name, values), colour in zip(series.items(), COLOURS, strict=False):
        points = [(f.x(i), f.y(v)) for i, v in enumerate(values) if v is not None]
        if len(points) > 1:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
            parts.append(f'<polyline class="line" points="{path}" fill="none" '
                         f'stroke="{colour}" stroke-width="2.5"/>')
        for px, py in points:
            parts.append(f'<circle class="point" cx="{px:.1f}" cy="{py:.1f}" r="3" '
                         f'fill="{colour}"><title>{escape(name)}</title></circle>')
    return parts


def _legend(series: Series) -> list[str]:
    parts = []
    lx = LEFT
    for name, colour in zip(series, COLOURS, strict=False):
        parts.append(f'<rect x="{lx}" y="8" width="12" height="12" fill="{colour}"/>'
                     f'<text x="{lx + 16}" y="18" font-size="14" fill="#1b1f24">'
                     f'{escape(name)}</text>')
        lx += 26 + 8 * len(name)
    return parts


def _markers(f: _Frame, markers: Sequence[Marker]) -> list[str]:
    """A dashed vertical line per marker, labelled at its top, its title the tooltip."""
    parts = []
    for i, m in enumerate(markers):
        x = LEFT + f.plot_w * min(max(m.at, 0.0), 1.0)
        anchor = "end" if x > WIDTH - RIGHT - 40 else "start"
        dx = -3 if anchor == "end" else 3
        parts.append(f'<g class="marker"><title>{escape(m.title)}</title>'
                     f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{HEIGHT - BOTTOM}" '
                     f'stroke="#6e7781" stroke-width="1.5" stroke-dasharray="4 3"/>'
                     f'<text x="{x + dx:.1f}" y="{TOP + 12 + 14 * (i % 3)}" '
                     f'text-anchor="{anchor}" font-size="13" font-weight="600" '
                     f'fill="#1b1f24">{escape(m.label)}</text></g>')
    return parts


def _bands(f: _Frame, bands: Sequence[Band]) -> list[str]:
    """A shaded stretch per band, under the data, its title the tooltip."""
    parts = []
    for b in bands:
        x0 = LEFT + f.plot_w * min(max(b.start, 0.0), 1.0)
        x1 = LEFT + f.plot_w * min(max(b.end, 0.0), 1.0)
        parts.append(f'<g class="paused-band"><title>{escape(b.title)}</title>'
                     f'<rect x="{x0:.1f}" y="{TOP}" width="{max(x1 - x0, 2.0):.1f}" '
                     f'height="{HEIGHT - BOTTOM - TOP}" fill="#f4b400" fill-opacity="0.18"/>'
                     f'</g>')
    return parts


def draw(key: str, title: str, unit: str, labels: Sequence[str], series: Series, *,
         kind: str = "line", markers: Sequence[Marker] = (),
         bands: Sequence[Band] = ()) -> Chart:
    """A line chart, or (``kind="bars"``) stacked bars, of ``series`` over ``labels``,
    with ``bands`` shaded under it and ``markers`` drawn across it."""
    f = _frame(labels, series, kind)
    parts = _axes(f, key, title, unit, labels)
    parts += _bands(f, bands)
    parts += _bars(f, labels, series) if kind == "bars" else _lines(f, series)
    parts += _markers(f, markers)
    parts += _legend(series)
    parts.append("</svg>")
    # Every text that came from data went through escape() above.
    return Chart(key, title, unit, list(labels), series,
                 Markup("".join(parts)), kind)  # noqa: S704


def _get(figures: dict[str, Any], *path: str) -> Any:
    value: Any = figures
    for step in path:
        if not isinstance(value, dict):
            return None
        value = value.get(step)
    return value


def _pct(value: Any) -> float | None:
    return round(value * 100, 2) if isinstance(value, int | float) else None


def _hours(value: Any) -> float | None:
    return round(value / 3600, 2) if isinstance(value, int | float) else None


def change_title(change: VersionChange) -> str:
    """A version change in words: "refunds: version 1 rolled back to by ops, 2026-12-02
    10:05 UTC"."""
    how = "rolled back to" if change.rolled_back else "activated"
    return (f"{change.ruleset}: version {change.version} {how} by {change.actor}, "
            f"{change.at:%Y-%m-%d %H:%M} UTC")


MARKER_GAP = 0.04
"""Version changes closer than this share of the window share one marker."""


def _one_marker(group: list[tuple[float, VersionChange]]) -> Marker:
    versions = [f"v{c.version}" for _, c in group]
    if len({c.ruleset for _, c in group}) > 1:
        label = f"{len(versions)} changes"  # of several rulesets: the title names them
    elif len(versions) <= 3:
        label = "→".join(versions)
    else:
        label = f"{len(versions)} changes→{versions[-1]}"
    return Marker(group[0][0], label, "\n".join(change_title(c) for _, c in group))


def change_markers(slices: Sequence[Slice], changes: Sequence[VersionChange]) -> list[Marker]:
    """Each version change inside the slices' window, placed where it happened; changes
    too close to tell apart share one marker whose title lists them all."""
    if not slices:
        return []
    start, end = slices[0].since, slices[-1].until
    span = (end - start).total_seconds()
    if span <= 0:
        return []
    placed = sorted((((c.at - start).total_seconds() / span, c)
                     for c in changes if start <= c.at <= end), key=lambda p: p[0])
    groups: list[list[tuple[float, VersionChange]]] = []
    for at, change in placed:
        if groups and at - groups[-1][0][0] < MARKER_GAP:
            groups[-1].append((at, change))
        else:
            groups.append([(at, change)])
    return [_one_marker(g) for g in groups]


def pause_bands(slices: Sequence[Slice], periods: Sequence[PausedPeriod]) -> list[Band]:
    """Each paused period, clipped to the slices' window (one still in force runs to its
    end)."""
    if not slices:
        return []
    start, end = slices[0].since, slices[-1].until
    span = (end - start).total_seconds()
    if span <= 0:
        return []
    out = []
    for p in periods:
        since, until = max(p.since, start), min(p.until or end, end)
        if since > until:
            continue
        title = (f"{p.ruleset}: paused by {p.by} {p.since:%Y-%m-%d %H:%M} UTC"
                 + (f" until {p.until:%Y-%m-%d %H:%M} UTC" if p.until else ", still paused")
                 + f": {p.reason}")
        out.append(Band((since - start).total_seconds() / span,
                        (until - start).total_seconds() / span, title))
    return out


def dashboard_charts(slices: Sequence[Slice], changes: Sequence[VersionChange] = (),
                     paused: Sequence[PausedPeriod] = ()) -> list[Chart]:
    """The dashboard's charts, one point (or bar) per slice of the window, each marking
    when the active version changed and shading when a ruleset was paused."""
    span = (slices[-1].until - slices[0].since) if slices else None
    fmt = "%H:%M" if span is not None and span.total_seconds() <= 86400 else "%m-%d"
    labels = [s.since.strftime(fmt) for s in slices]
    f = [s.figures for s in slices]
    marks = change_markers(slices, changes)
    bands = pause_bands(slices, paused)

    def series(*paths: tuple[str, tuple[str, ...]], scale: Any = None) -> Series:
        return {name: [(scale or (lambda v: v))(_get(x, *path)) for x in f]
                for name, path in paths}

    def chart(key: str, title: str, unit: str, data: Series, kind: str = "line") -> Chart:
        return draw(key, title, unit, labels, data, kind=kind, markers=marks, bands=bands)

    return [
        chart("throughput", "Decisions", "decisions per slice",
              series(("decisions", ("decisions", "count"))), kind="bars"),
        chart("outcomes", "Outcome mix", "decisions",
              series(("approve", ("outcomes", "approve", "count")),
                     ("escalate", ("outcomes", "escalate", "count")),
                     ("reject", ("outcomes", "reject", "count"))), kind="bars"),
        chart("rates", "Escalated and fallback shares", "% of decisions",
              series(("escalated", ("exception_rate",)), ("fallback", ("fallbacks", "rate")),
                     scale=_pct)),
        chart("latency", "Evaluation latency", "milliseconds",
              series(("p50", ("latency_ms", "p50")), ("p95", ("latency_ms", "p95")),
                     ("p99", ("latency_ms", "p99")))),
        chart("escalations", "Escalations against target", "escalations",
              series(("raised", ("escalations", "raised")),
                     ("resolved", ("escalations", "resolved")),
                     ("within target", ("escalations", "resolved_within_target")))),
        chart("approval", "Change approval delay", "hours (median)",
              series(("proposed→approved",
                      ("change_approval", "proposed_to_approved_seconds", "median")),
                     ("proposed→active",
                      ("change_approval", "proposed_to_active_seconds", "median")),
                     scale=_hours)),
        chart("hours", "Hours saved by automatic decisions", "hours",
              series(("hours saved", ("impact", "hours_saved"))), kind="bars"),
    ]
