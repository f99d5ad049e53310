"""The simulated network: prefixes, routes, demand over time and where each prefix egresses.

Deterministic from the scenario's seed. Per step it yields, for each PoP, the bytes each
prefix sends and the link that carries them (its preferred link while that link is up and
has the route, else the first alternate that does) — the ground truth the pipeline's
results are checked against.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import numpy as np

from producers.simulator.scenario import Event, Scenario, SimLink, SimPop, SimRouter

AVG_PACKET = np.array([1500, 1200, 576], np.int64)


@dataclass(frozen=True)
class PopModel:
    pop: SimPop
    links: list[tuple[SimRouter, SimLink]]
    weight: np.ndarray  # (P,) demand share per prefix, sums to 1
    reach: np.ndarray  # (L, P) bool: link has a route to the prefix
    order: np.ndarray  # (P, L) link indices by preference for each prefix (preferred first)
    packet_size: np.ndarray  # (P,) bytes per packet of that prefix's traffic


@dataclass(frozen=True)
class Step:
    """One step of one PoP: bytes and packets per prefix and the link index carrying them (-1: none)."""

    t: float
    pop: str
    bytes: np.ndarray
    packets: np.ndarray
    link: np.ndarray


class NetworkModel:
    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        rng = np.random.default_rng(scenario.seed)
        self.prefixes = _prefixes(scenario, rng)
        self.prefix_len = np.array([p.prefixlen for p in self.prefixes], np.uint8)
        self.is_v4 = np.array([p.version == 4 for p in self.prefixes])
        # network addresses in the flows/1 16-byte layout (IPv4-mapped), for vectorised use
        self.network16 = np.frombuffer(
            b"".join(
                (b"\x00" * 10 + b"\xff\xff" + p.network_address.packed) if p.version == 4 else p.network_address.packed
                for p in self.prefixes
            ),
            np.uint8,
        ).reshape(-1, 16)
        self.origin_as = rng.integers(64512, 65534, len(self.prefixes)).astype(np.uint32)
        self.pops = [self._pop_model(p, rng) for p in scenario.pops]

    def _pop_model(self, pop: SimPop, rng: np.random.Generator) -> PopModel:
        n = len(self.prefixes)
        links = [(r, l) for r in pop.routers for l in r.links]
        ranks = rng.permutation(n) + 1
        weight = 1.0 / ranks**self.scenario.prefixes.zipf_s
        weight /= weight.sum()
        reach = np.zeros((len(links), n), bool)
        for i, (_, link) in enumerate(links):
            reach[i] = rng.random(n) < link.reach
        # a prefix nobody reaches is reached by the link with the widest reach (transit)
        widest = int(np.argmax([l.reach for _, l in links]))
        reach[widest, ~reach.any(axis=0)] = True
        # preference: random draw weighted by link.preference among the links that reach
        pref = np.array([l.preference for _, l in links])
        score = rng.random((n, len(links))) ** (1.0 / pref)  # weighted random ordering
        score[~reach.T] = -1.0
        order = np.argsort(-score, axis=1, kind="stable")
        packet_size = AVG_PACKET[rng.integers(0, len(AVG_PACKET), n)]
        return PopModel(pop, links, weight, reach, order, packet_size)

    def routes(self) -> list[dict]:
        """Every (pop, link, prefix) route, with the preferred link's routes first (local_pref)."""
        out = []
        peers = self.peer_addresses()
        for pm in self.pops:
            for li, (_router, link) in enumerate(pm.links):
                preferred = pm.order[:, 0] == li
                for pi in np.nonzero(pm.reach[li])[0]:
                    out.append(
                        {
                            "pop": pm.pop.name,
                            "link": link.link_id,
                            "prefix": str(self.prefixes[pi]),
                            "next_hop": peers[link.link_id][0 if self.is_v4[pi] else 1],
                            "as_path": [link.peer_asn, int(self.origin_as[pi])]
                            if link.peer_type == "transit"
                            else [link.peer_asn]
                            if link.peer_asn == self.origin_as[pi]
                            else [link.peer_asn, int(self.origin_as[pi])],
                            "local_pref": 200 if preferred[pi] else 100,
                        }
                    )
        return out

    def peer_addresses(self) -> dict[str, tuple[str, str]]:
        """Per link, its BGP peer's (IPv4, IPv6) address: the next hop of its routes, what an
        override names to send a prefix out of that link."""
        return {
            l.link_id: (f"198.51.100.{10 + k}", f"2001:db8:ffff::{10 + k:x}")
            for k, (_, _, l) in enumerate(self.scenario.links())
        }

    def step(self, pm: PopModel, t: float, steer: np.ndarray | None = None) -> Step:
        """``steer``: per prefix, the link index a router's selected route sends it to
        (an applied override), -1 for its own best path."""
        sc = self.scenario
        diurnal = 1.0 + sc.diurnal_amplitude * np.sin(2 * np.pi * t / sc.diurnal_period_s)
        rate_bps = pm.pop.peak_bps / (1 + sc.diurnal_amplitude) * diurnal * pm.weight
        link_ids = [l.link_id for _, l in pm.links]
        up = np.ones(len(pm.links), bool)
        reach = pm.reach.copy()
        for ev in sc.events:
            if not _active(ev, t) or ev.link_id not in link_ids:
                continue
            li = link_ids.index(ev.link_id)
            if ev.kind == "surge":
                rate_bps = np.where(pm.order[:, 0] == li, rate_bps * ev.factor, rate_bps)
            elif ev.kind == "link_down":
                up[li] = False
            elif ev.kind == "route_withdraw":
                # deterministic: the prefixes with the lowest index hash lose the route
                idx = np.nonzero(reach[li])[0]
                cut = idx[(idx * 2654435761 % 1000) < ev.share * 1000]
                reach[li, cut] = False
        usable = up[pm.order] & np.take_along_axis(reach.T, pm.order, axis=1)  # (P, L) in preference order
        first = np.argmax(usable, axis=1)
        has = usable[np.arange(len(first)), first]
        link = np.where(has, pm.order[np.arange(len(first)), first], -1)
        if steer is not None:
            # the router follows the override while its link is up and reaches the prefix
            # (else the next hop is unusable and the best native path carries the traffic)
            ok = steer >= 0
            idx = np.nonzero(ok)[0]
            usable_alt = up[steer[idx]] & reach[steer[idx], idx]
            link[idx[usable_alt]] = steer[idx[usable_alt]]
        packets = np.floor(rate_bps * sc.step_s / 8 / pm.packet_size).astype(np.int64)
        return Step(t, pm.pop.name, packets * pm.packet_size, packets, link)


def _active(ev: Event, t: float) -> bool:
    return ev.at_s <= t and (ev.until_s is None or t < ev.until_s)


def _prefixes(sc: Scenario, rng: np.random.Generator) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    base4 = int(ipaddress.IPv4Address("198.18.0.0"))
    v4 = sorted(rng.choice(512, sc.prefixes.ipv4, replace=False))
    out: list = [ipaddress.IPv4Network((base4 + int(i) * 256, 24)) for i in v4]
    base6 = int(ipaddress.IPv6Address("2001:db8::"))
    v6 = sorted(rng.choice(65536, sc.prefixes.ipv6, replace=False)) if sc.prefixes.ipv6 else []
    out += [ipaddress.IPv6Network((base6 + (int(i) << 80), 48)) for i in v6]
    return out
