"""The BGP injector into a real BIRD 2: routes announced and confirmed per second, and the
latency from a recommendation's generation to the route in BIRD's table (p50/p99).

One BIRD on loopback (netpilot.dev.bird), the injector in-process in apply mode (rate limit
and cap lifted), its inputs on a fresh topic prefix:
* burst: N recommendations (IPv6 /48s) at once -> seconds until BIRD holds all N
  (``birdc show route count``) and until the injector's read-back confirmed all N;
* latency: one recommendation at a time -> time until ``birdc`` shows it (polled every 5 ms).

    .venv/bin/python bench/bench_injector.py [--bootstrap HOST:PORT] [--routes 2000] [--samples 50]

Without --bootstrap it uses (or starts) the local broker of `netpilot dev kafka up`.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from netpilot import catalog
from netpilot.dev.bird import BirdRouter, BirdRouterSpec
from netpilot.dev.pipeline import free_port
from netpilot.kafka.admin import TopicAdmin
from netpilot.kafka.producer import KafkaProducer
from netpilot.settings import KafkaSettings, load_settings
from netpilot.wire.autopilot import LinkSide, Recommendation
from netpilot.wire.links import LinkInventory
from netpilot.wire.routes import Route
from sinks.bgp.service import InjectorService
from sinks.bgp.settings import InjectorSettings

POP, ROUTER, ALT, NH = "bench1", "bench1-r1", "bench1-r1:transit-1", "2001:db8:ffff::11"


def _prefixes(n: int) -> list[str]:
    base = int(ipaddress.IPv6Address("2001:db8:1::"))
    return [str(ipaddress.IPv6Network((base + (i << 80), 48))) for i in range(n)]


def _rec(prefix: str) -> Recommendation:
    now = time.time()
    return Recommendation.model_validate(
        {
            "id": uuid.uuid4().hex,
            "cycle_id": "bench",
            "generated_at": now,
            "valid_until": now + 3600,
            "pop": POP,
            "action": "ADD",
            "mode": "suggest",
            "prefix": prefix,
            "afi": 6,
            "rate_bps": 1e8,
            "reason": "OVERLOAD",
            "from": LinkSide(link_id=f"{ROUTER}:pni-1"),
            "to": LinkSide(link_id=ALT, next_hop=NH),
            "created_at": now,
        }
    )


def _count(bird: BirdRouter) -> int:
    out = bird.birdc("show", "route", "count", "protocol", "netpilot")
    for line in out.splitlines():
        if line.startswith("Total:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", default="")
    ap.add_argument("--routes", type=int, default=2000)
    ap.add_argument("--samples", type=int, default=50)
    args = ap.parse_args()
    bootstrap = args.bootstrap
    if not bootstrap:
        from netpilot.dev.kafka import LocalKafka

        bootstrap = LocalKafka().up().bootstrap
    kafka = KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=f"bench{uuid.uuid4().hex[:6]}.")
    admin = TopicAdmin(kafka)
    admin.sync(catalog.ALL_TOPICS)
    work = Path(tempfile.mkdtemp(prefix="netpilot-bench-injector-"))
    bird = BirdRouter(BirdRouterSpec(ROUTER, "127.0.0.2", free_port()), work).start()
    prefixes = _prefixes(args.routes + args.samples)
    p = KafkaProducer(kafka)
    inv = LinkInventory(pop=POP, link_id=ALT, router=ROUTER, capacity_bps=1e11, next_hops=(NH,))
    p.produce(
        kafka.topic(catalog.LINK_INVENTORY), inv.encode(), key=f"{POP}|{ALT}", headers=inv.headers(), partition_key=POP
    )
    for prefix in prefixes:
        r = Route(pop=POP, link_id=ALT, prefix=prefix, next_hop=NH)
        p.produce(kafka.topic(catalog.ROUTES), r.encode(), key=r.key(), headers=r.headers(), partition_key=POP)
    p.flush(60)
    settings = load_settings(
        InjectorSettings,
        overrides={
            "kafka": kafka.model_dump(),
            "mode": "apply",
            "run_dir": str(work / "injector"),
            "max_active_per_pop": 100_000,
            "max_announces_per_cycle": 100_000,
            "readback_every_s": 0.2,
            "metrics": {"listen": "127.0.0.1:0"},
            "routers": {
                ROUTER: {
                    "neighbor": "127.0.0.2",
                    "port": bird.spec.port,
                    "rib": {"kind": "bird", "socket": str(bird.socket)},
                }
            },
        },
    )
    svc = InjectorService(settings)
    svc.start()
    result: dict[str, object] = {"routes": args.routes}
    try:
        deadline = time.monotonic() + 30
        while not bird.session_established() and time.monotonic() < deadline:
            time.sleep(0.05)
        t0 = time.monotonic()
        for prefix in prefixes[: args.routes]:
            rec = _rec(prefix)
            p.produce(
                kafka.topic(catalog.RECOMMENDATIONS),
                rec.encode(),
                key=rec.key(),
                headers=rec.headers(),
                partition_key=POP,
            )
        p.flush(60)
        t_published = time.monotonic() - t0
        while _count(bird) < args.routes and time.monotonic() - t0 < 300:
            time.sleep(0.02)
        t_in_bird = time.monotonic() - t0
        while len(svc.confirmed()) < args.routes and time.monotonic() - t0 < 300:
            time.sleep(0.02)
        t_confirmed = time.monotonic() - t0
        result.update(
            {
                "published_s": round(t_published, 3),
                "in_bird_s": round(t_in_bird, 3),
                "confirmed_s": round(t_confirmed, 3),
                "announced_per_s": round(args.routes / t_in_bird, 1),
                "confirmed_per_s": round(args.routes / t_confirmed, 1),
            }
        )
        lat = []
        for prefix in prefixes[args.routes :]:
            rec = _rec(prefix)
            p.produce(
                kafka.topic(catalog.RECOMMENDATIONS),
                rec.encode(),
                key=rec.key(),
                headers=rec.headers(),
                partition_key=POP,
            )
            p.flush(10)
            while time.time() - rec.generated_at < 30:
                out = subprocess.run(
                    ["birdc", "-s", str(bird.socket), "show", "route", prefix], capture_output=True, text=True
                ).stdout
                if prefix in out:
                    lat.append(time.time() - rec.generated_at)
                    break
                time.sleep(0.005)
        lat.sort()
        result.update(
            {
                "latency_samples": len(lat),
                "latency_p50_s": round(statistics.median(lat), 3),
                "latency_p99_s": round(lat[min(len(lat) - 1, int(0.99 * len(lat)))], 3),
                "latency_max_s": round(lat[-1], 3),
            }
        )
    finally:
        svc.stop()
        bird.stop()
        p.close()
        admin.delete(kafka.topic(t) for t in catalog.ALL_TOPICS)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
