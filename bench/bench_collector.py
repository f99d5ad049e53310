"""The running collector end to end: UDP datagrams in, flows batches delivered to Kafka.

    .venv/bin/python bench/bench_collector.py [--bootstrap 127.0.0.1:19092] [--seconds 10]
        [--rate 0]   # datagrams/s the sender aims at; 0 = as fast as it can
        [--batch-max-ms 500]   # the collector's batch_max_ms (the longest a decode pass stays open)

Needs a broker (``netpilot dev kafka up``, or the tests' one on 19092). Topics are created
under a unique prefix and deleted afterwards. A separate sender *process* replays IPFIX
datagrams (30 flows each, the shape of bench_decode.py) to the collector on 127.0.0.1; the
collector runs in this process exactly as ``netpilot collector run`` does (receive thread,
decode + enrich + publish worker). Prints flows/s received, decoded and delivered, and
every loss (socket, queue) so a figure never hides drops, and the CPU time the collector
process used while the sender ran (all its threads: receive, decode, librdkafka).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_decode import ipfix_datagrams
from prometheus_client import CollectorRegistry

from netpilot import catalog
from netpilot.kafka.admin import TopicAdmin
from netpilot.obs.metrics import sample_value
from netpilot.settings import KafkaSettings, MetricsSettings
from producers.collector.service import CollectorService
from producers.collector.settings import CollectorSettings


def sender(port: int, seconds: float, rate: float, sent: mp.Value) -> None:  # type: ignore[type-arg]
    import random

    dgs = ipfix_datagrams(1000, random.Random(2))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    n, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds:
        if rate and n > elapsed * rate:
            time.sleep(0.0005)
            continue
        s.sendto(dgs[n % len(dgs)], ("127.0.0.1", port))
        n += 1
    sent.value = n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", default="127.0.0.1:19092")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=0.0)
    ap.add_argument("--batch-max-ms", type=int, default=CollectorSettings().batch_max_ms)
    args = ap.parse_args()
    kafka = KafkaSettings(bootstrap_servers=args.bootstrap, topic_prefix=f"bench{uuid.uuid4().hex[:8]}.")
    admin = TopicAdmin(kafka)
    admin.sync(catalog.ALL_TOPICS)
    inv = Path(tempfile.mkdtemp()) / "inventory.yaml"
    inv.write_text(
        "pops: [{name: bench, routers: [{name: r1, exporter: 127.0.0.1, "
        "links: [{link_id: l1, if_index: 2}]}]}]\nroutes: [{prefix: 198.51.100.0/24, dst_as: 64501}]\n"
    )
    settings = CollectorSettings(
        kafka=kafka,
        listen_address="127.0.0.1",
        netflow_port=0,
        sflow_port=0,
        inventory_file=inv,
        metrics=MetricsSettings(enabled=False),
        load_templates=False,
        batch_max_ms=args.batch_max_ms,
    )
    registry = CollectorRegistry()
    svc = CollectorService(settings, registry)
    svc.start()
    sent = mp.Value("q", 0)
    try:
        t0, cpu0 = time.perf_counter(), time.process_time()
        p = mp.Process(target=sender, args=(svc.ports[0], args.seconds, args.rate, sent))
        p.start()
        p.join()
        cpu = time.process_time() - cpu0
        time.sleep(1.0)  # let the queue drain
    finally:
        svc.stop()  # flushes the producer: everything queued is delivered or raises
        elapsed = time.perf_counter() - t0
        admin.delete(kafka.topic(t) for t in catalog.ALL_TOPICS)
    v = lambda name, labels=None: sample_value(registry, f"netpilot_collector_{name}", labels)  # noqa: E731
    received = v("received_datagrams_total", {"exporter": "127.0.0.1"})
    flows = v("flows_total", {"exporter": "127.0.0.1", "protocol": "ipfix"})
    stats = svc.producer.stats  # type: ignore[union-attr]
    print(
        f"sender: {sent.value:,} datagrams ({sent.value * 30 / args.seconds:,.0f} flows/s offered) "
        f"over {args.seconds:.0f} s"
    )
    print(
        f"collector: received {received:,.0f} datagrams, socket loss {sent.value - received:,.0f} "
        f"(counted by the collector from /proc: {v('socket_dropped_datagrams_total'):,.0f}), "
        f"queue drops {v('queue_dropped_datagrams_total'):,.0f}"
    )
    print(
        f"decoded {flows:,.0f} flows: {flows / elapsed:,.0f} flows/s over the whole wall time {elapsed:.1f} s "
        f"(send + drain + flush); Kafka: {stats.delivered} messages ({stats.delivered_bytes / 1e6:.1f} MB) "
        f"delivered, {stats.failed} failed"
    )
    print(
        f"batch_max_ms {args.batch_max_ms}: collector CPU {cpu:.2f} s over the {args.seconds:.0f} s of sending "
        f"({100 * cpu / args.seconds:.1f} % of a core), {stats.delivered / args.seconds:.1f} Kafka messages/s"
    )


if __name__ == "__main__":
    main()
