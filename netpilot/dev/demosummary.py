"""The end of `netpilot demo`: what overloaded, what was recommended, projected vs actual
relief, what ClickHouse holds and how to query it, and the PNG charts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

from netpilot.dev.demoview import DEFAULT_HI, WINDOW_S, DemoState, write_charts
from netpilot.dev.pipeline import Pipeline, PipelineError
from netpilot.wire.autopilot import CycleSummary


def overloads(state: DemoState) -> dict[tuple[str, str], tuple[float, float]]:
    """(pop, link) -> (end of the first window over its trigger, peak utilisation)."""
    out = {}
    for key, points in state.history.items():
        hi = state.thresholds.get(key[1], DEFAULT_HI)
        over = sorted((t, u) for t, u in points if u >= hi)
        if over:
            out[key] = (over[0][0] + WINDOW_S, max(u for _, u in points))
    return out


def print_summary(console: Console, state: DemoState, pipe: Pipeline, out: Path) -> None:
    console.rule("summary")
    over = overloads(state)
    if not over:
        console.print("no link went over its trigger threshold")
    for (pop, link), (first, peak) in sorted(over.items()):
        console.print(f"[red]overloaded[/]: {pop} {link}: over {state.thresholds.get(link, DEFAULT_HI):.0%} "
                      f"from {_hms(first)}, peak {peak:.0%}")
    adds = [r for r in state.recommendations if r.action == "ADD"]
    moves = Counter((r.pop, r.from_.link_id, r.to.link_id) for r in adds)
    rates: Counter[tuple[str, str, str]] = Counter()
    for r in adds:
        rates[(r.pop, r.from_.link_id, r.to.link_id)] += r.rate_bps
    for (pop, src, dst), n in sorted(moves.items()):
        first = min(r.generated_at for r in adds if (r.pop, r.from_.link_id, r.to.link_id) == (pop, src, dst))
        console.print(f"[bold]recommended[/]: {pop}: {n} prefixes {src} -> {dst} "
                      f"({rates[(pop, src, dst)] / 1e9:.2f} Gbit/s), first at {_hms(first)}")
    by_action = Counter(r.action for r in state.recommendations)
    console.print("recommendations: " + (", ".join(f"{a} {n}" for a, n in sorted(by_action.items())) or "none"))
    _relief(console, state, {link for _, link in over} | {src for _, src, _ in moves})
    _stored(console, pipe)
    charts = write_charts(state, out)
    console.print("charts: " + ", ".join(str(p) for p in charts) if charts else "charts: no utilisation data")
    if state.bad_messages:
        console.print(f"[yellow]{state.bad_messages} undecodable messages were skipped[/]")


def _relief(console: Console, state: DemoState, links: set[str]) -> None:
    """For each overloaded link, the autopilot's cycle where it was worst: utilisation without
    overrides (U0), projected with them, and actual from the counters."""
    worst: dict[tuple[str, str], CycleSummary] = {}
    for s in state.summaries:
        for link in links & set(s.util_no_override):
            best = worst.get((s.pop, link))
            if best is None or s.util_no_override[link] > best.util_no_override[link]:
                worst[(s.pop, link)] = s
    if not worst:
        return
    t = Table(title="projected vs actual relief (the autopilot cycle where each link was worst)")
    for col in ("PoP", "link", "cycle at", "no override (U0)", "projected", "actual (counters)"):
        t.add_column(col)
    for (pop, link), s in sorted(worst.items()):
        t.add_row(pop, link, _hms(s.generated_at), _pct(s.util_no_override.get(link)),
                  _pct(s.util_projected.get(link)), _pct(s.util_actual.get(link)))
    console.print(t)
    console.print("[dim]The simulator does not apply recommendations (no actuator in this demo): "
                  "'projected' is what the moves would achieve; 'actual' moves only with the "
                  "scenario's own traffic.[/]")


def _stored(console: Console, pipe: Pipeline) -> None:
    try:
        rows = pipe.query("SELECT 'flows_raw', count() FROM netpilot.flows_raw UNION ALL SELECT "
                          "'link_utilisation', count() FROM netpilot.link_utilisation UNION ALL SELECT "
                          "'recommendations', count() FROM netpilot.recommendations")
        console.print("ClickHouse rows: " + ", ".join(f"{name} {n}" for name, n in rows))
    except PipelineError as exc:
        console.print(f"[yellow]could not read ClickHouse: {exc}[/]")
    cfg = pipe.root / "query.yaml"
    console.print(f"query the data (chDB at {pipe.chdb}):\n"
                  f"  netpilot sink clickhouse query -c {cfg} \\\n"
                  "    \"SELECT link_id, sum(bytes_scaled)*8/1e9 AS Gbit FROM netpilot.flows_raw GROUP BY link_id\"\n"
                  f"  netpilot sink clickhouse query -c {cfg} \\\n"
                  "    \"SELECT generated_at, action, prefix, from_link_id, to_link_id FROM netpilot.recommendations\"\n"
                  f"  netpilot report -c {cfg} --since 30m --out {pipe.root / 'report'}   # dashboard PNGs")


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.0%}"


def _hms(ts: float) -> str:
    import time

    return time.strftime("%H:%M:%S", time.localtime(ts))
