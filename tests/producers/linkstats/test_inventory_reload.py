"""The poller follows inventory edits without a restart and rejects broken ones."""

from __future__ import annotations

import time
from pathlib import Path

from prometheus_client import CollectorRegistry

from netpilot.obs.metrics import sample_value
from netpilot.settings import KafkaSettings
from producers.linkstats.service import SnmpPollerService
from producers.linkstats.settings import SnmpPollerSettings

# Nothing listens on these ports: polls fail fast, which is all this test needs.
ROUTER = """
      {name}:
        snmp: {{target: "127.0.0.1:{port}", credentials: ro}}
        links: {{l-{name}: {{if_name: eth0, capacity: 1G}}}}"""


def _write(path: Path, *routers: tuple[str, int]) -> None:
    path.write_text("pops:\n  lab1:\n    routers:" + "".join(ROUTER.format(name=n, port=p) for n, p in routers) + "\n")


def _wait(cond, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_inventory_edits_are_followed(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    inv = tmp_path / "inv.yaml"
    _write(inv, ("r1", 9), ("r2", 9))
    registry = CollectorRegistry()
    svc = SnmpPollerService(
        SnmpPollerSettings(
            kafka=kafka_settings,
            inventory=inv,
            interval_s=0.5,
            timeout_s=0.2,
            backoff_max_s=0.5,
            inventory_check_s=0.1,
            credentials={"ro": {"community": "public"}},
        ),
        registry,
    )
    routers = lambda: set(svc.scheduler.status) if svc.scheduler else set()  # noqa: E731
    svc.start()
    try:
        _wait(lambda: routers() == {"r1", "r2"})
        kept = svc._pollers["r1"]
        _wait(
            lambda: (
                sample_value(registry, "netpilot_snmp_poll_failures_total", {"router": "r2", "reason": "timeout"}) >= 1
            )
        )

        _write(inv, ("r1", 9), ("r3", 9))  # r2 removed, r3 added, r1 unchanged
        _wait(lambda: routers() == {"r1", "r3"})
        assert svc._pollers["r1"] is kept  # unchanged router keeps its state
        assert registry.get_sample_value("netpilot_snmp_agent_up", {"router": "r2"}) is None
        assert sample_value(registry, "netpilot_snmp_inventory_reloads_total") == 1

        inv.write_text(inv.read_text().replace("capacity: 1G", "capacity: lots"))
        _wait(lambda: sample_value(registry, "netpilot_snmp_inventory_errors_total") == 1)
        ok, why = svc.health()
        assert ok and "inventory change rejected: inventory has 2 problems:" in why
        assert routers() == {"r1", "r3"}  # still polling the last good inventory
    finally:
        svc.stop()
    assert svc._thread.ended
