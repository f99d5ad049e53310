"""A custom Prometheus Collector: link and autopilot gauges computed at scrape time.

Labels are bounded by the inventory: ``pop``, ``link_id``, ``peer_type`` (never a prefix
or an address; that detail belongs in ClickHouse). Units follow Prometheus conventions:
``*_ratio`` for fractions, ``*_bits_per_second`` for rates.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from sinks.prometheus.state import ExporterState

LINK_LABELS = ["pop", "link_id", "peer_type"]


class LinkCollector(Collector):
    def __init__(self, state: ExporterState, stale_after_s: float, clock: Callable[[], float] = time.time) -> None:
        self._state = state
        self._stale = stale_after_s
        self._clock = clock

    def describe(self) -> list:
        return []  # values are dynamic; do not let registration call collect()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = self._clock()
        g = {
            "util": GaugeMetricFamily(
                "netpilot_link_utilisation_ratio", "Link traffic / capacity over the last window", labels=LINK_LABELS
            ),
            "traffic": GaugeMetricFamily(
                "netpilot_link_traffic_bits_per_second", "Outbound traffic from interface counters", labels=LINK_LABELS
            ),
            "flow": GaugeMetricFamily(
                "netpilot_link_flow_traffic_bits_per_second",
                "Outbound traffic explained by (sampling-corrected) flows",
                labels=LINK_LABELS,
            ),
            "cap": GaugeMetricFamily("netpilot_link_capacity_bits_per_second", "Link capacity", labels=LINK_LABELS),
            "cov": GaugeMetricFamily(
                "netpilot_link_flow_coverage_ratio", "Flow traffic / counter traffic", labels=LINK_LABELS
            ),
            "age": GaugeMetricFamily(
                "netpilot_link_utilisation_age_seconds",
                "Seconds since the last utilisation message",
                labels=LINK_LABELS,
            ),
        }
        for link in self._state.links(now, self._stale):
            labels = [link.pop, link.link_id, link.peer_type]
            for name, value in (
                ("util", link.utilisation),
                ("traffic", link.counter_bps),
                ("flow", link.flow_bps),
                ("cap", link.capacity_bps),
                ("cov", link.coverage),
                ("age", None if link.updated is None else now - link.updated),
            ):
                if value is not None:
                    g[name].add_metric(labels, float(value))
        yield from g.values()

        p = {
            "overrides": GaugeMetricFamily(
                "netpilot_autopilot_active_overrides", "Overrides in force after the last cycle", labels=["pop"]
            ),
            "recs": GaugeMetricFamily(
                "netpilot_autopilot_recommendations", "Recommendations (ADD/REFRESH) still valid", labels=["pop"]
            ),
            "detour": GaugeMetricFamily(
                "netpilot_autopilot_detoured_bits_per_second", "Traffic moved off its best path", labels=["pop"]
            ),
            "static": GaugeMetricFamily(
                "netpilot_autopilot_fail_static",
                "1 while the autopilot holds its last plan (inputs stale)",
                labels=["pop"],
            ),
            "cycle": GaugeMetricFamily(
                "netpilot_autopilot_last_cycle_timestamp_seconds",
                "When the last cycle summary was generated",
                labels=["pop"],
            ),
            "applied": GaugeMetricFamily(
                "netpilot_autopilot_applied_overrides",
                "Overrides the PoP's routers hold, as the injector read them back from their RIBs",
                labels=["pop"],
            ),
            "applied_age": GaugeMetricFamily(
                "netpilot_autopilot_applied_age_seconds",
                "Seconds since the newest read-back that confirmed an applied override (absent: none applied)",
                labels=["pop"],
            ),
        }
        for pop in self._state.pops(now):
            p["recs"].add_metric([pop.pop], pop.active_recommendations)
            # 0 rather than absent: "recommended but nothing applied" must show on a graph
            p["applied"].add_metric([pop.pop], pop.applied_overrides)
            if pop.applied_confirmed_at is not None:  # clocks differ: never a negative age
                p["applied_age"].add_metric([pop.pop], max(0.0, now - pop.applied_confirmed_at))
            for name, value in (
                ("overrides", pop.active_overrides),
                ("detour", pop.detoured_bps),
                ("static", None if pop.fail_static is None else int(pop.fail_static)),
                ("cycle", pop.cycle_time),
            ):
                if value is not None:
                    p[name].add_metric([pop.pop], float(value))
        yield from p.values()

        proj = GaugeMetricFamily(
            "netpilot_autopilot_projection_error_ratio",
            "Actual utilisation minus the planner's expectation, last cycle",
            labels=["pop", "link_id"],
        )
        bad = GaugeMetricFamily(
            "netpilot_autopilot_link_misprojected",
            "1 while a link's projection error has exceeded the threshold for the policy's misprojection_after_s",
            labels=["pop", "link_id"],
        )
        for pop_, link_id, err, misprojected in self._state.projections():
            proj.add_metric([pop_, link_id], err)
            bad.add_metric([pop_, link_id], int(misprojected))
        yield proj
        yield bad
