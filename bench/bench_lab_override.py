"""In the routing lab (netpilot dev lab): time from a recommendation published to Kafka to the
lab router's *kernel* forwarding the prefix out of the alternate link, and from the WITHDRAW
to forwarding by the PNI again. This is the injector -> ExaBGP -> FRR bgpd -> zebra -> FIB
part of "surge to relief"; the autopilot's share (cycles, windows) is not in it.

The lab is built under a fresh namespace prefix and torn down at the end; the injector runs
in-process in apply mode with ExaBGP in the lab's nms namespace. The FIB is polled with
``ip route get`` every 10 ms, so figures carry up to ~15 ms of polling granularity. Root only.

    .venv/bin/python bench/bench_lab_override.py [--bootstrap HOST:PORT] [--samples 10]

Without --bootstrap it uses (or starts) the local broker of `netpilot dev kafka up`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from netpilot import catalog
from netpilot.dev.lab import LAB_POP as POP
from netpilot.dev.lab import ROUTER, Lab, host, peer, publish_lab_pop
from netpilot.kafka.admin import TopicAdmin
from netpilot.kafka.producer import KafkaProducer
from netpilot.settings import KafkaSettings, load_settings
from netpilot.wire.autopilot import LinkSide, Recommendation
from sinks.bgp.service import InjectorService
from sinks.bgp.settings import InjectorSettings

PREFIX = "198.18.10.0/24"


def _rec(action: str) -> Recommendation:
    now, pni, transit = time.time(), peer("pni"), peer("transit")
    return Recommendation.model_validate(
        {
            "id": uuid.uuid4().hex,
            "cycle_id": "bench",
            "generated_at": now,
            "valid_until": now + 3600,
            "pop": POP,
            "action": action,
            "mode": "suggest",
            "prefix": PREFIX,
            "afi": 4,
            "rate_bps": 1e7,
            "reason": "OVERLOAD" if action == "ADD" else "RELEASE",
            "from": LinkSide(link_id=pni.link_id),
            "to": LinkSide(link_id=transit.link_id, next_hop=transit.peer_addr),
            "created_at": now,
        }
    )


def _wait_egress(lab: Lab, want: str, timeout: float = 30) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if lab.egress(host(PREFIX)) == want:
            return time.monotonic() - t0
        time.sleep(0.01)
    raise RuntimeError(f"{PREFIX} not forwarded out of {want} within {timeout}s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", default="")
    ap.add_argument("--samples", type=int, default=10)
    args = ap.parse_args()
    bootstrap = args.bootstrap
    if not bootstrap:
        from netpilot.dev.kafka import LocalKafka

        bootstrap = LocalKafka().up().bootstrap
    kafka = KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=f"bench{uuid.uuid4().hex[:6]}.")
    admin = TopicAdmin(kafka)
    admin.sync(catalog.ALL_TOPICS)
    lab = Lab(f"nb{uuid.uuid4().hex[:5]}-")
    p = KafkaProducer(kafka)
    svc: InjectorService | None = None
    try:
        lab.up()
        publish_lab_pop(kafka)
        work = Path(tempfile.mkdtemp(prefix="netpilot-bench-lab-"))
        settings = load_settings(
            InjectorSettings,
            overrides={
                "kafka": kafka.model_dump(),
                "mode": "apply",
                "run_dir": str(work / "injector"),
                "exabgp_netns": lab.ns("nms"),
                "max_announces_per_cycle": 1000,
                "metrics": {"listen": "127.0.0.1:0"},
                "routers": {
                    ROUTER: {
                        "neighbor": lab.nms_peer,
                        "local_address": lab.nms_address,
                        "rib": {"kind": "frr", "socket": str(lab.frr_dir)},
                    }
                },
            },
        )
        svc = InjectorService(settings)
        svc.start()
        deadline = time.monotonic() + 30
        while not lab.established().get(lab.nms_address):
            if time.monotonic() > deadline:
                raise RuntimeError("the injector's iBGP session did not come up")
            time.sleep(0.05)
        add, withdraw = [], []
        for _ in range(args.samples):
            for action, want, out in (("ADD", "transit0", add), ("WITHDRAW", "pni0", withdraw)):
                rec = _rec(action)
                p.produce(
                    kafka.topic(catalog.RECOMMENDATIONS),
                    rec.encode(),
                    key=rec.key(),
                    headers=Recommendation.headers(),
                    partition_key=POP,
                )
                t0 = time.monotonic()
                p.flush(10)
                _wait_egress(lab, want)
                out.append(time.monotonic() - t0)

        def summary(xs: list[float]) -> dict[str, float]:
            xs = sorted(xs)
            return {"p50_s": round(statistics.median(xs), 3), "max_s": round(xs[-1], 3)}

        print(
            json.dumps(
                {
                    "samples": args.samples,
                    "add_to_kernel_via_transit": summary(add),
                    "withdraw_to_kernel_via_pni": summary(withdraw),
                },
                indent=2,
            )
        )
    finally:
        if svc is not None:
            svc.stop()
        p.close()
        lab.down()
        admin.delete(kafka.topic(t) for t in catalog.ALL_TOPICS)


if __name__ == "__main__":
    main()
