"""The injector's pure core: refusals, TTL, modes, the per-PoP cap and the announce rate limit."""

from __future__ import annotations

import time

from netpilot.rib import parse_bird, parse_frr
from netpilot.wire.injector import InjectorControl
from netpilot.wire.links import LinkInventory
from netpilot.wire.routes import Route
from sinks.bgp.desired import DesiredState, Network, Reconciler, Rules, desired_overrides
from tests.sinks.bgp.lab import LINKS, POP, ROUTED, rec


def _net() -> Network:
    net = Network()
    for link_id, (router, hops) in LINKS.items():
        net.apply_inventory(
            f"{POP}|{link_id}",
            LinkInventory(pop=POP, link_id=link_id, router=router, capacity_bps=1e10, next_hops=hops),
        )
    for prefix, links in ROUTED.items():
        for link_id in links:
            r = Route(pop=POP, link_id=link_id, prefix=prefix)
            net.apply_route(r.key(), r)
    return net


def _state(*recs) -> DesiredState:
    st = DesiredState()
    for r in recs:
        st.apply_recommendation(r.key(), r)
    return st


def test_valid_overrides_and_every_refusal_reason() -> None:
    st = _state(
        rec("198.18.4.0/24"),
        rec("198.18.5.0/24", "ams1-r9:x", next_hop="198.51.100.99"),
        rec("198.18.6.0/24", next_hop="198.51.100.10"),
        rec("198.18.7.0/24"),
        rec("198.18.4.0/25"),
        rec("2001:db8:5::/48", next_hop="198.51.100.11"),
    )
    view = desired_overrides(st, _net(), Rules(), "apply", time.time())
    assert set(view.overrides[POP]) == {"198.18.4.0/24"}
    assert view.overrides[POP]["198.18.4.0/24"].next_hop == "198.51.100.11"
    assert sorted(why.reason for _, why in view.refused) == [
        "bad-next-hop",
        "bad-next-hop",
        "no-route",
        "not-allowed",
        "unknown-link",
    ]


def test_expired_observe_labelled_withdrawn_and_deny_listed_are_not_held() -> None:
    st = _state(rec("198.18.4.0/24", ttl_s=-1), rec("198.18.5.0/24", mode="observe"), rec("198.18.6.0/24"))
    st.apply_recommendation(f"{POP}|198.18.6.0/24", rec("198.18.6.0/24", action="WITHDRAW"))
    view = desired_overrides(st, _net(), Rules(), "apply", time.time())
    assert view.overrides == {}
    assert view.skipped[(POP, "expired")] == 1 and view.skipped[(POP, "observe-label")] == 1
    denied = desired_overrides(
        _state(rec("198.18.4.0/24")), _net(), Rules(deny_prefixes=("198.18.0.0/16",)), "apply", time.time()
    )
    assert [why.reason for _, why in denied.refused] == ["not-allowed"]


def test_suggest_needs_an_approval_of_this_override_instance() -> None:
    a = rec("198.18.4.0/24", created_at=1000.0)
    st = _state(a)
    view = desired_overrides(st, _net(), Rules(), "suggest", time.time())
    assert not view.overrides and [o.prefix for o in view.pending] == ["198.18.4.0/24"]
    st.apply_control(
        InjectorControl(
            kind="approve", pop=POP, prefix=a.prefix, created_at=1000.0, to_link=a.to.link_id, at=time.time()
        )
    )
    assert set(desired_overrides(st, _net(), Rules(), "suggest", time.time()).overrides[POP]) == {a.prefix}
    st.apply_recommendation(a.key(), rec("198.18.4.0/24", created_at=2000.0))  # a new override instance
    assert not desired_overrides(st, _net(), Rules(), "suggest", time.time()).overrides
    st.apply_control(InjectorControl(kind="drain", pop="*", at=time.time()))
    assert st.is_drained(POP)
    st.apply_control(None, "drain|*")  # a tombstone lifts it
    assert not st.is_drained(POP)


def test_cap_keeps_what_is_in_place_then_the_biggest() -> None:
    st = _state(
        rec("198.18.4.0/24", rate_bps=1e9), rec("198.18.5.0/24", rate_bps=5e9), rec("198.18.6.0/24", rate_bps=3e9)
    )
    view = desired_overrides(
        st, _net(), Rules(max_active_per_pop=2), "apply", time.time(), announced={(POP, "198.18.4.0/24")}
    )
    assert set(view.overrides[POP]) == {"198.18.4.0/24", "198.18.5.0/24"}
    assert view.skipped[(POP, "over-cap")] == 1


def test_reconciler_rate_limits_announces_per_pop_not_withdrawals() -> None:
    st = _state(*(rec(p, rate_bps=i) for i, p in enumerate(["198.18.4.0/24", "198.18.5.0/24", "198.18.6.0/24"])))
    want = desired_overrides(st, _net(), Rules(), "apply", time.time()).overrides
    r = Reconciler(max_announces_per_cycle=2, cycle_s=10)
    routers = {POP: ["ams1-r1", "ams1-r2"]}
    step = r.plan(want, routers, now=0.0)
    assert len(step.announce) == 4 and step.deferred[POP] == 1  # 2 prefixes x 2 routers; 1 waits
    r.done(step)
    assert r.plan(want, routers, now=5.0).announce == []  # same window: still held back
    step = r.plan(want, routers, now=10.0)
    assert {ov.prefix for _, ov in step.announce} == {"198.18.4.0/24"}
    r.done(step)
    assert r.plan(want, routers, now=11.0).announce == []  # converged: idempotent
    step = r.plan({}, routers, now=11.5)
    assert len(step.withdraw) == 6 and not step.deferred  # withdrawals never wait


def test_rib_parsers_on_the_routers_own_output() -> None:
    bird = """BIRD 2.0.12 ready.
Table master4:
198.18.4.0/24        unicast [netpilot 15:44:01.541 from 127.0.0.1] * (100) [i]
	via 198.51.100.11 on lo
	Type: BGP univ
	BGP.origin: IGP
	BGP.next_hop: 198.51.100.11
	BGP.local_pref: 1000
	BGP.community: (64496,666) (65535,65281)
                     unicast [other 15:44:01.541 from 127.0.0.9] (100) [i]
	BGP.next_hop: 198.51.100.12
	BGP.local_pref: 100
	BGP.community: (64496,666)
"""
    routes = parse_bird(bird)
    assert [(r.prefix, r.next_hop, r.local_pref, r.best) for r in routes] == [
        ("198.18.4.0/24", "198.51.100.11", 1000, True),
        ("198.18.4.0/24", "198.51.100.12", 100, False),
    ]
    assert routes[0].communities == ("64496:666", "no-export")
    frr = {
        "routes": {
            "198.18.4.0/24": [
                {"valid": True, "bestpath": True, "locPrf": 1000, "nexthops": [{"ip": "198.51.100.11", "afi": "ipv4"}]}
            ]
        }
    }
    (r,) = parse_frr(frr, "64496:666")
    assert (r.prefix, r.next_hop, r.local_pref, r.best) == ("198.18.4.0/24", "198.51.100.11", 1000, True)


def test_more_specific_allowed_only_inside_a_route_of_the_alternate_and_within_the_limit() -> None:
    """The planner's split pieces: a /25 of the routed 198.18.4.0/24 may be injected on a link
    that has the /24 when the length limit allows /25; naming another routed prefix as its
    route does not make an unrelated prefix allowed."""

    def piece(prefix: str, route_prefix: str, split_from: str | None = None):
        r = rec(prefix)
        return r.model_copy(
            update={"to": r.to.model_copy(update={"route_prefix": route_prefix}), "split_from": split_from}
        )

    half = piece("198.18.4.128/25", "198.18.4.0/24", "198.18.4.0/24")
    wrong = piece("198.18.9.0/25", "198.18.4.0/24", "198.18.5.0/24")  # inside neither
    now = time.time()
    allowed = desired_overrides(_state(half, wrong), _net(), Rules(max_prefix_len_v4=25), "apply", now)
    assert set(allowed.overrides[POP]) == {"198.18.4.128/25"}
    assert [(o.prefix, why.reason) for o, why in allowed.refused] == [("198.18.9.0/25", "no-route")]
    # The default limit (/24) refuses the same piece: routers and peers filter longer.
    default = desired_overrides(_state(half), _net(), Rules(), "apply", now)
    assert default.overrides == {} and [why.reason for _, why in default.refused] == ["not-allowed"]
