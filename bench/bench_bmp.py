"""BMP routes ingested per second: decoded, applied to the RIB state and turned into route/1
records (and, with --kafka, produced to Kafka).

Two sources:

* ``replay`` (default; self-contained): a synthetic BMP stream of ``--routes`` IPv4/IPv6
  prefixes from ``--peers`` peers, ``--per-update`` prefixes per BGP UPDATE (1 is how FRR
  sends them; Junos and IOS XR pack many per UPDATE), 1,000 distinct attribute sets, fed
  through the collector's session code in 64 KiB reads as the listener does;
* ``--frr``: a real FRR 8.4 bgpd (``-M bmp``) whose BIRD peer announces ``--routes``
  prefixes; the collector's listener is started once FRR holds them all, and the figure is
  the time from FRR's BMP connect to the last record (root; frr and bird2 installed).

    .venv/bin/python bench/bench_bmp.py [--routes 200000] [--per-update 1] [--peers 2] [--kafka]
    .venv/bin/python bench/bench_bmp.py --frr [--routes 20000] [--kafka]

``--kafka`` publishes to a fresh topic prefix on ``--bootstrap`` (default: the local broker
of ``netpilot dev kafka up``, started if needed).
"""

from __future__ import annotations

import argparse
import ipaddress
import resource
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from netpilot import catalog
from netpilot.kafka.admin import TopicAdmin
from netpilot.obs.metrics import sample_value
from netpilot.settings import KafkaSettings, load_settings
from netpilot.wire.links import LinkInventory
from producers.routes.bmp.linkmap import LinkMap
from producers.routes.bmp.rib import Change, RibState
from producers.routes.bmp.service import BmpCollectorService
from producers.routes.bmp.session import BmpSession
from producers.routes.bmp.settings import BmpSettings
from tests.producers.routes.bmp import bmpwriter as w

ROUTER = "bench-r1"


def prefixes(n: int) -> Iterator[str]:
    """``n`` distinct prefixes in documentation space: about 3/4 IPv4 (/30s of
    198.18.0.0/15, 32,768 at most), the rest IPv6 (/56s of 2001:db8::/32)."""
    n4 = min(n * 3 // 4, 32768)
    v4 = ipaddress.ip_network("198.18.0.0/15").subnets(new_prefix=30)
    v6 = ipaddress.ip_network("2001:db8::/32").subnets(new_prefix=56)
    for i in range(n):
        yield str(next(v4)) if i < n4 else str(next(v6))


def stream(peers: int, routes: int, per_update: int) -> bytes:
    out = [w.initiation(ROUTER)]
    addrs = [f"198.51.100.{i + 1}" for i in range(peers)]
    out += [w.peer_up(a, 64500 + i) for i, a in enumerate(addrs)]
    share = routes // peers
    allp = list(prefixes(share * peers))
    for i, a in enumerate(addrs):
        mine = allp[i * share : (i + 1) * share]
        for j in range(0, len(mine), per_update):
            chunk = mine[j : j + per_update]
            asp = (64500 + i, 65000 + (j // per_update) % 1000)
            v4 = [p for p in chunk if ":" not in p]
            v6 = [p for p in chunk if ":" in p]
            if v4:
                out.append(w.route_monitoring(a, 64500 + i, w.update(v4, [], w.attrs(asp, next_hop=a))))
            if v6:
                out.append(w.route_monitoring(a, 64500 + i, w.update(v6, [], w.attrs(asp), next_hop6="2001:db8::1")))
        out += [w.route_monitoring(a, 64500 + i, w.eor(4)), w.route_monitoring(a, 64500 + i, w.eor(6))]
    return b"".join(out)


def kafka_publisher(bootstrap: str) -> tuple[KafkaSettings, Callable[[list[Change]], None], Callable[[], None]]:
    from netpilot.kafka.partitioning import partition_for
    from netpilot.kafka.producer import KafkaProducer, ProducerOptions
    from netpilot.wire.routes import Route

    if not bootstrap:
        from netpilot.dev.kafka import LocalKafka

        bootstrap = LocalKafka().up().bootstrap
    kafka = KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=f"bench{uuid.uuid4().hex[:6]}.")
    TopicAdmin(kafka).sync([catalog.ROUTES])
    producer = KafkaProducer(kafka, ProducerOptions(linger_ms=20))
    topic = kafka.topic(catalog.ROUTES)
    n = producer.partition_count(topic)
    headers = Route.headers()

    def publish(changes: list[Change]) -> None:
        for c in changes:
            producer.produce(topic, c.value, key=c.key, headers=headers, partition=partition_for(c.link.pop, n))
        producer.poll(0)

    return kafka, publish, lambda: producer.flush(120)


def replay(args: argparse.Namespace) -> None:
    data = stream(args.peers, args.routes, args.per_update)
    links = [
        LinkInventory(
            pop="bench", link_id=f"l{i}", router=ROUTER, capacity_bps=1e11, next_hops=(f"198.51.100.{i + 1}",)
        )
        for i in range(args.peers)
    ]
    publish: Callable[[list[Change]], None] = lambda changes: None  # noqa: E731
    flush: Callable[[], None] = lambda: None  # noqa: E731
    if args.kafka:
        _, publish, flush = kafka_publisher(args.bootstrap)
    state = RibState()
    session = BmpSession("198.51.100.254", state, LinkMap.build(links))
    records = 0
    cpu0, t0 = time.process_time(), time.perf_counter()
    for i in range(0, len(data), 1 << 16):
        session.feed(data[i : i + (1 << 16)], now=0.0)
        changes = state.changes()
        records += len(changes)
        publish(changes)
    state.tick(0.0)
    records += len(state.changes())
    flush()
    dt, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    t = session.take_tally()
    print(
        f"replay: {t.announced:,} routes from {args.peers} peers ({args.per_update}/UPDATE, {len(data) / 1e6:.1f} MB "
        f"of BMP) -> {records:,} records{' to Kafka' if args.kafka else ''} in {dt:.2f} s: "
        f"{t.announced / dt:,.0f} routes/s; CPU {cpu:.2f} s = {t.announced / cpu:,.0f} routes per CPU-second; peak RSS "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )


def frr(args: argparse.Namespace) -> None:
    from tests.producers.routes.bmp.bmplab import BmpLab, free_port, wait_until

    routes = list(prefixes(args.routes))
    port = free_port()
    lab = BmpLab(port, [("peer-a", routes)]).open()
    try:
        t0 = time.monotonic()
        wait_until(lambda: lab.received("peer-a") == len(routes), 600, "FRR holds every route", every=0.5)
        print(f"FRR received {len(routes):,} routes from BIRD in {time.monotonic() - t0:.1f} s")
        work = Path(tempfile.mkdtemp(prefix="netpilot-bench-bmp-"))
        over: dict[str, object] = {
            "listen": f"127.0.0.1:{port}",
            "inventory": str(lab.inventory(work / "inventory.yaml", {"transit-a": "peer-a"})),
            "settle_s": 5,
        }
        published: list[int] = [0]

        def count(changes: list[Change]) -> None:
            published[0] += len(changes)

        publish = count
        flush: Callable[[], None] = lambda: None  # noqa: E731
        if args.kafka:
            kafka, to_kafka, flush = kafka_publisher(args.bootstrap)
            over["kafka"] = kafka.model_dump()

            def publish(changes: list[Change]) -> None:
                count(changes)
                to_kafka(changes)

        svc = BmpCollectorService(load_settings(BmpSettings, overrides=over), publish=publish)
        cpu0 = time.process_time()
        svc.start()
        try:
            wait_until(lambda: published[0] >= len(routes), 600, "every route published", every=0.01)
            first = svc.state.sessions["bmp-r1"].started
            dt = time.monotonic() - first
            flush()
            cpu = time.process_time() - cpu0
            got = sample_value(svc.registry, "netpilot_bmp_routes_total", {"action": "announce"})
            print(
                f"frr: {got:,.0f} routes over BMP -> {published[0]:,} records{' to Kafka' if args.kafka else ''} "
                f"in {dt:.2f} s from FRR's connect: {published[0] / dt:,.0f} routes/s; collector CPU {cpu:.2f} s = "
                f"{published[0] / cpu:,.0f} routes per CPU-second"
            )
        finally:
            svc.stop()
    finally:
        lab.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--routes", type=int, default=0, help="default: 200,000 (replay) or 20,000 (--frr)")
    ap.add_argument("--peers", type=int, default=2)
    ap.add_argument("--per-update", type=int, default=1)
    ap.add_argument("--frr", action="store_true")
    ap.add_argument("--kafka", action="store_true")
    ap.add_argument("--bootstrap", default="")
    args = ap.parse_args()
    args.routes = args.routes or (20_000 if args.frr else 200_000)
    (frr if args.frr else replay)(args)


if __name__ == "__main__":
    main()
