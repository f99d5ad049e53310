"""Expand a panel query the way Grafana and the ClickHouse plugin do, for a time range and
variable values, so tests and ``netpilot report`` run exactly the SQL Grafana would send.

Two stages, in Grafana's order:

1. **Template variables** (Grafana's frontend, before the query leaves the browser):
   ``$var``, ``${var}``, ``${var:format}`` and ``[[var]]``. Formats implemented:
   ``singlequote`` (``'a','b'``, quotes escaped ``\\'``), ``doublequote``, ``sqlstring``
   (``'a''b'``), ``csv``, ``pipe``, ``raw``; without a format the ClickHouse plugin's own
   formatter applies (multi-value ``'a','b'`` *unescaped*, single value raw), and the
   Prometheus data source's regex alternation for PromQL. Built-ins ``$__interval``,
   ``$__interval_ms``, ``$__range_s``, ``$__rate_interval`` are replaced here too. Not
   implemented (the dashboards do not use them): ``$__conditionalAll`` and ad hoc filters.
2. **Plugin macros** (grafana/clickhouse-datasource ``pkg/macros/macros.go`` applied by
   grafana-plugin-sdk-go ``data/sqlutil.Interpolate``): ``$__timeFilter(c)``,
   ``$__timeFilter_ms(c)``, ``$__dateFilter(c)``, ``$__dateTimeFilter(d, t)`` / ``$__dt``,
   ``$__timeInterval(c)``, ``$__timeInterval_ms(c)``, ``$__interval_s``, ``$__fromTime``,
   ``$__toTime``, ``$__fromTime_ms``, ``$__toTime_ms``. Times are whole Unix seconds
   (``toDateTime(<s>)``) or milliseconds (``fromUnixTimestamp64Milli(<ms>)``); the interval
   is truncated to whole seconds, at least 1.

The SDK's argument scanner has a quirk we reproduce on purpose: after a macro name it scans
*forward to the first balanced parenthesis pair*, even past other text, unless it meets a
``)`` first. So ``$__fromTime AND x IN (1, 2)`` is one "macro call" whose arguments are
``1, 2``, and the whole span is replaced - the query silently breaks in Grafana. With
``strict=True`` (the default, used by the tests) such a swallow raises :class:`MacroError`
instead, naming the text it would have eaten; write ``($__fromTime)`` or put a ``)`` right
after a bare macro.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from netpilot.errors import NetpilotError


class MacroError(NetpilotError):
    """A query cannot be expanded (bad arguments, unknown variable, swallowed text)."""


@dataclass(frozen=True)
class QueryContext:
    """What Grafana knows when it sends a query: the range, the interval and the variables."""

    from_s: float
    to_s: float
    interval_s: float
    variables: Mapping[str, str | Sequence[str]] = field(default_factory=dict)
    scrape_interval_s: float = 15.0
    """Prometheus data source scrape interval (for ``$__rate_interval``)."""


# -- stage 1: Grafana template variables ------------------------------------------------

_VAR = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^}]+))?(?::([^}]+))?\}")


def _values(v: str | Sequence[str]) -> list[str]:
    return [v] if isinstance(v, str) else list(v)


def _format(values: list[str], fmt: str | None, multi: bool) -> str:
    if fmt == "singlequote":
        return ",".join("'" + s.replace("'", "\\'") + "'" for s in values)
    if fmt == "doublequote":
        return ",".join('"' + s.replace('"', '\\"') + '"' for s in values)
    if fmt == "sqlstring":
        return ",".join("'" + s.replace("'", "''") + "'" for s in values)
    if fmt == "csv":
        return ",".join(values)
    if fmt == "pipe":
        return "|".join(values)
    if fmt is None:  # the ClickHouse plugin's own formatter (CHDatasource.format): no escaping
        return "'" + "','".join(values) + "'" if multi else (values[0] if values else "")
    if fmt in ("raw", "text"):
        return ",".join(values)
    raise MacroError(
        f"variable format {fmt!r} is not supported here; use singlequote, doublequote, sqlstring, csv, pipe or raw"
    )


def _duration(seconds: float) -> str:
    """Grafana's interval text: whole ms/s/m/h/d, largest unit that divides evenly."""
    ms = int(round(seconds * 1000))
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms >= size and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def builtins(ctx: QueryContext) -> dict[str, str]:
    rate = max(ctx.interval_s + ctx.scrape_interval_s, 4 * ctx.scrape_interval_s)
    return {
        "__interval": _duration(ctx.interval_s),
        "__interval_ms": str(int(ctx.interval_s * 1000)),
        "__range_s": str(int(ctx.to_s - ctx.from_s)),
        "__range": _duration(ctx.to_s - ctx.from_s),
        "__rate_interval": _duration(rate),
    }


_PROM_REGEX_CHARS = re.compile(r"[$^*{}\[\]'+?.()|]")


def _prometheus_default(values: list[str], fmt: str | None, multi: bool) -> str:
    """The Prometheus data source's own interpolation (``interpolateQueryExpr``): a multi-value
    or "All" variable becomes a regex alternation ``(a|b)`` with metacharacters escaped, meant
    for ``label=~"$var"``; a single value is inserted with backslashes escaped."""
    if fmt is not None:
        return _format(values, fmt, multi)
    if not multi:
        return values[0].replace("\\", "\\\\") if values else ""
    escaped = [_PROM_REGEX_CHARS.sub(lambda m: "\\\\" + m.group(0), v.replace("\\", "\\\\\\\\")) for v in values]
    return "(" + "|".join(escaped) + ")"


def replace_variables(
    text: str, ctx: QueryContext, formatter: Callable[[list[str], str | None, bool], str] | None = None
) -> str:
    """Grafana's templateSrv.replace for the variables in ``ctx`` and the built-ins.

    Unknown ``$__`` names are left alone (they are plugin macros); an unknown user variable
    raises, because Grafana would send it verbatim and the query would fail anyway."""
    known = builtins(ctx)

    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(4)
        fmt = m.group(3) or m.group(6)
        if name in known:
            return known[name]
        if name not in ctx.variables:
            if name.startswith("__"):
                return m.group(0)
            raise MacroError(f"variable ${name} has no value; pass it in QueryContext.variables")
        raw = ctx.variables[name]
        return (formatter or _format)(_values(raw), fmt, not isinstance(raw, str))

    return _VAR.sub(sub, text)


# -- stage 2: the ClickHouse plugin's macros --------------------------------------------


def _dt(t: float) -> str:
    return f"toDateTime({int(math.floor(t))})"


def _dt64(t: float) -> str:
    return f"fromUnixTimestamp64Milli({int(math.floor(t * 1000))})"


def _d(t: float) -> str:
    return f"toDate('{datetime.fromtimestamp(int(t), UTC).date().isoformat()}')"


def _args(n: int, name: str, args: list[str]) -> list[str]:
    if len(args) != n:
        raise MacroError(f"$__{name}: unexpected number of arguments: expected {n}, received {len(args)}")
    return args


def _seconds(ctx: QueryContext) -> int:
    return int(max(ctx.interval_s, 1))


MacroFn = Callable[[QueryContext, list[str]], str]

MACROS: dict[str, tuple[MacroFn, bool]] = {
    # name -> (expansion, takes arguments)
    "fromTime": (lambda c, a: _dt(c.from_s), False),
    "toTime": (lambda c, a: _dt(c.to_s), False),
    "fromTime_ms": (lambda c, a: _dt64(c.from_s), False),
    "toTime_ms": (lambda c, a: _dt64(c.to_s), False),
    "timeFilter": (
        lambda c, a: "{0} >= {1} AND {0} <= {2}".format(_args(1, "timeFilter", a)[0], _dt(c.from_s), _dt(c.to_s)),
        True,
    ),
    "timeFilter_ms": (
        lambda c, a: "{0} >= {1} AND {0} <= {2}".format(
            _args(1, "timeFilter_ms", a)[0], _dt64(c.from_s), _dt64(c.to_s)
        ),
        True,
    ),
    "dateFilter": (
        lambda c, a: "{0} >= {1} AND {0} <= {2}".format(_args(1, "dateFilter", a)[0], _d(c.from_s), _d(c.to_s)),
        True,
    ),
    "dateTimeFilter": (lambda c, a: _date_time_filter(c, _args(2, "dateTimeFilter", a)), True),
    "dt": (lambda c, a: _date_time_filter(c, _args(2, "dt", a)), True),
    "timeInterval": (
        lambda c, a: f"toStartOfInterval(toDateTime({_args(1, 'timeInterval', a)[0]}), INTERVAL {_seconds(c)} second)",
        True,
    ),
    "timeInterval_ms": (
        lambda c, a: (
            f"toStartOfInterval(toDateTime64({_args(1, 'timeInterval_ms', a)[0]}, 3), "
            f"INTERVAL {int(max(c.interval_s * 1000, 1))} millisecond)"
        ),
        True,
    ),
    "interval_s": (lambda c, a: str(_seconds(c)), False),
}


def _date_time_filter(c: QueryContext, a: list[str]) -> str:
    return (
        f"({a[0]} >= {_d(c.from_s)} AND {a[0]} <= {_d(c.to_s)}) AND "
        f"({a[1]} >= {_dt(c.from_s)} AND {a[1]} <= {_dt(c.to_s)})"
    )


def _matches(sql: str, name: str) -> list[tuple[str, str | None]]:
    """The SDK's getMacroMatches: (matched text, argument text or None) per occurrence."""
    out: list[tuple[str, str | None]] = []
    for m in re.finditer(r"\$__" + re.escape(name) + r"\b", sql):
        rest = sql[m.start() :]
        depth, arg_start, end = 0, 0, 0
        for i, ch in enumerate(rest):
            if depth == 0 and end > 0:
                break
            if ch == "(":
                depth += 1
                arg_start = arg_start or i + 1
            elif ch == ")":
                if depth == 0:
                    end = 0
                    break
                depth -= 1
                end = i + 1
        if end == 0:
            out.append((m.group(0), None))
        else:
            out.append((rest[:end], rest[arg_start : end - 1]))
    return out


def expand_macros(sql: str, ctx: QueryContext, strict: bool = True) -> str:
    """Apply the plugin's macros. The SDK iterates a Go map (random order); our names never
    overlap (``\\b`` keeps ``$__timeFilter`` from matching ``$__timeFilter_ms``), so a fixed
    order gives the same result."""
    for name, (fn, takes_args) in MACROS.items():
        for text, arg_text in _matches(sql, name):
            if strict and not takes_args and arg_text is not None:
                raise MacroError(
                    f"bare $__{name} would swallow {text!r} in the ClickHouse plugin; "
                    f"put a ')' right after it, e.g. '($__{name})'"
                )
            args = [] if arg_text is None else [a.strip() for a in arg_text.split(",")]
            sql = sql.replace(text, fn(ctx, args))
    return sql


def expand_sql(sql: str, ctx: QueryContext, strict: bool = True) -> str:
    """Variables first (frontend), then the plugin macros (backend)."""
    return expand_macros(replace_variables(sql, ctx), ctx, strict)


def expand_promql(expr: str, ctx: QueryContext) -> str:
    return replace_variables(expr, ctx, _prometheus_default)


def grafana_interval(range_s: float, max_data_points: int = 1000, min_interval_s: float = 0) -> float:
    """Grafana's auto interval, approximately: range / max data points, snapped to the
    nearest "nice" step (Grafana's kbn.roundInterval uses fixed thresholds between steps;
    the result can differ by one step, which changes bucket sizes, not correctness)."""
    raw = max(range_s / max_data_points, min_interval_s, 0.001)
    nice = (
        0.01,
        0.02,
        0.05,
        0.1,
        0.2,
        0.5,
        1,
        2,
        5,
        10,
        15,
        20,
        30,
        60,
        120,
        300,
        600,
        900,
        1200,
        1800,
        3600,
        7200,
        10800,
        21600,
        43200,
        86400,
        604800,
        2592000,
        31536000,
    )
    return min(nice, key=lambda n: abs(n - raw))
