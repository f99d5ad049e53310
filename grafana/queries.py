"""The ClickHouse SQL behind the dashboards, written against sinks/clickhouse/schema.py.

Rollup choice. Flow panels read one of four tables, picked by Grafana's interval, inside
*one* query: a ``UNION ALL`` of four branches, each guarded by a constant condition on
``$__interval_s`` (raw flows below 60 s buckets, ``flows_1m`` for 1-4 min, ``flows_5m`` up to
30 min, ``flows_1h`` above). ClickHouse folds the constant guards, so only one branch reads
data. Why this rather than four queries with Grafana relative-time overrides: overrides
change the *displayed* range of a panel (a panel cannot switch tables as the user zooms),
while the interval follows every zoom and range change automatically. Why the interval and
not the range length: a bucket of N seconds can only be filled exactly from a table whose
windows divide N, and Grafana's "nice" intervals (1m, 2m, 5m ... 1h, 2h ...) are multiples
of the chosen table's window, so every branch gives the same numbers, the rollups just
faster (they are exact sums of the raw rows, see the materialized views in schema.py).

Macro rule (see grafana/macros.py): a bare macro such as ``$__interval_s`` or
``$__fromTime`` must be followed by ``)`` before any ``(``, or the plugin swallows text.
"""

from __future__ import annotations

from collections.abc import Sequence

from streams.autopilot.policy import Policy

DB = "${db}"

# (table, guard on the interval, column overrides)
_BRANCHES: tuple[tuple[str, str, dict[str, str]], ...] = (
    (
        "flows_raw",
        "($__interval_s < 60)",
        {
            "ts": "toDateTime(time_received)",
            "bytes": "bytes_scaled",
            "packets": "packets_scaled",
            "time": "time_received",
        },
    ),
    ("flows_1m", "($__interval_s >= 60 AND $__interval_s < 300)", {"ts": "window_start", "time": "window_start"}),
    ("flows_5m", "($__interval_s >= 300 AND $__interval_s < 3600)", {"ts": "window_start", "time": "window_start"}),
    ("flows_1h", "($__interval_s >= 3600)", {"ts": "window_start", "time": "window_start"}),
)

POP_FILTER = "pop IN (${pop:singlequote}) AND router IN (${router:singlequote})"
LINK_FILTER = POP_FILTER + " AND link_id IN (${link:singlequote})"


def flows_source(columns: Sequence[str], where: str = POP_FILTER) -> str:
    """A sub-select over the table that fits the interval, exposing ``columns`` (logical
    names: ts, bytes, packets, pop, router, link_id, dst_as, ...; bytes are sampling-corrected)."""
    parts = []
    for table, guard, names in _BRANCHES:
        cols = ", ".join(f"{names[c]} AS {c}" if c in names else c for c in columns)
        parts.append(
            f"  SELECT {cols}\n  FROM {DB}.{table}\n  WHERE {guard} AND $__timeFilter({names['time']}) AND {where}"
        )
    return "(\n" + "\n  UNION ALL\n".join(parts) + "\n)"


INVENTORY_LATEST = (
    f"(SELECT pop, link_id, argMax(router, version) AS router, "
    f"argMax(peer_type, version) AS peer_type, argMax(capacity_bps, version) AS capacity_bps, "
    f"argMax(deleted, version) AS deleted FROM {DB}.link_inventory GROUP BY pop, link_id)"
)


def trigger_expr(peer_type_col: str = "peer_type") -> str:
    """The autopilot's trigger (``hi``) per peer type, from the policy defaults in code."""
    p = Policy()
    arms = ", ".join(f"{peer_type_col} = '{k}', {t.hi}" for k, t in sorted(p.thresholds.items()))
    return f"multiIf({arms}, {p.default_hi})"


# -- template variables ---------------------------------------------------------------

VAR_POP = f"SELECT DISTINCT pop FROM {INVENTORY_LATEST} WHERE NOT deleted ORDER BY pop"
VAR_ROUTER = (
    f"SELECT DISTINCT router FROM {INVENTORY_LATEST} WHERE NOT deleted "
    "AND pop IN (${pop:singlequote}) ORDER BY router"
)
VAR_LINK = (
    f"SELECT DISTINCT link_id FROM {INVENTORY_LATEST} WHERE NOT deleted "
    "AND pop IN (${pop:singlequote}) AND router IN (${router:singlequote}) ORDER BY link_id"
)

# -- network overview -------------------------------------------------------------------

TRAFFIC_PER_POP = f"""SELECT $__timeInterval(ts) AS time, pop, sum(bytes) * 8 / ($__interval_s) AS bps
FROM {flows_source(["ts", "pop", "bytes"])}
GROUP BY time, pop
ORDER BY time"""

TRAFFIC_PER_LINK = f"""SELECT $__timeInterval(ts) AS time, link_id, sum(bytes) * 8 / ($__interval_s) AS bps
FROM {flows_source(["ts", "link_id", "bytes"], LINK_FILTER)}
GROUP BY time, link_id
ORDER BY time"""

RANGE_S = "greatest(dateDiff('second', $__fromTime, $__toTime), 1)"

TOP_DST_AS = f"""SELECT dst_as AS `destination AS`, sum(bytes) * 8 / {RANGE_S} AS `avg bps`,
  sum(bytes) AS `total bytes`
FROM {flows_source(["ts", "dst_as", "bytes"])}
GROUP BY dst_as
ORDER BY `avg bps` DESC
LIMIT 15"""

_PREFIX_TEXT = (
    "concat(if(startsWith(IPv6NumToString(dst_prefix), '::ffff:'), "
    "substring(IPv6NumToString(dst_prefix), 8), IPv6NumToString(dst_prefix)), "
    "'/', toString(dst_prefix_len))"
)
RAW_WINDOW = "time_received >= greatest($__fromTime, $__toTime - INTERVAL 6 HOUR)"

TOP_DST_PREFIXES = f"""SELECT {_PREFIX_TEXT} AS `destination prefix`, dst_as AS `AS`,
  sum(bytes_scaled) * 8 / greatest(dateDiff('second', greatest($__fromTime, $__toTime - INTERVAL 6 HOUR), $__toTime), 1) AS `avg bps`
FROM {DB}.flows_raw
WHERE $__timeFilter(time_received) AND {RAW_WINDOW} AND {POP_FILTER}
  AND dst_prefix_len > 0
GROUP BY dst_prefix, dst_prefix_len, dst_as
ORDER BY `avg bps` DESC
LIMIT 15"""  # noqa: E501 - SQL text, as the dashboards show it

TRAFFIC_BY_PEER_TYPE = f"""SELECT $__timeInterval(f.ts) AS time, if(i.peer_type = '', 'unknown link', i.peer_type) AS peer_type,
  sum(f.bytes) * 8 / ($__interval_s) AS bps
FROM {flows_source(["ts", "pop", "link_id", "bytes"])} AS f
LEFT JOIN {INVENTORY_LATEST} AS i ON f.pop = i.pop AND f.link_id = i.link_id
GROUP BY time, peer_type
ORDER BY time
SETTINGS join_use_nulls = 0"""  # noqa: E501 - SQL text, as the dashboards show it

COVERAGE = f"""SELECT $__timeInterval(window_start) AS time, link_id, avg(coverage) AS `mean coverage`
FROM {DB}.link_utilisation
WHERE $__timeFilter(window_start) AND pop IN (${{pop:singlequote}}) AND link_id IN (${{link:singlequote}})
  AND coverage IS NOT NULL
GROUP BY time, link_id
ORDER BY time"""

# -- egress links ---------------------------------------------------------------------------

_UTIL_WHERE = (
    "$__timeFilter(window_start) AND pop IN (${pop:singlequote}) "
    "AND link_id IN (${link:singlequote}) AND utilisation IS NOT NULL"
)

UTILISATION = f"""SELECT $__timeInterval(window_start) AS time, link_id, max(utilisation) AS `peak utilisation`
FROM {DB}.link_utilisation
WHERE {_UTIL_WHERE}
GROUP BY time, link_id
ORDER BY time"""

HEATMAP = UTILISATION

P95 = f"""SELECT link_id AS link, quantile(0.95)(utilisation) AS `p95 utilisation`,
  quantile(0.95)(counter_bps) AS `p95 bps`, any(capacity_bps) AS `capacity bps`
FROM {DB}.link_utilisation
WHERE {_UTIL_WHERE}
GROUP BY link_id
ORDER BY `p95 utilisation` DESC"""

NEAREST_TRIGGER = f"""SELECT u.link_id AS link, i.peer_type AS `peer type`, u.last_utilisation AS utilisation,
  {trigger_expr("i.peer_type")} AS trigger, trigger - utilisation AS headroom
FROM (
  SELECT pop, link_id, argMax(utilisation, window_start) AS last_utilisation
  FROM {DB}.link_utilisation
  WHERE {_UTIL_WHERE}
  GROUP BY pop, link_id
) AS u
LEFT JOIN {INVENTORY_LATEST} AS i ON u.pop = i.pop AND u.link_id = i.link_id
ORDER BY headroom ASC
LIMIT 10"""

# -- autopilot -----------------------------------------------------------------------------

_REC_WHERE = "$__timeFilter(generated_at) AND pop IN (${pop:singlequote})"
_CYCLE_WHERE = "$__timeFilter(generated_at) AND pop IN (${pop:singlequote})"

REC_TIMELINE = f"""SELECT $__timeInterval(generated_at) AS time, action, count() AS recommendations
FROM {DB}.recommendations
WHERE {_REC_WHERE}
GROUP BY time, action
ORDER BY time"""

REC_TABLE = f"""SELECT generated_at AS time, pop, action, prefix, from_link_id AS `from`, to_link_id AS `to`,
  rate_bps AS `rate bps`,
  JSONExtract(detail, 'from', 'util_projected_before', 'Nullable(Float64)') AS `from before`,
  from_util_after AS `from after`,
  JSONExtract(detail, 'to', 'util_projected_before', 'Nullable(Float64)') AS `to before`,
  to_util_after AS `to after`, reason
FROM {DB}.recommendations
WHERE {_REC_WHERE}
ORDER BY generated_at DESC, rank ASC
LIMIT 200"""

ACTIVE_OVERRIDES = f"""SELECT $__timeInterval(generated_at) AS time, pop, max(active_overrides) AS overrides
FROM {DB}.cycle_summaries
WHERE {_CYCLE_WHERE}
GROUP BY time, pop
ORDER BY time"""

DETOURED = f"""SELECT $__timeInterval(generated_at) AS time, pop, avg(detoured_bps) AS `detoured bps`
FROM {DB}.cycle_summaries
WHERE {_CYCLE_WHERE}
GROUP BY time, pop
ORDER BY time"""

UNRESOLVED = f"""SELECT $__timeInterval(generated_at) AS time, kv.1 AS link_id, max(kv.2) AS `unresolved bps`
FROM {DB}.cycle_summaries
ARRAY JOIN CAST(unresolved_bps, 'Array(Tuple(String, Float64))') AS kv
WHERE {_CYCLE_WHERE}
GROUP BY time, link_id
ORDER BY time"""

# How far each cycle's moves were from the fewest that could relieve its overloads (1 = at
# the bound; the planner aims at <= 1.2). Cycles with nothing to relieve have no ratio.
MOVES_VS_BOUND = f"""SELECT $__timeInterval(generated_at) AS time, pop, max(moves_ratio) AS `moves / lower bound`
FROM {DB}.cycle_summaries
WHERE {_CYCLE_WHERE} AND moves_ratio IS NOT NULL
GROUP BY time, pop
ORDER BY time"""

PROJECTED_VS_ACTUAL = f"""SELECT r.generated_at AS time, r.prefix AS prefix, r.to_link_id AS `to`,
  r.to_util_after AS `projected to`, avgIf(u.utilisation, u.link_id = r.to_link_id) AS `actual to`,
  r.from_link_id AS `from`, r.from_util_after AS `projected from`,
  avgIf(u.utilisation, u.link_id = r.from_link_id) AS `actual from`
FROM (
  SELECT generated_at, pop, prefix, from_link_id, to_link_id, from_util_after, to_util_after
  FROM {DB}.recommendations
  WHERE {_REC_WHERE} AND action = 'ADD'
) AS r
LEFT JOIN (
  SELECT pop, link_id, window_start, window_s, utilisation FROM {DB}.link_utilisation
  WHERE $__timeFilter(window_start) AND utilisation IS NOT NULL
) AS u ON u.pop = r.pop
WHERE u.window_start >= r.generated_at AND u.window_start < r.generated_at + INTERVAL 5 MINUTE
GROUP BY time, prefix, `to`, `projected to`, `from`, `projected from`
ORDER BY time DESC
LIMIT 100"""

# What the routers hold (autopilot_applied, the injector's read-back): the latest state per
# PoP and prefix. Installed ones whatever their age (an override applied a week ago still
# moves traffic now); removed ones only when they went within the range, so the table shows
# recent removals without growing with every prefix ever moved.
APPLIED_TABLE = f"""SELECT pop, prefix, if(deleted, 'removed', 'installed') AS state, link_id AS link,
  next_hop AS `next hop`, arrayStringConcat(routers, ', ') AS routers, local_pref AS `local pref`,
  arrayStringConcat(communities, ' ') AS communities, since, confirmed_at AS confirmed,
  published_at AS updated, recommendation_id AS recommendation
FROM {DB}.autopilot_applied FINAL
WHERE pop IN (${{pop:singlequote}}) AND (NOT deleted OR ($__timeFilter(published_at)))
ORDER BY deleted ASC, pop, prefix
LIMIT 200"""
