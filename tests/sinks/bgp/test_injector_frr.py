"""The injector against a real FRR 8 (bgpd + zebra) in a network namespace: the override is
in FRR's BGP table with its attributes *and* in the kernel's forwarding table."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from netpilot.rib import FrrRib
from netpilot.settings import KafkaSettings, load_settings
from sinks.bgp.service import InjectorService
from sinks.bgp.settings import InjectorSettings
from tests.sinks.bgp.frrlab import FrrRouter
from tests.sinks.bgp.lab import COMMUNITY, publish_pop, rec, send, wait_until


@pytest.fixture
def frr() -> Iterator[FrrRouter]:
    router = FrrRouter().open()
    yield router
    router.close()


def test_frr_installs_the_override_in_bgp_and_in_the_kernel(
    kafka_settings: KafkaSettings, frr: FrrRouter, tmp_path: Path
) -> None:
    publish_pop(kafka_settings)
    settings = load_settings(
        InjectorSettings,
        overrides={
            "kafka": kafka_settings.model_dump(),
            "mode": "apply",
            "run_dir": str(tmp_path / "inj"),
            "community": COMMUNITY,
            "metrics": {"listen": "127.0.0.1:0"},
            "routers": {
                "ams1-r1": {
                    "neighbor": frr.address,
                    "port": 179,
                    "local_address": frr.injector_addr,
                    "rib": {"kind": "frr", "socket": str(frr.dir)},
                }
            },
        },
    )
    svc = InjectorService(settings)
    svc.start()
    rib = FrrRib(frr.dir)
    try:
        send(kafka_settings, rec("198.18.4.0/24", "ams1-r1:transit-1"), rec("2001:db8:5::/48", "ams1-r1:transit-1"))
        got = wait_until(
            lambda: {r.prefix: r for r in rib.routes(COMMUNITY) if r.best} if len(rib.routes(COMMUNITY)) == 2 else None,
            30,
            "both overrides in FRR",
        )
        assert (got["198.18.4.0/24"].next_hop, got["198.18.4.0/24"].local_pref) == ("198.51.100.11", 1000)  # type: ignore[index]
        assert got["2001:db8:5::/48"].next_hop == "2001:db8:ffff::11"  # type: ignore[index]
        detail = frr.vtysh("show bgp ipv4 unicast 198.18.4.0/24")
        assert "no-export" in detail.lower() and "64496:666" in detail, detail
        # zebra put it where packets are forwarded
        wait_until(lambda: "via 198.51.100.11" in frr.fib("198.18.4.0/24"), 15, "in the kernel FIB")
        wait_until(lambda: "via 2001:db8:ffff::11" in frr.fib("2001:db8:5::/48"), 15, "v6 in the kernel FIB")
        assert "bgp" in frr.fib("198.18.4.0/24")
        wait_until(lambda: ("ams1", "198.18.4.0/24") in svc.confirmed(), 15, "confirmed from vtysh")

        send(kafka_settings, rec("198.18.4.0/24", action="WITHDRAW"))
        wait_until(lambda: {r.prefix for r in rib.routes(COMMUNITY)} == {"2001:db8:5::/48"}, 15, "withdrawn in FRR")
        wait_until(lambda: not frr.fib("198.18.4.0/24").strip(), 15, "gone from the kernel FIB")
        peer = json.loads(frr.vtysh(f"show bgp neighbor {frr.injector_addr} json") or "{}")
        assert peer.get(frr.injector_addr, {}).get("bgpState") == "Established"
    finally:
        svc.stop()
    wait_until(lambda: not rib.routes(COMMUNITY), 15, "routes gone once the injector stopped")
