"""Routes on the real broker: diff against the topic, withdrawal = tombstone, PoP scope, CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path as FsPath

import yaml

from netpilot import catalog
from netpilot.kafka.compacted import read_compacted
from netpilot.kafka.producer import KafkaProducer, ProducerOptions
from netpilot.settings import KafkaSettings
from netpilot.wire.routes import Route
from producers.routes.publish import publish_routes
from tests.producers.routes.mrtwriter import Path, peer_index_table, rib

REPO = FsPath(__file__).resolve().parents[3]


def _r(pop: str, link: str, prefix: str, lp: int = 100) -> Route:
    return Route(pop=pop, link_id=link, prefix=prefix, as_path=(64500,), local_pref=lp)


def test_withdrawal_is_a_tombstone_and_scope_protects_other_pops(kafka_settings: KafkaSettings) -> None:
    topic = kafka_settings.topic(catalog.ROUTES)
    producer = KafkaProducer(kafka_settings, ProducerOptions(linger_ms=1))
    fra = [_r("fra1", "l1", "203.0.113.0/24"), _r("fra1", "l1", "198.18.0.0/15"), _r("fra1", "l2", "2001:db8::/32")]
    ams = [_r("ams1", "l1", "203.0.113.0/24")]
    first = publish_routes(fra + ams, kafka_settings, producer)
    assert len(first.upserted) == 4 and not first.tombstoned

    # fra1 reloaded: one route withdrawn, one changed; ams1 is not in this load's scope
    report = publish_routes([_r("fra1", "l1", "203.0.113.0/24", lp=50), fra[2]], kafka_settings, producer)
    assert report.upserted == ["fra1|l1|203.0.113.0/24"]
    assert report.tombstoned == ["fra1|l1|198.18.0.0/15"]
    assert report.unchanged == 1
    state = read_compacted(kafka_settings, topic)
    assert state["fra1|l1|198.18.0.0/15"] is None
    assert Route.decode(state["fra1|l1|203.0.113.0/24"]).local_pref == 50
    assert Route.decode(state["ams1|l1|203.0.113.0/24"]) == ams[0]

    # an explicitly scoped empty load withdraws everything of that PoP
    gone = publish_routes([], kafka_settings, producer, scope={"ams1"})
    assert gone.tombstoned == ["ams1|l1|203.0.113.0/24"]


def test_cli_loads_an_mrt_dump(kafka_settings: KafkaSettings, tmp_path: FsPath) -> None:
    dump = tmp_path / "rib.mrt"
    dump.write_bytes(
        peer_index_table([("198.51.100.1", 64500)])
        + b"".join(rib(i, f"10.0.{i}.0/24", [Path(0, (64500, 65000 + i), "198.51.100.1")]) for i in range(20))
    )
    config = tmp_path / "netpilot.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "kafka": {
                    "bootstrap_servers": kafka_settings.bootstrap_servers,
                    "topic_prefix": kafka_settings.topic_prefix,
                }
            }
        )
    )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "netpilot.cli",
            "routes",
            "load",
            str(dump),
            "--mrt",
            "--peer",
            "198.51.100.1=fra1/transit-a",
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "rib.mrt: 21 MRT records, 20 RIB entries, 20 routes on known links" in out.stdout
    assert "published 20 new/changed routes, 0 withdrawals, 0 unchanged" in out.stdout
    state = read_compacted(kafka_settings, kafka_settings.topic(catalog.ROUTES))
    r = Route.decode(state["fra1|transit-a|10.0.7.0/24"])
    assert r.as_path == (64500, 65007) and r.next_hop == "198.51.100.1"
