"""ExporterState + LinkCollector without Kafka: values, staleness, tombstones, expiry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from netpilot.wire.autopilot import CycleSummary, LinkSide, Recommendation
from netpilot.wire.injector import AppliedOverride
from netpilot.wire.links import LinkInventory, LinkUtilisation
from sinks.prometheus.collector import LinkCollector
from sinks.prometheus.state import ExporterState

NOW = 1_800_000_000.0


def _rec(prefix: str, action: str = "ADD", valid_until: float = NOW + 600) -> Recommendation:
    return Recommendation(
        id=prefix,
        cycle_id="c",
        generated_at=NOW,
        valid_until=valid_until,
        pop="ams",
        action=action,
        mode="suggest",
        prefix=prefix,
        afi=4,
        rate_bps=1e8,
        reason="OVERLOAD",
        **{"from": LinkSide(link_id="ams-l1")},
        to=LinkSide(link_id="ams-l2"),
    )


def test_collector_exports_links_and_pops_with_bounded_labels() -> None:
    state = ExporterState()
    clock = {"now": NOW}
    reg = CollectorRegistry()
    reg.register(LinkCollector(state, stale_after_s=300, clock=lambda: clock["now"]))
    state.apply_inventory(
        "ams|ams-l1", LinkInventory(pop="ams", link_id="ams-l1", router="r1", capacity_bps=1e10, peer_type="pni")
    )
    state.apply_utilisation(
        LinkUtilisation(
            pop="ams",
            link_id="ams-l1",
            window_start=NOW - 60,
            window_s=60,
            capacity_bps=1e10,
            counter_bps=7.5e9,
            flow_bps=6e9,
            utilisation=0.75,
            coverage=0.8,
        ),
        NOW,
    )
    # a late, older window must not overwrite the newer one
    state.apply_utilisation(
        LinkUtilisation(
            pop="ams", link_id="ams-l1", window_start=NOW - 600, window_s=60, capacity_bps=1e10, utilisation=0.1
        ),
        NOW,
    )
    state.apply_cycle(
        CycleSummary(
            cycle_id="c",
            pop="ams",
            generated_at=NOW,
            mode="suggest",
            active_overrides=3,
            detoured_bps=2e8,
            projection_error={"ams-l1": 0.1, "ams-l2": -0.01},
            misprojected_links=("ams-l1",),
        )
    )
    for p in ("192.0.2.0/24", "198.51.100.0/24", "2001:db8::/48"):
        state.apply_recommendation(f"ams|{p}", _rec(p))
    state.apply_recommendation("ams|198.51.100.0/24", _rec("198.51.100.0/24", "WITHDRAW"))
    state.apply_recommendation("ams|2001:db8::/48", None)  # compaction tombstone

    link = {"pop": "ams", "link_id": "ams-l1", "peer_type": "pni"}
    assert reg.get_sample_value("netpilot_link_utilisation_ratio", link) == 0.75
    assert reg.get_sample_value("netpilot_link_traffic_bits_per_second", link) == 7.5e9
    assert reg.get_sample_value("netpilot_link_flow_traffic_bits_per_second", link) == 6e9
    assert reg.get_sample_value("netpilot_link_capacity_bits_per_second", link) == 1e10
    assert reg.get_sample_value("netpilot_link_flow_coverage_ratio", link) == 0.8
    assert reg.get_sample_value("netpilot_autopilot_active_overrides", {"pop": "ams"}) == 3
    assert reg.get_sample_value("netpilot_autopilot_recommendations", {"pop": "ams"}) == 1
    assert reg.get_sample_value("netpilot_autopilot_detoured_bits_per_second", {"pop": "ams"}) == 2e8
    assert (
        reg.get_sample_value("netpilot_autopilot_projection_error_ratio", {"pop": "ams", "link_id": "ams-l2"}) == -0.01
    )
    assert [
        reg.get_sample_value("netpilot_autopilot_link_misprojected", {"pop": "ams", "link_id": l})
        for l in ("ams-l1", "ams-l2")
    ] == [1, 0]

    clock["now"] = NOW + 3600  # rates go stale, recommendations expire; capacity stays
    assert reg.get_sample_value("netpilot_link_utilisation_ratio", link) is None
    assert reg.get_sample_value("netpilot_link_capacity_bits_per_second", link) == 1e10
    assert reg.get_sample_value("netpilot_autopilot_recommendations", {"pop": "ams"}) == 0

    state.apply_inventory("ams|ams-l1", None)  # link deleted
    assert reg.get_sample_value("netpilot_link_capacity_bits_per_second", link) is None


def _applied(pop: str, prefix: str, confirmed_at: float) -> AppliedOverride:
    return AppliedOverride(
        pop=pop,
        prefix=prefix,
        link_id=f"{pop}-l2",
        next_hop="192.0.2.31",
        routers=(f"{pop}-r1",),
        since=NOW - 300,
        confirmed_at=confirmed_at,
    )


def test_applied_overrides_per_pop_next_to_valid_recommendations() -> None:
    state = ExporterState()
    clock = {"now": NOW}
    reg = CollectorRegistry()
    reg.register(LinkCollector(state, stale_after_s=300, clock=lambda: clock["now"]))
    # PoPs are known from the inventory, so a PoP with nothing applied still shows 0
    for pop in ("ams", "fra"):
        state.apply_inventory(
            f"{pop}|{pop}-l2", LinkInventory(pop=pop, link_id=f"{pop}-l2", router=f"{pop}-r1", capacity_bps=1e10)
        )
    for p in ("192.0.2.0/24", "198.51.100.0/24"):
        state.apply_recommendation(f"ams|{p}", _rec(p))
    state.apply_applied("ams|192.0.2.0/24", _applied("ams", "192.0.2.0/24", NOW - 40))
    state.apply_applied("ams|198.51.100.0/24", _applied("ams", "198.51.100.0/24", NOW - 10))
    state.apply_applied("ams|2001:db8::/48", _applied("ams", "2001:db8::/48", NOW - 25))
    # a later read-back of the same override replaces it, it does not count twice
    state.apply_applied("ams|192.0.2.0/24", _applied("ams", "192.0.2.0/24", NOW - 5))
    state.apply_applied("fra|203.0.113.0/24", _applied("fra", "203.0.113.0/24", NOW - 60))
    state.apply_applied("ams|2001:db8::/48", None)  # tombstone: no router holds it any more
    state.apply_applied("lon|192.0.2.0/24", None)  # tombstone of something never seen

    ams, fra = {"pop": "ams"}, {"pop": "fra"}
    assert reg.get_sample_value("netpilot_autopilot_applied_overrides", ams) == 2
    assert reg.get_sample_value("netpilot_autopilot_recommendations", ams) == 2
    assert reg.get_sample_value("netpilot_autopilot_applied_overrides", fra) == 1
    assert reg.get_sample_value("netpilot_autopilot_recommendations", fra) == 0  # applied, not recommended
    assert reg.get_sample_value("netpilot_autopilot_applied_age_seconds", ams) == 5  # newest read-back
    assert reg.get_sample_value("netpilot_autopilot_applied_age_seconds", fra) == 60
    assert reg.get_sample_value("netpilot_autopilot_applied_overrides", {"pop": "lon"}) is None

    state.apply_applied("fra|203.0.113.0/24", None)  # the last one goes: 0, and no age to show
    assert reg.get_sample_value("netpilot_autopilot_applied_overrides", fra) == 0
    assert reg.get_sample_value("netpilot_autopilot_applied_age_seconds", fra) is None
    clock["now"] = NOW + 3600  # recommendations expire; what the routers hold does not
    assert reg.get_sample_value("netpilot_autopilot_recommendations", ams) == 0
    assert reg.get_sample_value("netpilot_autopilot_applied_overrides", ams) == 2
    assert reg.get_sample_value("netpilot_autopilot_applied_age_seconds", ams) == 3605
    # labels stay bounded: pop only, never a prefix
    families = {m.name: m for m in reg.collect()}
    for name in ("netpilot_autopilot_applied_overrides", "netpilot_autopilot_applied_age_seconds"):
        assert {tuple(s.labels) for s in families[name].samples} <= {("pop",)}, name


def test_exporter_consumes_what_the_catalog_says() -> None:
    from netpilot import catalog
    from sinks.prometheus.service import TOPICS

    assert {t.id for t in TOPICS} == {t.id for t in catalog.topics_consumed_by(catalog.Component.SINK_PROMETHEUS)}
