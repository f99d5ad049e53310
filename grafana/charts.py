"""Draw one panel's query result to a PNG with matplotlib (Agg): time series as lines,
heatmaps as a link x time grid, tables as a table. Units follow the panel's Grafana unit."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display here; must precede pyplot

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
import pyarrow as pa
from matplotlib.ticker import FuncFormatter

from grafana.panels import PanelQuery

_SI = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def _si(value: float, suffix: str) -> str:
    for size, prefix in _SI:
        if abs(value) >= size:
            return f"{value / size:.3g} {prefix}{suffix}"
    return f"{value:.3g} {suffix}".rstrip()


def formatter(unit: str) -> Callable[[float], str]:
    if unit == "bps":
        return lambda v: _si(v, "bps")
    if unit == "percentunit":
        return lambda v: f"{v * 100:.0f} %"
    if unit == "s":
        return lambda v: f"{v * 1000:.3g} ms" if 0 < abs(v) < 1 else f"{v:.3g} s"
    return lambda v: _si(v, "")


_UNIT_LABEL = {"bps": "bits per second", "percentunit": "share of capacity", "short": "count", "s": "seconds"}


def _times(col: pa.ChunkedArray) -> list[datetime]:
    if pa.types.is_timestamp(col.type):
        return [v.replace(tzinfo=UTC) if v.tzinfo is None else v for v in col.to_pylist()]
    return [datetime.fromtimestamp(int(v), UTC) for v in col.to_pylist()]


def _series(t: pa.Table) -> tuple[list[datetime], dict[str, dict[datetime, float]]]:
    """Long (time, label, value) -> {label: {time: value}} like Grafana's long-to-wide."""
    times = _times(t.column(0))
    labels = [str(v) for v in t.column(1).to_pylist()]
    values = t.column(2).to_pylist()
    out: dict[str, dict[datetime, float]] = {}
    for ts, label, v in zip(times, labels, values):
        out.setdefault(label, {})[ts] = float("nan") if v is None else float(v)
    return sorted(set(times)), out


_THRESHOLD_NAMES = {"yellow": "target", "orange": "target", "red": "trigger", "dark-red": "trigger"}


def _timeseries(ax: Any, panel: PanelQuery, t: pa.Table, span: tuple[float, float]) -> None:
    _, series = _series(t)
    for label in sorted(series):
        points = sorted(series[label].items())
        ax.plot([p[0] for p in points], [p[1] for p in points], label=label, linewidth=1.4)
    fmt = formatter(panel.unit)
    for value, colour in panel.thresholds:
        name = _THRESHOLD_NAMES.get(colour, "threshold")
        line = "darkorange" if name == "target" else "crimson"
        ax.axhline(value, color=line, linestyle="--", linewidth=1)
        ax.annotate(
            f"{name} {fmt(value)}",
            (0.995, value),
            xycoords=("axes fraction", "data"),
            ha="right",
            va="bottom",
            fontsize=8,
            color=line,
        )
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: fmt(v)))
    _time_axis(ax, span)
    ax.set_xlabel("time (UTC)")
    ax.set_ylabel(f"{t.schema.names[2]} ({_UNIT_LABEL.get(panel.unit, panel.unit)})")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(title=t.schema.names[1], fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def _time_axis(ax: Any, span: tuple[float, float]) -> None:
    """The panel's whole time range, as Grafana shows it, with UTC tick labels."""
    ax.set_xlim(datetime.fromtimestamp(span[0], UTC), datetime.fromtimestamp(span[1], UTC))
    locator = mdates.AutoDateLocator(tz=UTC, maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=UTC))


def _heatmap(fig: Any, ax: Any, panel: PanelQuery, t: pa.Table, span: tuple[float, float]) -> None:
    times, series = _series(t)
    labels = sorted(series)
    grid = np.array([[series[label].get(ts, np.nan) for ts in times] for label in labels])
    nums = mdates.date2num(times)
    step = (nums[1] - nums[0]) if len(nums) > 1 else 1 / 1440
    image = ax.imshow(
        grid,
        aspect="auto",
        cmap="RdYlGn_r",
        vmin=0,
        vmax=1,
        interpolation="nearest",
        extent=(nums[0], nums[-1] + step, len(labels) - 0.5, -0.5),
    )
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.xaxis_date(tz=UTC)
    _time_axis(ax, span)
    ax.set_xlabel("time (UTC)")
    bar = fig.colorbar(image, ax=ax, format=FuncFormatter(lambda v, _pos: formatter(panel.unit)(v)))
    bar.set_label(t.schema.names[2])


def _cell(value: Any, name: str, unit: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%H:%M:%S")  # the date is in the subtitle
    if isinstance(value, float):
        if "bps" in name:
            return formatter("bps")(value)
        if (
            unit == "percentunit"
            or name in ("utilisation", "trigger", "headroom")
            or "after" in name
            or "before" in name
            or name.startswith(("projected", "actual"))
        ):
            return formatter("percentunit")(value)
        return f"{value:.4g}"
    return str(value)


def _table(ax: Any, panel: PanelQuery, t: pa.Table) -> None:
    ax.axis("off")
    rows = t.slice(0, 15).to_pylist()
    cells = [[_cell(r[c], c, panel.unit) for c in t.schema.names] for r in rows]
    table = ax.table(cellText=cells, colLabels=t.schema.names, loc="upper center", cellLoc="left")
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.auto_set_column_width(list(range(len(t.schema.names))))
    table.scale(1, 1.3)
    if t.num_rows > 15:
        ax.text(0, 0, f"first 15 of {t.num_rows} rows", fontsize=8, transform=ax.transAxes)


def render_png(panel: PanelQuery, t: pa.Table, path: Path, subtitle: str, span: tuple[float, float]) -> None:
    """Write the chart for ``panel`` with result ``t`` over ``span`` (unix s) to ``path``."""
    fig, ax = plt.subplots(figsize=(11, 4.8), dpi=100)
    try:
        if t.num_rows == 0:
            ax.axis("off")
            ax.text(0.5, 0.5, "No data in this time range", ha="center", va="center", fontsize=14)
        elif panel.kind == "heatmap":
            _heatmap(fig, ax, panel, t, span)
        elif panel.timeseries:
            _timeseries(ax, panel, t, span)
        else:
            _table(ax, panel, t)
        fig.suptitle(panel.title, fontsize=13, fontweight="bold", x=0.01, ha="left")
        ax.set_title(subtitle, fontsize=9, loc="left", color="dimgray")
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
