"""grafana/macros.py against the ClickHouse plugin's documented expansions (pkg/macros)."""

from __future__ import annotations

import pytest

from grafana.macros import MacroError, QueryContext, expand_macros, expand_promql, expand_sql

# 2022-10-21T00:00:00Z .. 2022-10-23T12:30:45.678Z
CTX = QueryContext(
    from_s=1666310400.0,
    to_s=1666528245.678,
    interval_s=30.0,
    variables={"pop": ["ams1", "fra'1"], "one": "x", "db": "netpilot"},
)


@pytest.mark.parametrize(
    "sql, expected",
    [
        ("$__timeFilter(t)", "t >= toDateTime(1666310400) AND t <= toDateTime(1666528245)"),
        (
            "$__timeFilter_ms(t)",
            "t >= fromUnixTimestamp64Milli(1666310400000) AND t <= fromUnixTimestamp64Milli(1666528245678)",
        ),
        ("$__dateFilter(d)", "d >= toDate('2022-10-21') AND d <= toDate('2022-10-23')"),
        (
            "$__dt(d, t)",
            "(d >= toDate('2022-10-21') AND d <= toDate('2022-10-23')) AND "
            "(t >= toDateTime(1666310400) AND t <= toDateTime(1666528245))",
        ),
        ("$__timeInterval(t)", "toStartOfInterval(toDateTime(t), INTERVAL 30 second)"),
        ("$__timeInterval_ms(t)", "toStartOfInterval(toDateTime64(t, 3), INTERVAL 30000 millisecond)"),
        ("x / ($__interval_s)", "x / (30)"),
        ("($__fromTime, $__toTime)", "(toDateTime(1666310400), toDateTime(1666528245))"),
        ("($__fromTime_ms)", "(fromUnixTimestamp64Milli(1666310400000))"),
        # nested parentheses inside a macro argument are kept whole (the SDK counts depth)
        (
            "$__timeFilter(toDateTime(t))",
            "toDateTime(t) >= toDateTime(1666310400) AND toDateTime(t) <= toDateTime(1666528245)",
        ),
    ],
)
def test_plugin_macros(sql: str, expected: str) -> None:
    assert expand_macros(sql, CTX) == expected


def test_interval_below_one_second_is_one() -> None:
    ctx = QueryContext(0, 10, interval_s=0.2)
    assert expand_macros("($__interval_s)", ctx) == "(1)"
    assert "INTERVAL 1 second" in expand_macros("$__timeInterval(t)", ctx)


def test_bare_macro_swallows_the_next_parentheses_like_the_sdk() -> None:
    sql = "WHERE t > $__fromTime AND x IN (1, 2)"
    # what the plugin really sends: the whole span replaced, the IN list gone
    assert expand_macros(sql, CTX, strict=False) == "WHERE t > toDateTime(1666310400)"
    with pytest.raises(MacroError, match="swallow"):
        expand_macros(sql, CTX)


def test_wrong_argument_count_is_an_error() -> None:
    with pytest.raises(MacroError, match="expected 1"):
        expand_macros("$__timeFilter(a, b)", CTX)


def test_variables_are_formatted_like_grafana() -> None:
    assert expand_sql("IN (${pop:singlequote})", CTX) == "IN ('ams1','fra\\'1')"
    assert expand_sql("IN (${pop:sqlstring})", CTX) == "IN ('ams1','fra''1')"
    assert expand_sql("${pop:csv}|${pop:pipe}|${pop:doublequote}", CTX) == 'ams1,fra\'1|ams1|fra\'1|"ams1","fra\'1"'
    # no format: the ClickHouse plugin's formatter, which does not escape (use singlequote)
    assert expand_sql("$pop $one [[one]] ${db}.t", CTX) == "'ams1','fra'1' x x netpilot.t"
    with pytest.raises(MacroError, match="no value"):
        expand_sql("$missing", CTX)


def test_promql_builtins() -> None:
    ctx = QueryContext(0, 3600, interval_s=15, scrape_interval_s=15)
    assert expand_promql("rate(x[$__rate_interval]) [$__interval] [$__range]", ctx) == "rate(x[1m]) [15s] [1h]"
    ctx = QueryContext(0, 3600, interval_s=120, scrape_interval_s=15)
    assert expand_promql("[$__rate_interval]", ctx) == "[135s]"


def test_promql_variables_use_the_prometheus_data_source_escaping() -> None:
    ctx = QueryContext(0, 60, 1, {"pop": ["ams1", "a.b"], "one": "x"})
    assert expand_promql('m{pop=~"$pop"} $one', ctx) == 'm{pop=~"(ams1|a\\\\.b)"} x'
