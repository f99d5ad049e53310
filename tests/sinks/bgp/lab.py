"""Shared pieces of the injector tests: BIRD routers on loopback, a PoP in the topics, and
recommendations as the autopilot writes them."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from netpilot import catalog
from netpilot.dev.bird import BirdRouter, BirdRouterSpec
from netpilot.kafka.producer import KafkaProducer
from netpilot.rib import BirdRib, RibRoute
from netpilot.settings import KafkaSettings
from netpilot.wire.autopilot import LinkSide, Recommendation
from netpilot.wire.links import LinkInventory
from netpilot.wire.routes import Route

POP = "ams1"
COMMUNITY = "64496:666"
LINKS = {  # link -> (router, peer addresses)
    "ams1-r1:pni-1": ("ams1-r1", ("198.51.100.10", "2001:db8:ffff::10")),
    "ams1-r1:transit-1": ("ams1-r1", ("198.51.100.11", "2001:db8:ffff::11")),
    "ams1-r2:ix-1": ("ams1-r2", ("198.51.100.20", "2001:db8:ffff::20")),
}
ROUTED = {  # prefix -> links that reach it
    "198.18.4.0/24": ("ams1-r1:pni-1", "ams1-r1:transit-1", "ams1-r2:ix-1"),
    "198.18.5.0/24": ("ams1-r1:pni-1", "ams1-r1:transit-1"),
    "198.18.6.0/24": ("ams1-r1:pni-1", "ams1-r1:transit-1"),
    "2001:db8:5::/48": ("ams1-r1:pni-1", "ams1-r1:transit-1"),
}


def wait_until(cond: Callable[[], object], timeout: float, what: str, every: float = 0.1) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"not within {timeout:g}s: {what}")


def start_routers(workdir: Path) -> dict[str, BirdRouter]:
    base = random.randint(20, 200)
    port = random.randint(20000, 30000)
    out = {}
    for i, name in enumerate(("ams1-r1", "ams1-r2")):
        spec = BirdRouterSpec(name, f"127.0.{base}.{i + 2}", port + i, injector_address="127.0.0.1")
        out[name] = BirdRouter(spec, workdir).start()
    return out


def injector_settings(kafka: KafkaSettings, routers: dict[str, BirdRouter], run_dir: Path, **over: object) -> dict:
    return {
        "kafka": kafka.model_dump(),
        "mode": "apply",
        "run_dir": str(run_dir),
        "routers": {
            name: {
                "neighbor": r.spec.address,
                "port": r.spec.port,
                "local_address": "127.0.0.1",
                "rib": {"kind": "bird", "socket": str(r.socket)},
            }
            for name, r in routers.items()
        },
        "metrics": {"listen": "127.0.0.1:0"},
        "community": COMMUNITY,
        **over,
    }


def publish_pop(kafka: KafkaSettings) -> None:
    p = KafkaProducer(kafka)
    inv_topic, routes_topic = kafka.topic(catalog.LINK_INVENTORY), kafka.topic(catalog.ROUTES)
    for link_id, (router, hops) in LINKS.items():
        inv = LinkInventory(
            pop=POP,
            link_id=link_id,
            router=router,
            capacity_bps=10e9,
            next_hops=hops,
            peer_type="pni" if "pni" in link_id else "transit",
        )
        p.produce(inv_topic, inv.encode(), key=f"{POP}|{link_id}", headers=LinkInventory.headers(), partition_key=POP)
    for prefix, links in ROUTED.items():
        for link_id in links:
            r = Route(pop=POP, link_id=link_id, prefix=prefix, next_hop=LINKS[link_id][1][0])
            p.produce(routes_topic, r.encode(), key=r.key(), headers=Route.headers(), partition_key=POP)
    p.flush(30)
    p.close()


def rec(
    prefix: str,
    to_link: str = "ams1-r1:transit-1",
    action: str = "ADD",
    ttl_s: float = 120,
    next_hop: str | None = None,
    created_at: float | None = None,
    mode: str = "suggest",
    rate_bps: float = 1e9,
    from_link: str = "ams1-r1:pni-1",
    pop: str = POP,
) -> Recommendation:
    now = time.time()
    v6 = ":" in prefix
    nh = next_hop if next_hop is not None else LINKS.get(to_link, ("", ("203.0.113.99", "2001:db8::99")))[1][int(v6)]
    return Recommendation.model_validate(
        {
            "id": uuid.uuid4().hex,
            "cycle_id": f"{pop}-{int(now)}",
            "generated_at": now,
            "valid_until": now + ttl_s,
            "pop": pop,
            "action": action,
            "mode": mode,
            "prefix": prefix,
            "afi": 6 if v6 else 4,
            "rate_bps": rate_bps,
            "reason": "OVERLOAD" if action != "WITHDRAW" else "RELEASE",
            "from": LinkSide(link_id=from_link),
            "to": LinkSide(link_id=to_link, next_hop=nh),
            "created_at": created_at if created_at is not None else now,
        }
    )


def send(kafka: KafkaSettings, *recs: Recommendation) -> None:
    p = KafkaProducer(kafka)
    for r in recs:
        p.produce(
            kafka.topic(catalog.RECOMMENDATIONS),
            r.encode(),
            key=r.key(),
            headers=Recommendation.headers(),
            partition_key=r.pop,
        )
    p.flush(30)
    p.close()


def ours(router: BirdRouter) -> dict[str, RibRoute]:
    return {r.prefix: r for r in BirdRib(router.socket).routes(COMMUNITY) if r.best}
