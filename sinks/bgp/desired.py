"""The injector's pure core: what should be on the routers, and the steps to get there.

The recommendations topic is compacted, so its latest record per ``pop|prefix`` *is* the
desired state: ADD/REFRESH present, WITHDRAW or a tombstone absent. :class:`DesiredState`
keeps that and the people's word (approvals, drains); :func:`desired_overrides` turns it,
at one instant, into the routes to hold per PoP after every safety rule; :class:`Reconciler`
diffs that against what was announced. Nothing here does I/O, so restart-safety is by
construction: a new process rebuilds the same state from the same topics and re-announces
the same set, once.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from netpilot.wire.autopilot import Recommendation
from netpilot.wire.injector import ALL_POPS, InjectorControl
from netpilot.wire.links import LinkInventory
from netpilot.wire.routes import Route

REFUSALS = ("bad-prefix", "not-allowed", "unknown-link", "bad-next-hop", "no-route")
"""Why a recommendation is refused (counted, logged and dead-lettered once per id)."""
SKIPS = ("expired", "observe-label", "pending-approval", "rejected", "drained", "over-cap", "rate-limited")
"""Why a valid override is not announced right now (a gauge per PoP)."""


@dataclass(frozen=True)
class Override:
    """One route to hold on every router of a PoP."""

    pop: str
    prefix: str
    link_id: str
    next_hop: str
    rec_id: str
    created_at: float | None
    generated_at: float
    valid_until: float
    rate_bps: float


@dataclass(frozen=True)
class Refusal:
    reason: str
    detail: str


@dataclass
class Network:
    """What the inventory and routes topics say: links, their peers' addresses, reachability."""

    links: dict[tuple[str, str], LinkInventory] = field(default_factory=dict)
    routes: set[tuple[str, str, str]] = field(default_factory=set)

    def apply_inventory(self, key: str, msg: LinkInventory | None) -> None:
        pop, _, link_id = key.partition("|")
        if msg is None:
            self.links.pop((pop, link_id), None)
        else:
            self.links[(msg.pop, msg.link_id)] = msg

    def apply_route(self, key: str, msg: Route | None) -> None:
        pop, link_id, prefix = (key.split("|", 2) + ["", ""])[:3]
        if msg is None:
            self.routes.discard((pop, link_id, _norm(prefix) or prefix))
        else:
            self.routes.add((msg.pop, msg.link_id, _norm(msg.prefix) or msg.prefix))

    def routers(self, pop: str) -> list[str]:
        return sorted({link.router for (p, _), link in self.links.items() if p == pop})

    def link_for_next_hop(self, pop: str, next_hop: str | None) -> str | None:
        if next_hop is None:
            return None
        for (p, link_id), link in self.links.items():
            if p == pop and next_hop in link.next_hops:
                return link_id
        return None


@dataclass(frozen=True)
class Rules:
    """The safety rules of the settings that the pure core needs."""

    max_prefix_len_v4: int = 24
    max_prefix_len_v6: int = 48
    allowed_prefixes: tuple[str, ...] = ()
    deny_prefixes: tuple[str, ...] = ()
    max_active_per_pop: int = 200


def _norm(prefix: str) -> str | None:
    try:
        return str(ipaddress.ip_network(prefix, strict=False))
    except ValueError:
        return None


def _inside(prefix: str, supernets: Iterable[str]) -> bool:
    net = ipaddress.ip_network(prefix)
    return any(
        net.version == s.version and net.subnet_of(s)  # type: ignore[arg-type]
        for s in map(ipaddress.ip_network, supernets)
    )


def check(rec: Recommendation, net: Network, rules: Rules) -> Override | Refusal:
    """A recommendation as an override, or why it must not reach a router."""
    prefix = _norm(rec.prefix)
    if prefix is None:
        return Refusal("bad-prefix", f"{rec.prefix!r} is not a prefix")
    version = ipaddress.ip_network(prefix).version
    limit = rules.max_prefix_len_v4 if version == 4 else rules.max_prefix_len_v6
    if ipaddress.ip_network(prefix).prefixlen > limit:
        return Refusal("not-allowed", f"{prefix} is more specific than /{limit}")
    if rules.deny_prefixes and _inside(prefix, rules.deny_prefixes):
        return Refusal("not-allowed", f"{prefix} is inside deny_prefixes")
    if rules.allowed_prefixes and not _inside(prefix, rules.allowed_prefixes):
        return Refusal("not-allowed", f"{prefix} is outside allowed_prefixes")
    link = net.links.get((rec.pop, rec.to.link_id))
    if link is None:
        return Refusal("unknown-link", f"link {rec.pop}/{rec.to.link_id} is not in the inventory")
    nh = rec.to.next_hop
    if nh is None or nh not in link.next_hops:
        return Refusal(
            "bad-next-hop",
            f"next hop {nh!r} is not a peer address of {rec.to.link_id} (inventory next_hops: {list(link.next_hops)})",
        )
    if ipaddress.ip_address(nh).version != version:
        return Refusal("bad-next-hop", f"next hop {nh} is not IPv{version} like {prefix}")
    # The rule for more-specifics (the planner's split pieces): the prefix itself, or a
    # more-specific of a route the alternate link has, within the length limits above. The
    # named route must actually cover the prefix: a recommendation whose route_prefix or
    # split_from is some other routed prefix proves nothing about this one.
    routed = {n for n in (_norm(p) for p in (rec.to.route_prefix, rec.split_from, prefix) if p) if n}
    if not any((rec.pop, rec.to.link_id, p) in net.routes and _inside(prefix, (p,)) for p in routed):
        return Refusal("no-route", f"{rec.to.link_id} has no route to {prefix} in the routes topic")
    return Override(
        pop=rec.pop,
        prefix=prefix,
        link_id=rec.to.link_id,
        next_hop=nh,
        rec_id=rec.id,
        created_at=rec.created_at,
        generated_at=rec.generated_at,
        valid_until=rec.valid_until,
        rate_bps=rec.rate_bps,
    )


@dataclass
class DesiredState:
    recs: dict[tuple[str, str], Recommendation] = field(default_factory=dict)
    decisions: dict[tuple[str, str], InjectorControl] = field(default_factory=dict)
    drained: dict[str, bool] = field(default_factory=dict)

    def apply_recommendation(self, key: str, msg: Recommendation | None) -> None:
        pop, _, prefix = key.partition("|")
        if msg is None or msg.action == "WITHDRAW":
            self.recs.pop((pop, prefix), None)
        else:
            self.recs[(msg.pop, msg.prefix)] = msg

    def apply_control(self, msg: InjectorControl | None, key: str = "") -> None:
        if msg is None:  # a tombstone forgets the decision / lifts the drain
            kind, _, rest = key.partition("|")
            if kind == "drain":
                self.drained.pop(rest, None)
            else:
                pop, _, prefix = rest.partition("|")
                self.decisions.pop((pop, prefix), None)
        elif msg.kind in ("drain", "resume"):
            self.drained[msg.pop] = msg.kind == "drain"
        elif msg.prefix is not None:
            self.decisions[(msg.pop, msg.prefix)] = msg

    def is_drained(self, pop: str) -> bool:
        return self.drained.get(ALL_POPS, False) or self.drained.get(pop, False)

    def decision(self, rec: Recommendation) -> str | None:
        """``approve``/``reject`` if a person decided on this override instance, else None."""
        d = self.decisions.get((rec.pop, rec.prefix))
        if d is None or (
            d.created_at is not None and rec.created_at is not None and abs(d.created_at - rec.created_at) > 1e-3
        ):
            return None  # no decision, or one about an earlier override of the prefix
        if d.to_link is not None and d.to_link != rec.to.link_id:
            return None
        return d.kind


@dataclass(frozen=True)
class DesiredView:
    overrides: dict[str, dict[str, Override]]
    """Per PoP, prefix -> override to hold."""
    skipped: Counter[tuple[str, str]]
    """(pop, why) -> count of valid overrides not held now."""
    refused: list[tuple[Recommendation, Refusal]]
    pending: list[Override]


def desired_overrides(
    state: DesiredState,
    net: Network,
    rules: Rules,
    mode: str,
    now: float,
    announced: set[tuple[str, str]] = frozenset(),  # type: ignore[assignment]
) -> DesiredView:
    out: dict[str, dict[str, Override]] = {}
    skipped: Counter[tuple[str, str]] = Counter()
    refused: list[tuple[Recommendation, Refusal]] = []
    pending: list[Override] = []
    for rec in state.recs.values():
        if rec.valid_until <= now:  # the autopilot did not refresh it: gone, even if it is dead
            skipped[(rec.pop, "expired")] += 1
            continue
        if rec.mode == "observe":  # the autopilot's what-if: never for a router
            skipped[(rec.pop, "observe-label")] += 1
            continue
        ov = check(rec, net, rules)
        if isinstance(ov, Refusal):
            refused.append((rec, ov))
            continue
        if state.is_drained(rec.pop):
            skipped[(rec.pop, "drained")] += 1
            continue
        if mode == "suggest":
            decided = state.decision(rec)
            if decided == "reject":
                skipped[(rec.pop, "rejected")] += 1
                continue
            if decided != "approve":
                skipped[(rec.pop, "pending-approval")] += 1
                pending.append(ov)
                continue
        out.setdefault(rec.pop, {})[ov.prefix] = ov
    for pop, ovs in out.items():
        if len(ovs) > rules.max_active_per_pop:
            # keep what is in place first (no churn), then the biggest movers
            keep = sorted(ovs.values(), key=lambda o: ((pop, o.prefix) not in announced, -o.rate_bps, o.prefix))
            out[pop] = {o.prefix: o for o in keep[: rules.max_active_per_pop]}
            skipped[(pop, "over-cap")] += len(ovs) - rules.max_active_per_pop
    return DesiredView(out, skipped, refused, pending)


@dataclass(frozen=True)
class Step:
    announce: list[tuple[str, Override]]
    """(router, override)"""
    withdraw: list[tuple[str, str, str]]
    """(router, pop, prefix)"""
    deferred: Counter[str]
    """per PoP, announcements held back by the rate limit"""


@dataclass
class Reconciler:
    """What each router was told, and the diff to the desired set under the rate limit.

    Withdrawals are never rate-limited: taking an override away returns traffic to its best
    path, the safe direction."""

    max_announces_per_cycle: int
    cycle_s: float
    announced: dict[str, dict[str, Override]] = field(default_factory=dict)
    """router -> prefix -> override"""
    _window: dict[str, tuple[float, set[str]]] = field(default_factory=dict)

    def announced_keys(self) -> set[tuple[str, str]]:
        return {(o.pop, o.prefix) for r in self.announced.values() for o in r.values()}

    def plan(self, desired: dict[str, dict[str, Override]], routers_of: dict[str, list[str]], now: float) -> Step:
        announce: list[tuple[str, Override]] = []
        withdraw: list[tuple[str, str, str]] = []
        held: set[tuple[str, str]] = set()
        routers = {r for rs in routers_of.values() for r in rs} | set(self.announced)
        for router in sorted(routers):
            pop_of_router = next((p for p, rs in routers_of.items() if router in rs), None)
            want = desired.get(pop_of_router, {}) if pop_of_router is not None else {}
            have = self.announced.get(router, {})
            for prefix, ov in sorted(have.items()):
                if prefix not in want:
                    withdraw.append((router, ov.pop, prefix))
            for prefix, ov in sorted(want.items(), key=lambda kv: (-kv[1].rate_bps, kv[0])):
                cur = have.get(prefix)
                if cur is not None and cur.next_hop == ov.next_hop:
                    continue
                start, used = self._window.get(ov.pop, (now, set()))
                if now - start >= self.cycle_s:
                    start, used = now, set()
                if prefix not in used and len(used) >= self.max_announces_per_cycle:
                    held.add((ov.pop, prefix))
                    self._window[ov.pop] = (start, used)
                    continue
                used.add(prefix)  # one budget unit per prefix, whatever the number of routers
                self._window[ov.pop] = (start, used)
                announce.append((router, ov))
        return Step(announce, withdraw, Counter(pop for pop, _ in held))

    def done(self, step: Step) -> None:
        for router, _pop, prefix in step.withdraw:
            self.announced.get(router, {}).pop(prefix, None)
        for router, ov in step.announce:
            self.announced.setdefault(router, {})[ov.prefix] = ov

    def forget(self) -> None:
        """The speaker restarted empty: everything must be announced again."""
        self.announced.clear()
