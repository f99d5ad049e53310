"""Running a scenario: datagrams over UDP to the collector, link counters to Kafka, truth to files.

What a real network would emit, and how:
* flows — NetFlow v9 / IPFIX / sFlow v5 datagrams over UDP, from the router's exporter
  address (any 127.0.0.0/8 address, so each router is a distinct exporter), with the
  router's sampling rate (and the v9/IPFIX sampling options template);
* interface counters — **as link-stats/1 messages published to Kafka** (the shape the SNMP
  poller publishes, ``source="simulator"``), cumulative 64-bit out-octets consistent with
  the traffic, every ``stats_interval_s``; a link offered more than its capacity sends
  (and counts) only its capacity, while its flows show the whole offered demand;
* the inventory and the routes — YAML files in the output folder, in the formats
  ``netpilot inventory publish`` and ``netpilot routes load`` read;
* the ground truth — ``truth_links.csv`` (bytes offered and sent per step and link) and
  ``truth_prefixes.csv`` (bytes per step, link and prefix).
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import yaml

from netpilot.wire.flows import ipv4_to_addr
from producers.simulator.encode import FlowRecords, SflowExporter, TemplateExporter
from producers.simulator.model import NetworkModel, PopModel, Step
from producers.simulator.scenario import Scenario, SimRouter

OUR_AS = 64496


@dataclass
class SimStats:
    steps: int = 0
    datagrams: int = 0
    records: int = 0
    bytes_true: int = 0
    link_stats: int = 0
    lag_s: float = 0.0
    per_link_bytes: dict[str, int] = field(default_factory=dict)


class Simulator:
    def __init__(
        self,
        scenario: Scenario,
        out_dir: Path,
        netflow_addr: tuple[str, int] = ("127.0.0.1", 2055),
        sflow_addr: tuple[str, int] = ("127.0.0.1", 6343),
        realtime: bool = True,
        start_ms: int | None = None,
        link_stats_sink: LinkStatsSink | None = None,
        pcap_path: Path | None = None,
        steering: RibSteering | None = None,
    ) -> None:
        self.sc = scenario
        self.model = NetworkModel(scenario)
        self.out_dir = out_dir
        self.netflow_addr = netflow_addr
        self.sflow_addr = sflow_addr
        self.realtime = realtime
        self.start_ms = start_ms if start_ms is not None else int(time.time() * 1000)
        self.sink = link_stats_sink
        self.rng = np.random.default_rng(scenario.seed + 1)
        self.stats = SimStats()
        self._sockets: dict[str, socket.socket] = {}
        self._exporters: dict[str, TemplateExporter | SflowExporter] = {}
        boot = self.start_ms - 3_600_000
        for _, r in {(p.name, r.name): (p, r) for p in scenario.pops for r in p.routers}.values():
            if r.protocol == "sflow5":
                self._exporters[r.name] = SflowExporter(int(ipaddress.IPv4Address(r.exporter)), r.sampling_rate, boot)
            else:
                self._exporters[r.name] = TemplateExporter(
                    9 if r.protocol == "netflow9" else 10, r.observation_domain, r.sampling_rate, boot
                )
        self._counters = {l.link_id: int(self.rng.integers(0, 2**40)) for _, _, l in scenario.links()}
        self._pcap = PcapRecorder(pcap_path) if pcap_path else None
        self.steering = steering
        self._truth_links: list[dict] = []
        self._truth_prefixes: list[pl.DataFrame] = []
        # (scenario time, wall clock) of each step as it ran: a real-time run can fall behind
        # the clock, and whoever compares the truth with wall-clock events (recommendations,
        # routes applied) must map between the two through what actually happened.
        self._step_walls: list[dict[str, float]] = []

    # -- files ----------------------------------------------------------------------------
    def write_network_files(self) -> tuple[Path, Path]:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        pops: dict = {}
        peers = self.model.peer_addresses()
        for p in self.sc.pops:
            routers = {}
            for r in p.routers:
                # counters: external -- the simulator publishes link-stats itself (no snmpd)
                routers[r.name] = {
                    "exporters": [r.exporter],
                    "counters": "external",
                    "links": {
                        l.link_id: {
                            "if_index": l.if_index,
                            "capacity": l.capacity_bps,
                            "peer_asn": l.peer_asn,
                            "peer_type": l.peer_type,
                            "next_hops": list(peers[l.link_id]),
                        }
                        for l in r.links
                    },
                }
            pops[p.name] = {"routers": routers}
        inv = self.out_dir / "inventory.yaml"
        inv.write_text("# generated by `netpilot simulate`\n" + yaml.safe_dump({"pops": pops}, sort_keys=False))
        routes = self.out_dir / "routes.yaml"
        routes.write_text(
            "# generated by `netpilot simulate`\n" + yaml.safe_dump({"routes": self.model.routes()}, sort_keys=False)
        )
        return inv, routes

    def write_truth(self) -> tuple[Path, Path]:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        links = self.out_dir / "truth_links.csv"
        pl.DataFrame(self._truth_links).write_csv(links) if self._truth_links else links.write_text("")
        prefixes = self.out_dir / "truth_prefixes.csv"
        if self._truth_prefixes:
            pl.concat(self._truth_prefixes).write_csv(prefixes)
        if self._step_walls:
            pl.DataFrame(self._step_walls).write_csv(self.out_dir / "steps.csv")
        return links, prefixes

    # -- running --------------------------------------------------------------------------
    def run(self, stop: callable | None = None) -> SimStats:  # type: ignore[valid-type]
        steps = int(round(self.sc.duration_s / self.sc.step_s))
        next_stats = self.sc.stats_interval_s
        wall0 = time.monotonic()
        self._emit_counters(0.0)  # the poller's first reading: counters before any traffic
        try:
            for k in range(steps):
                t = k * self.sc.step_s
                if stop is not None and stop():
                    break
                self._step_walls.append({"t": t, "wall": time.time()})
                for pm in self.model.pops:
                    steer = self.steering.steer(pm) if self.steering is not None else None
                    self._emit_step(pm, self.model.step(pm, t, steer), t)
                if t + self.sc.step_s >= next_stats - 1e-9:
                    self._emit_counters(t + self.sc.step_s)
                    next_stats += self.sc.stats_interval_s
                self.stats.steps += 1
                if self.realtime:
                    ahead = wall0 + t + self.sc.step_s - time.monotonic()
                    if ahead > 0:
                        time.sleep(ahead)
                    else:
                        self.stats.lag_s = -ahead
        finally:
            for s in self._sockets.values():
                s.close()
            if self._pcap is not None:
                self._pcap.close()
        return self.stats

    def _socket(self, router: SimRouter) -> socket.socket:
        s = self._sockets.get(router.name)
        if s is None:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
            s.bind((router.exporter, 0))
            self._sockets[router.name] = s
        return s

    def _emit_step(self, pm: PopModel, st: Step, t: float) -> None:
        step_end_ms = self.start_ms + int((t + self.sc.step_s) * 1000)
        routed = st.link >= 0
        for li, (_router, link) in enumerate(pm.links):
            sel = np.nonzero(routed & (st.link == li) & (st.packets > 0))[0]
            b = int(st.bytes[sel].sum())
            # A link sends at most its line rate: beyond it the egress queue drops, so its
            # counters saturate while the flows (sampled at ingress) still show the offered
            # demand, as on a real router in a surge.
            sent = min(b, int(link.capacity_bps * self.sc.step_s / 8))
            self._counters[link.link_id] += sent
            self.stats.bytes_true += b
            self.stats.per_link_bytes[link.link_id] = self.stats.per_link_bytes.get(link.link_id, 0) + b
            self._truth_links.append(
                {
                    "t": t,
                    "pop": pm.pop.name,
                    "link_id": link.link_id,
                    "bytes": b,  # offered (what the flows show)
                    "sent": sent,  # what the interface counters count
                    "packets": int(st.packets[sel].sum()),
                }
            )
            if len(sel):
                self._truth_prefixes.append(
                    pl.DataFrame(
                        {
                            "t": np.full(len(sel), t),
                            "pop": [pm.pop.name] * len(sel),
                            "link_id": [link.link_id] * len(sel),
                            "prefix": [str(self.model.prefixes[i]) for i in sel],
                            "bytes": st.bytes[sel],
                        }
                    )
                )
        for router in pm.pop.routers:
            idx = [li for li, (r, _) in enumerate(pm.links) if r.name == router.name]
            sel = np.nonzero(routed & np.isin(st.link, idx) & (st.packets > 0))[0]
            if not len(sel):
                continue
            exp = self._exporters[router.name]
            if isinstance(exp, SflowExporter):
                records, frame_len = self._sflow_samples(pm, st, sel, step_end_ms)
                datagrams = exp.encode(records, frame_len, step_end_ms)
                dest = self.sflow_addr
            else:
                records = self._flow_records(pm, st, sel, router.sampling_rate, step_end_ms)
                datagrams = exp.encode(records, step_end_ms)
                dest = self.netflow_addr
            sock = self._socket(router)
            for d in datagrams:
                sock.sendto(d, dest)
            if self._pcap is not None:
                self._pcap.write(router.exporter, sock.getsockname()[1], dest, datagrams, step_end_ms)
            self.stats.datagrams += len(datagrams)
            self.stats.records += len(records)

    def _flow_records(self, pm: PopModel, st: Step, sel: np.ndarray, rate: int, end_ms: int) -> FlowRecords:
        budget = self.sc.flows_per_s * self.sc.step_s * len(sel) / max(1, int((st.packets > 0).sum()))
        pk = st.packets[sel]
        # sampled packet counts, unbiased: floor(p/N) plus one with probability frac(p/N)
        exported = pk // rate + (self.rng.random(len(pk)) < (pk % rate) / rate)
        keep = exported > 0
        sel, exported = sel[keep], exported[keep]
        k = np.maximum(1, np.floor(budget * exported / max(1, exported.sum()))).astype(np.int64)
        k = np.minimum(k, exported)
        group = np.repeat(np.arange(len(sel)), k)
        starts = np.cumsum(k) - k
        w = self.rng.random(len(group)) + 0.2
        share = w / np.add.reduceat(w, starts)[group]
        parts = np.floor(exported[group] * share).astype(np.int64)
        rest = exported - np.add.reduceat(parts, starts)
        rank = np.arange(len(group)) - starts[group]
        parts += rank < rest[group]
        pi = sel[group]
        return self._records(pm, st, pi, parts, parts * pm.packet_size[pi], end_ms)

    def _sflow_samples(self, pm: PopModel, st: Step, sel: np.ndarray, end_ms: int) -> tuple[FlowRecords, np.ndarray]:
        router = pm.links[int(st.link[sel[0]])][0]
        n_samples = self.rng.binomial(st.packets[sel], 1.0 / router.sampling_rate)
        pi = np.repeat(sel, n_samples)
        ones = np.ones(len(pi), np.int64)
        return self._records(pm, st, pi, ones, pm.packet_size[pi], end_ms), pm.packet_size[pi].astype(np.uint32)

    def _records(
        self, pm: PopModel, st: Step, pi: np.ndarray, packets: np.ndarray, nbytes: np.ndarray, end_ms: int
    ) -> FlowRecords:
        n = len(pi)
        rng = self.rng
        is_v4 = self.model.is_v4[pi]
        dst = np.zeros((n, 16), np.uint8)
        src = np.zeros((n, 16), np.uint8)
        nh = np.zeros((n, 16), np.uint8)
        dst[:] = self.model.network16[pi]
        v4 = np.nonzero(is_v4)[0]
        v6 = np.nonzero(~is_v4)[0]
        dst[v4, 15] = rng.integers(1, 255, len(v4))
        dst[v6, 8:] = rng.integers(0, 256, (len(v6), 8))
        src[v4] = ipv4_to_addr(rng.integers(0xCB007100, 0xCB0071FF, len(v4), dtype=np.uint32))  # 203.0.113.0/24
        src[v6, :6] = [0x20, 0x01, 0x0D, 0xB8, 0xFF, 0xFF]
        src[v6, 8:] = rng.integers(0, 256, (len(v6), 8))
        link_idx = st.link[pi]
        nh[v4] = ipv4_to_addr(0xC0000200 + 100 + link_idx[v4].astype(np.uint32))  # 192.0.2.100+i
        nh[v6, :4] = [0x20, 0x01, 0x0D, 0xB8]
        nh[v6, 15] = 100 + link_idx[v6]
        out_if = np.array([l.if_index for _, l in pm.links], np.uint32)[link_idx]
        dur = rng.integers(0, int(self.sc.step_s * 1000), n)
        end = end_ms - rng.integers(0, 200, n)
        return FlowRecords(
            src=src,
            dst=dst,
            is_v4=is_v4,
            src_port=rng.integers(1024, 65535, n).astype(np.uint16),
            dst_port=rng.choice(np.array([443, 80, 53, 8443], np.uint16), n),
            ip_proto=np.full(n, 6, np.uint8),
            tcp_flags=np.full(n, 0x1B, np.uint8),
            in_if=np.full(n, 1, np.uint32),
            out_if=out_if,
            bytes=nbytes.astype(np.uint64),
            packets=packets.astype(np.uint64),
            src_as=np.full(n, OUR_AS, np.uint32),
            dst_as=self.model.origin_as[pi],
            next_hop=nh,
            start_ms=(end - dur).astype(np.int64),
            end_ms=end.astype(np.int64),
        )

    def _emit_counters(self, t: float) -> None:
        if self.sink is None:
            return
        for pop, router, link in self.sc.links():
            down = any(
                e.kind == "link_down"
                and e.link_id == link.link_id
                and e.at_s <= t
                and (e.until_s is None or t < e.until_s)
                for e in self.sc.events
            )
            self.sink.publish(
                pop.name,
                router.name,
                link.link_id,
                link.if_index,
                self.start_ms / 1000 + t,
                self._counters[link.link_id] % 2**64,
                link.capacity_bps,
                not down,
            )
            self.stats.link_stats += 1
        self.sink.flush()


class RibSteering:
    """The simulated PoP routers obey the injector: each step, every prefix whose best route
    in its router's real BIRD (read with ``birdc``) carries the injector's community goes out
    of the link whose peer address is that route's next hop. BIRD holds only the injected
    routes; the native choice stays the model's, as a router's eBGP-learned best path."""

    def __init__(
        self, model: NetworkModel, readers: Mapping[str, object], community: str, every_s: float = 0.5
    ) -> None:
        self.model = model
        self.readers = readers
        self.community = community
        self.every_s = every_s
        self.errors = 0
        self.steered: dict[str, int] = {}
        self._index = {str(p): i for i, p in enumerate(model.prefixes)}
        peers = model.peer_addresses()
        self._link_of_hop = {hop: link for link, hops in peers.items() for hop in hops}
        self._cache: dict[str, tuple[float, np.ndarray]] = {}

    def steer(self, pm: PopModel) -> np.ndarray:
        now = time.monotonic()
        hit = self._cache.get(pm.pop.name)
        if hit is not None and now - hit[0] < self.every_s:
            return hit[1]
        from netpilot.rib import RibReadError

        link_index = {l.link_id: i for i, (_, l) in enumerate(pm.links)}
        out = np.full(len(self.model.prefixes), -1, np.int64)
        for router in pm.pop.routers:
            reader = self.readers.get(router.name)
            if reader is None:
                continue
            try:
                routes = reader.routes(self.community)  # type: ignore[attr-defined]
            except RibReadError:
                self.errors += 1  # a router that does not answer keeps forwarding as before
                return hit[1] if hit is not None else out
            for r in routes:
                pi = self._index.get(r.prefix)
                li = link_index.get(self._link_of_hop.get(r.next_hop or "", ""), -1)
                if r.best and pi is not None and li >= 0:
                    out[pi] = li
        self.steered[pm.pop.name] = int((out >= 0).sum())
        self._cache[pm.pop.name] = (now, out)
        return out


class LinkStatsSink:
    """Publishes counters as link-stats/1 to the catalog topic, computing the rate itself."""

    def __init__(self, producer: object, topic: str) -> None:
        self._producer = producer
        self._topic = topic
        self._last: dict[str, tuple[float, int]] = {}

    def publish(
        self, pop: str, router: str, link_id: str, if_index: int, ts: float, octets: int, speed_bps: float, up: bool
    ) -> None:
        from netpilot.wire.links import LinkStats

        prev = self._last.get(link_id)
        self._last[link_id] = (ts, octets)
        interval = bps = None
        if prev is not None and ts > prev[0]:
            interval = ts - prev[0]
            bps = ((octets - prev[1]) % 2**64) * 8 / interval
        msg = LinkStats(
            pop=pop,
            router=router,
            link_id=link_id,
            if_index=if_index,
            source="simulator",
            ts=ts,
            interval_s=interval,
            out_octets=octets,
            out_bps=bps,
            speed_bps=speed_bps,
            oper_up=up,
        )
        self._producer.produce(self._topic, msg.encode(), key=pop, headers=LinkStats.headers())  # type: ignore[attr-defined]

    def flush(self) -> None:
        self._producer.poll(0)  # type: ignore[attr-defined]


class PcapRecorder:
    """Also writes every datagram sent into a pcap (for `netpilot decode`, tshark and replays)."""

    def __init__(self, path: Path) -> None:
        import dpkt

        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(path, "wb")  # noqa: SIM115 - owned by this writer, closed by close()
        self._writer = dpkt.pcap.Writer(self._fh)

    def write(self, src: str, sport: int, dest: tuple[str, int], datagrams: list[bytes], ts_ms: int) -> None:
        import dpkt

        s, d = socket.inet_aton(src), socket.inet_aton(dest[0])
        for payload in datagrams:
            udp = dpkt.udp.UDP(sport=sport, dport=dest[1], data=payload)
            udp.ulen = len(udp)
            ip = dpkt.ip.IP(src=s, dst=d, p=dpkt.ip.IP_PROTO_UDP, data=udp, ttl=64)
            ip.len = len(ip)
            eth = dpkt.ethernet.Ethernet(
                src=b"\x02\x00\x00\x00\x00\x01",
                dst=b"\x02\x00\x00\x00\x00\x02",
                type=dpkt.ethernet.ETH_TYPE_IP,
                data=ip,
            )
            self._writer.writepkt(bytes(eth), ts=ts_ms / 1000)

    def close(self) -> None:
        self._writer.close()
