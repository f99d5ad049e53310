"""What `netpilot demo` watches and shows: link utilisation, recommendations and cycle summaries
read from their topics (the same wire messages every consumer reads), the collector's flow
rate from its /metrics, the pipeline lag (the age of the newest closed window: what a user
waits end to end) and the ClickHouse sink's Kafka consumer lag from its /metrics. Rendering is
rich (works without a TTY too);
the charts are matplotlib PNGs.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from netpilot import catalog
from netpilot.errors import WireError
from netpilot.kafka.consumer import BatchConsumer, position
from netpilot.obs.logging import RateLimitedLog, get_logger
from netpilot.settings import KafkaSettings
from netpilot.wire.autopilot import CycleSummary, Recommendation
from netpilot.wire.injector import AppliedOverride
from netpilot.wire.links import LinkUtilisation

log = get_logger("netpilot.demo")
DEFAULT_HI = 0.90
WINDOW_S = 10.0  # the view follows the streams worker's 10 s windows
_FLOWS = re.compile(r"^netpilot_collector_flows_total\{[^}]*\} ([0-9.e+]+)$", re.M)
_SINK_LAG = re.compile(r"^netpilot_sink_clickhouse_consumer_lag_messages\{[^}]*\} ([0-9.e+]+)$", re.M)


@dataclass
class DemoState:
    """Everything seen so far; ``history`` feeds the charts and the summary."""

    latest: dict[tuple[str, str], LinkUtilisation] = field(default_factory=dict)
    history: dict[tuple[str, str], list[tuple[float, float]]] = field(default_factory=lambda: defaultdict(list))
    recommendations: list[Recommendation] = field(default_factory=list)
    summaries: list[CycleSummary] = field(default_factory=list)
    thresholds: dict[str, float] = field(default_factory=dict)
    flows_total: float = 0.0
    flows_per_s: float = 0.0
    sink_lag_messages: float | None = None
    """Kafka messages the ClickHouse sink has not stored yet (its consumer lag)."""
    applied: dict[tuple[str, str], AppliedOverride] = field(default_factory=dict)
    """What the routers hold now (the injector's read-back); empty in an open-loop run."""
    applied_events: list[tuple[float, str, str, bool]] = field(default_factory=list)
    """(when, pop, prefix, installed?) as the routers confirmed it."""
    bad_messages: int = 0
    _last_scrape: tuple[float, float] | None = None

    def lag_s(self) -> float | None:
        """Wall clock minus the end of the newest closed window: how far behind the view is."""
        ends = [u.window_start + u.window_s for u in self.latest.values()]
        return time.time() - max(ends) if ends else None

    def scrape_sink(self, metrics_text: str) -> None:
        values = _SINK_LAG.findall(metrics_text)
        self.sink_lag_messages = sum(float(v) for v in values) if values else None

    def scrape_flows(self, metrics_text: str) -> None:
        total = sum(float(v) for v in _FLOWS.findall(metrics_text))
        now = time.monotonic()
        if self._last_scrape is not None and now > self._last_scrape[0] and total >= self._last_scrape[1]:
            self.flows_per_s = (total - self._last_scrape[1]) / (now - self._last_scrape[0])
        if metrics_text:
            self._last_scrape = (now, total)
            self.flows_total = total


class DemoWatcher:
    """Reads the utilisation, recommendation and cycle-summary topics into a DemoState."""

    def __init__(self, kafka: KafkaSettings, group_id: str) -> None:
        self._topics = {
            kafka.topic(catalog.LINK_UTILISATION): self._utilisation,
            kafka.topic(catalog.RECOMMENDATIONS): self._recommendation,
            kafka.topic(catalog.CYCLE_SUMMARIES): self._summary,
        }
        self._applied_topic = kafka.topic(catalog.APPLIED_OVERRIDES)
        self._topics[self._applied_topic] = self._applied
        self.consumer = BatchConsumer(kafka, group_id, list(self._topics))
        self.state = DemoState()
        self._mute = RateLimitedLog(log)

    def poll(self, timeout: float = 0.2) -> None:
        for m in self.consumer.poll_batch(1000, timeout):
            topic, value = position(m)[0], m.value()
            if value is None:
                if topic == self._applied_topic:  # a tombstone: no router holds it any more
                    pop, _, prefix = (m.key() or b"").decode(errors="replace").partition("|")
                    if self.state.applied.pop((pop, prefix), None) is not None:
                        self.state.applied_events.append((time.time(), pop, prefix, False))
                continue
            try:
                self._topics[topic](value)
            except (WireError, ValueError) as exc:  # counted, shown, never fatal for a view
                self.state.bad_messages += 1
                self._mute.warning("bad", "undecodable message", topic=m.topic(), error=str(exc)[:200])

    def _utilisation(self, value: bytes) -> None:
        u = LinkUtilisation.decode(value)
        if u.window_s != WINDOW_S or u.utilisation is None:
            return
        key = (u.pop, u.link_id)
        self.state.history[key].append((u.window_start, u.utilisation))
        prev = self.state.latest.get(key)
        if prev is None or u.window_start >= prev.window_start:
            self.state.latest[key] = u

    def _recommendation(self, value: bytes) -> None:
        r = Recommendation.decode(value)
        self.state.recommendations.append(r)

    def _applied(self, value: bytes) -> None:
        a = AppliedOverride.decode(value)
        if (a.pop, a.prefix) not in self.state.applied:
            self.state.applied_events.append((a.since, a.pop, a.prefix, True))
        self.state.applied[(a.pop, a.prefix)] = a

    def _summary(self, value: bytes) -> None:
        summary = CycleSummary.decode(value)
        self.state.summaries.append(summary)
        # the autopilot's own per-link triggers (the IX default is 85 %, not DEFAULT_HI)
        self.state.thresholds.update(summary.util_trigger)

    def close(self) -> None:
        self.consumer.close()


def _bar(util: float, hi: float, width: int = 30) -> Text:
    filled = min(width, int(round(util / 1.2 * width)))
    colour = "red" if util >= hi else "yellow" if util >= hi - 0.15 else "green"
    mark = int(round(hi / 1.2 * width))
    cells = ["█" if i < filled else "│" if i == mark else "·" for i in range(width)]
    return Text("".join(cells), style=colour)


def render(
    state: DemoState, header: str, components: dict[str, bool], extra: list[RenderableType] | None = None
) -> Group:
    """One frame of the live view; ``extra`` (the instances of a scaled-out run) goes last."""
    lag = state.lag_s()
    sink_lag = state.sink_lag_messages
    status = "  ".join(f"[{'green' if ok else 'red'}]{name}[/]" for name, ok in components.items())
    top = Text.from_markup(
        f"{header}   flows/s [bold]{state.flows_per_s:,.0f}[/]   "
        f"pipeline lag [bold]{'-' if lag is None else f'{lag:.0f} s'}[/] "
        f"(sink lag [bold]{'-' if sink_lag is None else f'{sink_lag:,.0f}'}[/]"
        f" messages)   {status}"
    )
    links = Table(title=f"egress links ({WINDOW_S:.0f} s windows; │ = trigger)", expand=False)
    for col in ("PoP", "link", "utilisation", "", "counters", "flows", "coverage"):
        links.add_column(col, justify="right" if col in ("", "counters", "flows", "coverage") else "left")
    for (pop, link), u in sorted(state.latest.items()):
        hi = state.thresholds.get(link, DEFAULT_HI)
        util = u.utilisation or 0.0
        links.add_row(
            pop,
            link,
            _bar(util, hi),
            f"{util:6.1%}",
            "-" if u.counter_bps is None else f"{u.counter_bps / 1e9:.2f} G",
            f"{u.flow_bps / 1e9:.2f} G",
            "-" if u.coverage is None else f"{u.coverage:.3f}",
        )
    recs = Table(title=f"recommendations ({len(state.recommendations)} so far, newest last)")
    for col in ("time", "action", "prefix", "from", "to", "rate", "from util before → after"):
        recs.add_column(col)
    for r in state.recommendations[-8:]:
        before, after = r.from_.util_projected_before, r.from_.util_projected_after
        proj = "-" if before is None or after is None else f"{before:.0%} → {after:.0%}"
        recs.add_row(
            time.strftime("%H:%M:%S", time.localtime(r.generated_at)),
            r.action,
            r.prefix,
            r.from_.link_id,
            r.to.link_id,
            f"{r.rate_bps / 1e6:.0f} M",
            proj,
        )
    parts: list[RenderableType] = [top, links, Panel(recs, border_style="dim")]
    if state.applied or state.applied_events:
        per_pop: dict[str, int] = defaultdict(int)
        for pop, _ in state.applied:
            per_pop[pop] += 1
        parts.append(
            Text.from_markup(
                "[bold]applied on the routers[/] (BIRD's own RIB, read back by the injector): "
                + (", ".join(f"{pop} {n}" for pop, n in sorted(per_pop.items())) or "none now")
            )
        )
    parts.extend(extra or [])
    return Group(*parts)


def write_charts(state: DemoState, out: Path) -> list[Path]:
    """Per PoP: utilisation over time per link, the trigger thresholds, and when ADDs came."""
    import matplotlib

    matplotlib.use("Agg")
    from datetime import datetime

    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    def ts(x: float) -> Any:  # a datetime: matplotlib plots them, though its hints say float
        return datetime.fromtimestamp(x, UTC)

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for pop in sorted({p for p, _ in state.history}):
        fig, ax = plt.subplots(figsize=(10, 4.5))
        for (p, link), points in sorted(state.history.items()):
            if p != pop:
                continue
            points = sorted(dict(points).items())
            (line,) = ax.plot(
                [ts(t + WINDOW_S) for t, _ in points], [u * 100 for _, u in points], marker=".", label=link
            )
            hi = state.thresholds.get(link, DEFAULT_HI)
            ax.axhline(hi * 100, color=line.get_color(), linestyle=":", linewidth=1)
        adds = sorted({r.generated_at for r in state.recommendations if r.pop == pop and r.action == "ADD"})
        for i, t in enumerate(adds):
            ax.axvline(ts(t), color="red", alpha=0.5, linewidth=1, label="ADD recommended" if i == 0 else None)
        withdraws = sorted({r.generated_at for r in state.recommendations if r.pop == pop and r.action == "WITHDRAW"})
        for i, t in enumerate(withdraws):
            ax.axvline(ts(t), color="green", alpha=0.5, linewidth=1, label="WITHDRAW" if i == 0 else None)
        installed = sorted(t for t, p, _, up in state.applied_events if p == pop and up)
        removed = sorted(t for t, p, _, up in state.applied_events if p == pop and not up)
        if installed:
            ax.axvspan(
                ts(installed[0]),
                ts(
                    removed[-1]
                    if removed and removed[-1] > installed[0]
                    else max(t for pts in state.history.values() for t, _ in pts) + WINDOW_S
                ),
                color="purple",
                alpha=0.08,
                label="overrides installed on the routers",
            )
            ax.axvline(ts(installed[0]), color="purple", linewidth=1.5, label="first override confirmed by BIRD")
        ax.set_title(f"{pop}: egress link utilisation ({WINDOW_S:.0f} s windows; dotted = trigger)")
        ax.set_ylabel("% of capacity")
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize="small")
        fig.autofmt_xdate()
        path = out / f"utilisation-{pop}.png"
        fig.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    return written
