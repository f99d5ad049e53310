"""Invariants of the planner over generated PoPs (hypothesis), as the issue lists them.

Each property is checked against facts computed here independently of the planner
(routes via ``ipaddress``, thresholds from the policy), not against its own bookkeeping.
"""

from __future__ import annotations

import ipaddress
import itertools
from dataclasses import dataclass, field

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from streams.autopilot.model import Plan, Snapshot
from streams.autopilot.planner import plan
from streams.autopilot.policy import Policy
from streams.autopilot.state import PlannerState
from tests.streams.autopilot.factory import T0, link, snapshot

EPS = 1e-9
PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass
class World:
    """A generated PoP: links, routes per link, demand per prefix (on its first native)."""

    links: list[dict]
    routes: dict[str, list]
    natives: dict[str, list[str]]
    demand: dict[str, float]
    extra: dict[str, float] = field(default_factory=dict)
    fine: set[str] = field(default_factory=set)
    """IPv4 prefixes whose demand comes as four uneven /26 rows (so it can be split)."""

    def snapshot(self, scale: float = 1.0) -> Snapshot:
        per_link: dict[str, dict[str, float]] = {}
        for prefix, rate in self.demand.items():
            rows = per_link.setdefault(self.natives[prefix][0], {})
            if prefix in self.fine:
                base = prefix.rsplit(".", 1)[0]
                for q, weight in enumerate((0.4, 0.3, 0.2, 0.1)):
                    rows[f"{base}.{q * 64}/26"] = rate * scale * weight
            else:
                rows[prefix] = rate * scale
        links = []
        for spec in self.links:
            seen = sum(per_link.get(spec["id"], {}).values())
            rate = min(seen + self.extra.get(spec["id"], 0.0), spec["capacity"] * 1.05)
            links.append(
                link(
                    spec["id"],
                    spec["capacity"],
                    rate,
                    peer_type=spec["peer_type"],
                    up=spec["up"],
                    drained=spec["drained"],
                    v6_blackhole=spec["v6_bh"],
                )
            )
        return snapshot(links, self.routes, per_link)


@st.composite
def worlds(draw: st.DrawFn) -> World:
    n_links = draw(st.integers(2, 5))
    links = [
        {
            "id": f"r{i}:et-0/0/{i}",
            "capacity": draw(st.sampled_from([1e9, 10e9, 40e9])),
            "peer_type": draw(st.sampled_from(["transit", "pni", "ix"])),
            "up": draw(st.booleans().map(lambda b: b or draw(st.booleans()))),
            "drained": draw(st.sampled_from([False, False, False, True])),
            "v6_bh": draw(st.sampled_from([False, False, True])),
        }
        for i in range(n_links)
    ]
    ids = [l["id"] for l in links]
    routes: dict[str, list] = {i: [] for i in ids}
    natives, demand, fine = {}, {}, set()
    for j in range(draw(st.integers(1, 20))):
        prefix = f"2001:db8:{j:x}::/48" if draw(st.integers(0, 4)) == 0 else f"198.18.{j}.0/24"
        home = draw(st.lists(st.sampled_from(ids), min_size=1, max_size=2, unique=True))
        for l in home:
            routes[l].append((prefix, {"local_pref": 200}))
        for l in draw(st.lists(st.sampled_from(ids), max_size=3, unique=True)):
            if l not in home:
                routes[l].append((prefix, {"local_pref": draw(st.sampled_from([50, 100, 150]))}))
        natives[prefix] = home
        if "." in prefix and draw(st.booleans()):
            fine.add(prefix)
        # Sized against the native link, so overloads are common and mostly resolvable.
        cap = next(l["capacity"] for l in links if l["id"] == home[0])
        demand[prefix] = draw(st.floats(0.002, 0.3)) * cap
    for l in ids:  # covering aggregates: alternates found by longest-prefix match
        if draw(st.booleans()):
            routes[l] += [("198.18.0.0/15", {"local_pref": 10}), ("2001:db8::/32", {"local_pref": 10})]
    extra = {l["id"]: draw(st.floats(0, 0.7)) * l["capacity"] for l in links}
    return World(links, routes, natives, demand, extra, fine)


policies = st.builds(
    Policy,
    mode=st.just("suggest"),
    split_enabled=st.booleans(),
    min_split_len_v4=st.sampled_from([24, 25, 26]),
    max_split_adds_per_cycle=st.sampled_from([0, 1, 20]),
    hold_s=st.sampled_from([0.0, 60.0, 300.0]),
    cooldown_s=st.sampled_from([0.0, 120.0, 600.0]),
    max_adds_per_cycle=st.sampled_from([None, 1, 3, 20]),
    max_adds_per_link=st.sampled_from([1, 2, 32]),
    max_withdraws_per_cycle=st.sampled_from([1, 5]),
    max_moved_fraction_per_link=st.sampled_from([0.1, 0.25, 1.0]),
    max_active_overrides=st.sampled_from([2, 500]),
    max_total_rate_change=st.just(10.0),
)


def check_cycle(world: World, snap: Snapshot, policy: Policy, p: Plan) -> None:
    """Invariants that hold for every single cycle."""
    links = {l.link_id: l for l in snap.links}
    limits = {i: policy.for_link(l) for i, l in links.items()}  # (hi, target, alt_max, release)
    routes = {
        l: [ipaddress.ip_network(r if isinstance(r, str) else r[0]) for r in rs] for l, rs in world.routes.items()
    }
    adds = p.by_action("ADD")
    moved_in: dict[str, float] = {}
    for a in adds:
        net = ipaddress.ip_network(a.prefix)
        to = links[a.to_link]
        # Never to a link without a route for the prefix (exact or covering), nor a native,
        # down, drained or (for IPv6) blackholing link.
        assert any(net.subnet_of(r) for r in routes[a.to_link] if r.version == net.version), a
        assert a.to_link not in world.natives[_route_of(world, net)]
        assert to.up and not to.drained and not (net.version == 6 and to.v6_blackhole)
        # Never above the alternate's cap, including this cycle's earlier moves.
        assert a.to_after <= limits[a.to_link][2] + EPS
        assert p.report.util_projected[a.to_link] <= limits[a.to_link][2] + EPS
        moved_in[a.to_link] = moved_in.get(a.to_link, 0.0) + a.rate_bps
    # Splitting: never a more-specific beyond the policy's longest length, never more new
    # ones than its cap, and each inside the route prefix it names.
    pieces = [a for a in adds if a.split_from is not None]
    assert len(pieces) <= policy.max_split_adds_per_cycle
    for a in pieces:
        net = ipaddress.ip_network(a.prefix)
        assert net.prefixlen <= (policy.min_split_len_v4 if net.version == 4 else policy.min_split_len_v6), a
        assert net.subnet_of(ipaddress.ip_network(a.split_from)) and net != ipaddress.ip_network(a.split_from)  # type: ignore[arg-type]
    for l, bps in moved_in.items():
        assert bps <= policy.max_moved_fraction_per_link * links[l].usable_bps * (1 + EPS)
    # Budgets.
    if policy.max_adds_per_cycle is not None:
        assert len(adds) <= policy.max_adds_per_cycle
    per_link: dict[str, int] = {}
    for a in adds:
        per_link[a.from_link] = per_link.get(a.from_link, 0) + 1
    assert all(n <= policy.max_adds_per_link for n in per_link.values()), per_link
    if p.report.moves_lower_bound:
        assert p.report.moves_ratio == round(len(adds) / p.report.moves_lower_bound, 4)
    graceful = [w for w in p.by_action("WITHDRAW") if w.reason in ("RELEASE", "KILL_SWITCH")]
    assert len(graceful) <= policy.max_withdraws_per_cycle
    assert not adds or len(p.state.overrides) <= policy.max_active_overrides
    event(
        f"adds={min(len(adds), 3)}, overloaded={len(p.report.overloaded) > 0}, "
        f"split={any(a.split_from for a in adds)}, unresolved={bool(p.report.unresolved_bps)}"
    )
    # Nothing proposed when no link is over its trigger.
    if not p.report.overloaded:
        assert adds == ()
    # Hold: a graceful release never comes before the hold ends.
    for w in p.by_action("WITHDRAW"):
        if w.reason == "RELEASE":
            assert w.hold_until <= p.now


def _route_of(world: World, net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
    """The demand prefix a (possibly split) planned prefix belongs to."""
    for prefix in world.natives:
        whole = ipaddress.ip_network(prefix)
        if whole.version == net.version and net.subnet_of(whole):
            return prefix
    raise AssertionError(f"{net} is not inside any generated prefix")


@PROPS
@given(worlds(), policies)
def test_single_cycle_invariants_and_determinism(world: World, policy: Policy) -> None:
    snap = world.snapshot()
    p = plan(snap, PlannerState(), policy, T0)
    check_cycle(world, snap, policy, p)
    assert plan(world.snapshot(), PlannerState(), policy, T0) == p  # same input, same output
    assert p.state == PlannerState.from_dict(p.state.to_dict())


@PROPS
@given(worlds(), policies, st.lists(st.floats(0.3, 1.6), min_size=5, max_size=25))
def test_changing_load_respects_hold_cooldown_and_budgets(world: World, policy: Policy, scales: list[float]) -> None:
    state, released = PlannerState(), {}
    for n, scale in enumerate(scales):
        now = T0 + 30 * n
        snap = world.snapshot(scale)
        p = plan(snap, state, policy, now)
        check_cycle(world, snap, policy, p)
        for item in p.items:
            if item.action == "ADD" and item.prefix in released:
                assert now >= released[item.prefix] + policy.cooldown_s, "re-added in cooldown"
            if item.action == "ADD":
                assert item.prefix not in state.overrides or item.reason != "OVERLOAD"
            if item.action == "WITHDRAW" and item.reason == "RELEASE":
                released[item.prefix] = now
        state = p.state


@PROPS
@given(worlds(), policies)
def test_steady_input_does_not_flap(world: World, policy: Policy) -> None:
    snap = world.snapshot()
    state, withdrawn, history = PlannerState(), set(), []
    cycles = int(policy.hold_s // 30) + 30
    for n in range(cycles):
        p = plan(snap, state, policy, T0 + 30 * n)
        check_cycle(world, snap, policy, p)
        for item in p.items:
            if item.action == "ADD":
                assert item.prefix not in withdrawn, f"{item.prefix} withdrawn then re-added"
            elif item.action == "WITHDRAW":
                withdrawn.add(item.prefix)
        history.append(sum(1 for i in p.items if i.action != "REFRESH"))
        state = p.state
    assert history[-5:] == [0] * 5, history  # converged: only refreshes at the end


@st.composite
def feasible(draw: st.DrawFn) -> tuple[World, Policy]:
    """One overloaded link whose excess the movable prefixes can cover, and an alternate
    with room for all of them."""
    cap = draw(st.sampled_from([1e9, 10e9, 100e9]))
    rates = draw(st.lists(st.floats(0.001, 0.2), min_size=1, max_size=30))
    # Below 1.1: demand at max_rate_over_capacity (1.1 x capacity) is implausible by the gate
    # (issue 13) and the cycle goes fail-static, which is right but not what this tests.
    u0 = draw(st.floats(0.905, 1.09))
    movable = sum(rates) * cap
    unexplained = u0 * cap - movable
    if unexplained < 0:  # all traffic is movable: scale the prefixes to the load
        rates = [r * u0 * cap / movable for r in rates]
        unexplained, movable = 0.0, u0 * cap
    if movable < (u0 - 0.85) * cap:
        rates.append(u0 - 0.85 + 0.01)
        unexplained -= rates[-1] * cap
    prefixes = [f"198.18.{j}.0/24" for j in range(len(rates))]
    world = World(
        links=[
            {"id": "hot", "capacity": cap, "peer_type": "pni", "up": True, "drained": False, "v6_bh": False},
            {"id": "big", "capacity": 1000 * cap, "peer_type": "transit", "up": True, "drained": False, "v6_bh": False},
        ],
        routes={"hot": [(p, {"local_pref": 200}) for p in prefixes], "big": list(prefixes)},
        natives={p: ["hot"] for p in prefixes},
        demand={p: r * cap for p, r in zip(prefixes, rates)},
        extra={"hot": max(0.0, unexplained)},
    )
    return world, Policy(
        mode="suggest",
        split_enabled=False,
        max_adds_per_cycle=1000,
        max_moved_fraction_per_link=10.0,
        max_changes_per_cycle=10_000,
        max_moved_fraction_of_pop=10.0,
    )


@PROPS
@given(feasible())
def test_feasible_overload_resolved_in_one_cycle(case: tuple[World, Policy]) -> None:
    world, policy = case
    snap = world.snapshot()
    p = plan(snap, PlannerState(), policy, T0)
    if p.report.util_no_override["hot"] > 0.9:
        assert p.report.overloaded == ("hot",)
        assert p.report.unresolved_bps == {}
        assert p.report.util_projected["hot"] <= 0.85 + EPS
    check_cycle(world, snap, policy, p)


@st.composite
def swinging(draw: st.DrawFn) -> tuple[list[float], list[float], float, Policy]:
    """A hot link whose demand swings with a period of at most ``release_cycles`` cycles,
    around and across its trigger; unexplained traffic (not movable) stays put."""
    rates = draw(st.lists(st.floats(0.005, 0.15), min_size=1, max_size=15))
    unexplained = draw(st.floats(0.0, 0.6))
    cycles = draw(st.integers(2, 6))
    period = draw(st.lists(st.floats(0.5, 1.3), min_size=1, max_size=cycles))
    room = (1.05 - unexplained) / max(period)  # counters above 1.1 x capacity are implausible
    if sum(rates) > room:
        rates = [r * room / sum(rates) for r in rates]
    policy = Policy(
        mode="suggest",
        split_enabled=False,
        release_cycles=cycles,
        hold_s=draw(st.sampled_from([0.0, 30.0, 120.0])),
        max_adds_per_cycle=1000,
        max_moved_fraction_per_link=10.0,
        max_changes_per_cycle=10_000,
        max_moved_fraction_of_pop=10.0,
        max_total_rate_change=100.0,
    )
    return rates, period, unexplained, policy


@PROPS
@given(swinging())
def test_demand_swinging_within_the_release_window_does_not_churn(case) -> None:
    """The release trend covers the swing: once every level of it has been seen (one period),
    no override is released only for another to be added at the next peak — no ADD at all."""
    rates, period, unexplained, policy = case
    cap = 10e9
    prefixes = [f"198.18.{j}.0/24" for j in range(len(rates))]
    routes = {"hot": [(p, {"local_pref": 200}) for p in prefixes], "big": list(prefixes)}
    state, history = PlannerState(), []
    for n in range(len(period) * 12 + 10):
        scale = period[n % len(period)]
        demand = {p: r * scale * cap for p, r in zip(prefixes, rates)}
        hot_rate = unexplained * cap + sum(demand.values())
        snap = snapshot(
            [link("hot", cap, hot_rate, peer_type="pni"), link("big", 1000 * cap, 0.0)], routes, {"hot": demand}
        )
        p = plan(snap, state, policy, T0 + 30 * n)
        assert not p.report.unresolved_bps  # the alternate takes anything: always feasible
        history.append([(i.action, i.reason) for i in p.items if i.action != "REFRESH"])
        if n >= len(period):
            assert not p.by_action("ADD"), (n, history)
        state = p.state
    event(f"released={any(('WITHDRAW', 'RELEASE') in h for h in history)}")


BIG = {"capacity": 0.0, "peer_type": "transit", "up": True, "drained": False, "v6_bh": False}


def _hot(rates: list[float], u0: float, cap: float) -> tuple[list[float], float]:
    """Prefix rates (fractions of ``cap``) scaled so the link's U0 is ``u0`` and its excess
    over the 85 % target is movable (with ``u0`` <= 1.06, within the default 25 % a link
    may shed per cycle); returns (rates in bps, unexplained bps)."""
    movable = sum(rates)
    need = u0 - 0.85
    if movable < need * 1.05:
        rates = [r * need * 1.05 / movable for r in rates]
    if sum(rates) > u0:
        rates = [r * u0 / sum(rates) for r in rates]
    return [r * cap for r in rates], (u0 - sum(rates)) * cap


@st.composite
def many_overloads(draw: st.DrawFn) -> World:
    """2-10 overloaded PNIs, each with its own prefixes and enough of them to reach its
    target; one alternate with room for everything."""
    n = draw(st.integers(2, 10))
    links, routes, natives, demand, extra = [], {"big": []}, {}, {}, {}
    for i in range(n):
        cap = draw(st.sampled_from([1e9, 10e9, 100e9]))
        hot = f"hot{i}"
        links.append({**BIG, "id": hot, "capacity": cap, "peer_type": "pni"})
        rates, extra[hot] = _hot(
            draw(st.lists(st.floats(0.005, 0.12), min_size=1, max_size=12)), draw(st.floats(0.905, 1.06)), cap
        )
        routes[hot] = []
        for j, r in enumerate(rates):
            prefix = f"10.{i}.{j}.0/24"
            routes[hot].append((prefix, {"local_pref": 200}))
            routes["big"].append((prefix, {"local_pref": draw(st.sampled_from([50, 100, 150]))}))
            natives[prefix], demand[prefix] = [hot], r
    links.append({**BIG, "id": "big", "capacity": 1e15})
    return World(links, routes, natives, demand, extra)


@PROPS
@given(many_overloads())
def test_every_feasible_overload_is_resolved_in_the_cycle_that_sees_it(world: World) -> None:
    """Budgets sized to the need: however many links overload at once, each with a fix
    available is at its target after the first cycle (the default ADD budget)."""
    policy = Policy(mode="suggest", split_enabled=False, max_changes_per_cycle=10_000)
    snap = world.snapshot()
    p = plan(snap, PlannerState(), policy, T0)
    check_cycle(world, snap, policy, p)
    hot = [l["id"] for l in world.links if l["id"] != "big"]
    assert set(p.report.overloaded) == {l for l in hot if p.report.util_no_override[l] > 0.9}
    assert p.report.unresolved_bps == {}
    for l in p.report.overloaded:  # at target, unless that takes more than a link may shed per cycle
        movable = sum(r for prefix, r in world.demand.items() if world.natives[prefix] == [l])
        if movable <= policy.max_moved_fraction_per_link * snap.links[hot.index(l)].usable_bps:
            assert p.report.util_projected[l] <= 0.85 + EPS, l


def _fewest(rates: list[float], excess: float, eps: float) -> int:
    """The fewest prefixes whose rates reach ``excess``, by brute force over subsets: of
    those no larger than excess x (1 + eps) when they can reach it, else of all."""
    fit = [r for r in rates if r <= excess * (1 + eps)]
    pool = fit if sum(fit) >= excess else rates
    for k in range(1, len(pool) + 1):
        if any(sum(c) >= excess * (1 - 1e-12) for c in itertools.combinations(pool, k)):
            return k
    raise AssertionError("infeasible")


@PROPS
@given(
    st.lists(st.floats(0.005, 0.2), min_size=1, max_size=10),
    st.floats(0.905, 1.06),
    st.lists(st.sampled_from([50, 100, 150]), min_size=10, max_size=10),
)
def test_moves_are_the_fewest_for_the_relief_needed(rates: list[float], u0: float, prefs: list[int]) -> None:
    """With room everywhere, one overloaded link makes exactly the fewest moves that reach its
    target (checked by brute force), whatever the alternates' preferences; the summary's
    lower bound is that count and the ratio 1."""
    cap = 10e9
    bps, unexplained = _hot(rates, u0, cap)
    prefixes = [f"10.0.{j}.0/24" for j in range(len(bps))]
    world = World(
        [{**BIG, "id": "hot", "capacity": cap, "peer_type": "pni"}, {**BIG, "id": "big", "capacity": 1e15}],
        {
            "hot": [(p, {"local_pref": 200}) for p in prefixes],
            "big": [(p, {"local_pref": lp}) for p, lp in zip(prefixes, prefs)],
        },
        {p: ["hot"] for p in prefixes},
        dict(zip(prefixes, bps)),
        {"hot": unexplained},
    )
    policy = Policy(mode="suggest", split_enabled=False, max_moved_fraction_per_link=1.0)
    snap = world.snapshot()
    p = plan(snap, PlannerState(), policy, T0)
    check_cycle(world, snap, policy, p)
    u0_bps = p.report.util_no_override["hot"] * cap
    if u0_bps <= 0.9 * cap:
        return
    k = _fewest(bps, u0_bps - 0.85 * cap, policy.fit_epsilon)
    assert p.report.adds == k == p.report.moves_lower_bound and p.report.moves_ratio == 1.0
    assert p.report.unresolved_bps == {}


@st.composite
def shared(draw: st.DrawFn) -> tuple[World, dict[str, float], float]:
    """2-4 overloaded links of many small prefixes (at most 1 % of capacity each, so room
    splits almost exactly), one shared alternate preferred by all of them, and a private
    alternate per link that only it can use."""
    n = draw(st.integers(2, 4))
    cap = 10e9
    links, routes, natives, demand, extra, private = [], {"shared": []}, {}, {}, {}, {}
    for i in range(n):
        hot, own = f"hot{i}", f"own{i}"
        links += [
            {**BIG, "id": hot, "capacity": cap, "peer_type": "pni"},
            {**BIG, "id": own, "capacity": cap},
        ]
        count = draw(st.integers(30, 60))
        rates, extra[hot] = _hot([0.01] * count, draw(st.floats(0.92, 1.05)), cap)
        private[hot] = draw(st.floats(0.0, 0.2)) * cap  # room on own: rate 0.85 - room
        routes[hot], routes[own] = [], []
        for j, r in enumerate(rates):
            prefix = f"10.{i}.{j}.0/24"
            routes[hot].append((prefix, {"local_pref": 200}))
            routes["shared"].append((prefix, {"local_pref": 150}))
            routes[own].append((prefix, {"local_pref": 100}))
            natives[prefix], demand[prefix] = [hot], r
        extra[own] = 0.85 * cap - private[hot]
    links.append({**BIG, "id": "shared", "capacity": cap})
    shared_room = draw(st.floats(0.05, 0.25)) * cap
    extra["shared"] = 0.85 * cap - shared_room
    return World(links, routes, natives, demand, extra), private, shared_room


@PROPS
@given(shared())
def test_shared_headroom_resolves_every_overload_that_fits_jointly(case) -> None:
    """When the links' excesses fit in their private alternates plus the shared one (with
    a margin for prefix granularity), every overload is resolved, whatever the order they
    are served in: the first one served does not take the shared room the others need."""
    world, private, room = case
    policy = Policy(mode="suggest", split_enabled=False, max_changes_per_cycle=10_000, max_moved_fraction_per_link=1.0)
    snap = world.snapshot()
    p = plan(snap, PlannerState(), policy, T0)
    check_cycle(world, snap, policy, p)
    cap = 10e9
    overloaded = [l for l in private if p.report.util_no_override[l] > 0.9]
    need = sum(max(0.0, (p.report.util_no_override[l] - 0.85) * cap - private[l]) for l in overloaded)
    # prefix granularity: each link may leave up to a prefix's worth of its private room
    # unused, which the shared room must then take, and may overshoot the shared room's
    # last slot by another (a saved counterexample: 656 Mbit/s needed + one prefix per link
    # "fit" in 898, but 8 x 100 Mbit/s prefixes fill an 859 Mbit/s private room)
    tiny = 2 * 0.011 * cap * len(overloaded)
    event(f"shared needed={need > 0}")
    if need + tiny <= room and all(
        (p.report.util_no_override[l] - 0.85) * cap <= private[l] + room for l in overloaded
    ):
        assert p.report.unresolved_bps == {}, (need, room)
        assert all(p.report.util_projected[l] <= 0.85 + EPS for l in overloaded), (
            need,
            room,
            private,
            p.report.util_no_override,
            p.report.util_projected,
            [(a.from_link, a.to_link, a.rate_bps) for a in p.by_action("ADD")],
        )
