"""The end of `netpilot demo`: what overloaded, what was recommended, projected vs actual
relief, what ClickHouse holds and how to query it, and the PNG charts."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from netpilot.dev.demoview import DEFAULT_HI, WINDOW_S, DemoState, write_charts
from netpilot.dev.pipeline import SCALED, Pipeline, PipelineError
from netpilot.wire.autopilot import CycleSummary

if TYPE_CHECKING:
    from netpilot.dev.demoinstances import FlowCounter, InstanceTracker


def overloads(state: DemoState) -> dict[tuple[str, str], tuple[float, float]]:
    """(pop, link) -> (when it was first seen over its trigger, peak utilisation).

    Seen from two sides: a 10 s window of measured utilisation over the trigger, or an
    autopilot cycle that found the link's demand without overrides (U0) over it. With the
    loop closed the second matters: the injector relieves the link within a cycle, so the
    measured windows may never cross the trigger although the demand did."""
    out: dict[tuple[str, str], tuple[float, float]] = {}
    for key, points in state.history.items():
        hi = state.thresholds.get(key[1], DEFAULT_HI)
        over = sorted((t, u) for t, u in points if u >= hi)
        if over:
            out[key] = (over[0][0] + WINDOW_S, max(u for _, u in points))
    for s in sorted(state.summaries, key=lambda s: s.generated_at):
        for link in s.overloaded_links:
            first, peak = out.get((s.pop, link), (s.generated_at, 0.0))
            out[(s.pop, link)] = (min(first, s.generated_at), max(peak, s.util_no_override.get(link, 0.0)))
    return out


def print_summary(console: Console, state: DemoState, pipe: Pipeline, out: Path) -> None:
    console.rule("summary")
    over = overloads(state)
    if not over:
        console.print("no link went over its trigger threshold")
    for (pop, link), (first, peak) in sorted(over.items()):
        console.print(
            f"[red]overloaded[/]: {pop} {link}: demand over {state.thresholds.get(link, DEFAULT_HI):.0%} "
            f"from {_hms(first)}, peak {peak:.0%}"
        )
    adds = [r for r in state.recommendations if r.action == "ADD"]
    moves = Counter((r.pop, r.from_.link_id, r.to.link_id) for r in adds)
    rates: defaultdict[tuple[str, str, str], float] = defaultdict(float)
    for r in adds:
        rates[(r.pop, r.from_.link_id, r.to.link_id)] += r.rate_bps
    for (pop, src, dst), n in sorted(moves.items()):
        first = min(r.generated_at for r in adds if (r.pop, r.from_.link_id, r.to.link_id) == (pop, src, dst))
        console.print(
            f"[bold]recommended[/]: {pop}: {n} prefixes {src} -> {dst} "
            f"({rates[(pop, src, dst)] / 1e9:.2f} Gbit/s), first at {_hms(first)}"
        )
    by_action = Counter(r.action for r in state.recommendations)
    console.print("recommendations: " + (", ".join(f"{a} {n}" for a, n in sorted(by_action.items())) or "none"))
    _applied(console, state, over)
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
    for col in (
        "PoP",
        "link",
        "cycle at",
        "no override (U0)",
        "projected",
        "actual (counters)",
        "actual 2 cycles later",
    ):
        t.add_column(col)
    for (pop, link), s in sorted(worst.items()):
        # the overrides act on the counters after they are applied: show the cycle that sees it
        later = [
            c for c in state.summaries if c.pop == pop and c.generated_at > s.generated_at and link in c.util_actual
        ]
        after = later[1] if len(later) > 1 else (later[0] if later else None)
        t.add_row(
            pop,
            link,
            _hms(s.generated_at),
            _pct(s.util_no_override.get(link)),
            _pct(s.util_projected.get(link)),
            _pct(s.util_actual.get(link)),
            _pct(after.util_actual.get(link)) if after else "-",
        )
    console.print(t)
    if state.applied_events:
        console.print(
            "[dim]Closed loop: the injector announced the overrides to a BIRD per simulated router "
            "and the simulator steers traffic by BIRD's selected routes, so 'actual' (counters) "
            "follows 'projected'. U0 is what the link would carry without the overrides.[/]"
        )
    else:
        console.print(
            "[dim]Open loop (--mode observe): nothing applies the recommendations; 'projected' is "
            "what the moves would achieve; 'actual' moves only with the scenario's own traffic.[/]"
        )


def relief_times(state: DemoState, over: dict[tuple[str, str], tuple[float, float]]) -> dict[tuple[str, str], float]:
    """Per overloaded link: the end of the first window after the first router-confirmed
    override in which the link's utilisation (from counters) was back under its trigger."""
    out: dict[tuple[str, str], float] = {}
    for pop, link in over:
        installed = sorted(t for t, p, _, up in state.applied_events if p == pop and up)
        if not installed:
            continue
        hi = state.thresholds.get(link, DEFAULT_HI)
        for start, util in sorted(state.history.get((pop, link), [])):
            if start >= installed[0] and util < hi:
                out[(pop, link)] = start + WINDOW_S
                break
    return out


def _applied(console: Console, state: DemoState, over: dict[tuple[str, str], tuple[float, float]]) -> None:
    if not state.applied_events:
        return
    installed = [e for e in state.applied_events if e[3]]
    removed = [e for e in state.applied_events if not e[3]]
    console.print(
        f"[bold]applied[/]: {len({(p, x) for _, p, x, _ in installed})} overrides confirmed in the "
        f"routers' RIBs (first at {_hms(min(t for t, *_ in installed))}), "
        f"{len(removed)} removed again, {len(state.applied)} still installed"
    )
    first_add = {
        pop: min((r.generated_at for r in state.recommendations if r.pop == pop and r.action == "ADD"), default=None)
        for pop, _ in over
    }
    for (pop, link), t in sorted(relief_times(state, over).items()):
        add = first_add.get(pop)
        after = f", {t - add:.0f} s after the first ADD" if add else ""
        console.print(f"[green]relieved[/]: {pop} {link} back under its trigger (counters) by {_hms(t)}{after}")


def _stored(console: Console, pipe: Pipeline) -> None:
    sql = (
        "SELECT 'flows_raw', count() FROM netpilot.flows_raw UNION ALL SELECT "
        "'link_utilisation', count() FROM netpilot.link_utilisation UNION ALL SELECT "
        "'recommendations', count() FROM netpilot.recommendations"
    )
    try:
        per_store = [pipe.query(sql, store=i) for i in range(len(pipe.stores))]
        totals: dict[str, int] = defaultdict(int)
        for rows in per_store:
            for name, n in rows:
                totals[name] += int(n)
        line = "ClickHouse rows: " + ", ".join(f"{name} {n}" for name, n in totals.items())
        if len(per_store) > 1:  # one chDB store per sink: the sums, and each store's share
            line += (
                " ("
                + "; ".join(
                    f"{pipe.stores[i].name}: " + ", ".join(f"{name} {n}" for name, n in rows)
                    for i, rows in enumerate(per_store)
                )
                + ")"
            )
        console.print(line)
    except PipelineError as exc:
        console.print(f"[yellow]could not read ClickHouse: {exc}[/]")
    for i, store in enumerate(pipe.stores):
        cfg = pipe.query_config(i)
        console.print(
            f"query the data (chDB at {store}):\n"
            f"  netpilot sink clickhouse query -c {cfg} \\\n"
            '    "SELECT link_id, sum(bytes_scaled)*8/1e9 AS Gbit FROM netpilot.flows_raw GROUP BY link_id"\n'
            f"  netpilot sink clickhouse query -c {cfg} \\\n"
            '    "SELECT generated_at, action, prefix, from_link_id, to_link_id '
            'FROM netpilot.recommendations"\n'
            f"  netpilot report -c {cfg} --since 30m --out {pipe.root / 'report'}   # dashboard PNGs"
        )


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.0%}"


def _hms(ts: float) -> str:
    import time

    return time.strftime("%H:%M:%S", time.localtime(ts))


def print_scale_summary(
    console: Console, state: DemoState, pipe: Pipeline, tracker: InstanceTracker, flows: FlowCounter
) -> None:
    """``--instances N``: what was killed, how the survivors took over, and the totals."""
    from netpilot.dev.demoinstances import cycling, missing_windows

    console.rule(f"scale-out: {pipe.options.instances} instances of {', '.join(SCALED)}")
    for line in tracker.takeover_lines():
        console.print(line)
    if not tracker.takeovers:
        console.print("no instance was killed (--kill-one-at 0, or the run ended first)")
    killed_at = min((t.killed_at for t in tracker.takeovers), default=None)
    console.print("every PoP kept cycling: " + "; ".join(cycling(state.summaries, tracker.pops, killed_at)))
    missing = {k: n for k, n in missing_windows(state.history, WINDOW_S).items() if n}
    console.print(
        f"link utilisation: {len(state.history)} links, "
        + (
            f"[red]windows missing[/]: {missing}"
            if missing
            else "every 10 s window from each link's first to its last was published"
        )
    )
    stored: list[int] = []
    for i in range(len(pipe.stores)):
        try:
            stored.append(int(pipe.query("SELECT count() FROM netpilot.flows_raw", store=i)[0][0]))
        except (PipelineError, IndexError, ValueError) as exc:
            console.print(f"[yellow]could not read {pipe.stores[i]}: {exc}[/]")
            return
    published, total = flows.total, sum(stored)
    parts = " + ".join(f"{n:,} (sink-clickhouse-{i + 1}'s chDB)" for i, n in enumerate(stored))
    console.print(f"flows published to Kafka (counted from the topic): {published:,}; stored: {parts} = {total:,}")
    if total == published:
        console.print("flows totals: [green]every published flow stored once[/]")
    elif total > published:
        console.print(
            f"flows totals: [yellow]{total - published:,} stored twice[/]: a batch the killed sink had "
            "inserted but not committed, replayed by the survivor into its own store (one store per "
            "sink with chDB; a shared ClickHouse server drops the replay by its insert token)"
        )
    else:
        console.print(f"flows totals: [red]{published - total:,} published flows not stored[/]")
    replays = {n: int(r) for n, r in tracker.replays.items() if r}
    console.print(
        "batches replayed from a dead sink's write-ahead intent: "
        + (", ".join(f"{n} {r}" for n, r in sorted(replays.items())) or "none")
    )
    console.print(
        "[dim]chDB locks its store to one process, so each sink writes its own; "
        + ", ".join(f"-c {pipe.query_config(i)}" for i in range(len(pipe.stores)))
        + " query them one at a time (netpilot sink clickhouse query).[/]"
    )
