"""The injector against real BIRD 2 routers over real iBGP (ExaBGP), with the real broker.

Every assertion reads the router's own RIB through ``birdc`` or the topics the injector
writes: nothing here trusts the injector's view of itself.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from netpilot import catalog
from netpilot.dev.bird import BirdRouter
from netpilot.dev.pipeline import Child, free_port
from netpilot.kafka.compacted import read_compacted
from netpilot.kafka.producer import KafkaProducer
from netpilot.settings import KafkaSettings, load_settings
from netpilot.wire.injector import AppliedOverride, InjectorControl
from sinks.bgp.service import InjectorService
from sinks.bgp.settings import InjectorSettings
from tests.sinks.bgp.lab import POP, injector_settings, ours, publish_pop, rec, send, start_routers, wait_until


@pytest.fixture
def routers(tmp_path: Path) -> Iterator[dict[str, BirdRouter]]:
    rs = start_routers(tmp_path / "birds")
    yield rs
    for r in rs.values():
        r.stop()


@pytest.fixture
def pop(kafka_settings: KafkaSettings) -> KafkaSettings:
    publish_pop(kafka_settings)
    return kafka_settings


def _service(kafka: KafkaSettings, routers: dict[str, BirdRouter], tmp_path: Path, **over: object) -> InjectorService:
    settings = load_settings(InjectorSettings, overrides=injector_settings(kafka, routers, tmp_path / "inj", **over))
    svc = InjectorService(settings)
    svc.start()
    return svc


def _metric(svc: InjectorService, name: str, **labels: str) -> float:
    return svc.registry.get_sample_value(f"netpilot_injector_{name}", labels) or 0.0


def _control(kafka: KafkaSettings, msg: InjectorControl) -> None:
    p = KafkaProducer(kafka)
    p.produce(kafka.topic(catalog.INJECTOR_CONTROL), msg.encode(), key=msg.key(), headers=InjectorControl.headers())
    p.flush(30)
    p.close()


def _applied(kafka: KafkaSettings) -> dict[str, AppliedOverride]:
    records = read_compacted(kafka, kafka.topic(catalog.APPLIED_OVERRIDES))
    return {k: AppliedOverride.decode(v) for k, v in records.items() if v is not None}


def test_add_reaches_both_routers_with_its_attributes_and_withdraw_removes_it(
    pop: KafkaSettings, routers: dict[str, BirdRouter], tmp_path: Path
) -> None:
    svc = _service(pop, routers, tmp_path)
    try:
        send(pop, rec("198.18.4.0/24", "ams1-r1:transit-1"), rec("2001:db8:5::/48", "ams1-r1:transit-1"))
        for r in routers.values():
            got = wait_until(lambda r=r: len(ours(r)) == 2 and ours(r), 20, f"both overrides in {r.spec.name}")
            v4, v6 = got["198.18.4.0/24"], got["2001:db8:5::/48"]  # type: ignore[index]
            assert (v4.next_hop, v4.local_pref) == ("198.51.100.11", 1000)
            assert (v6.next_hop, v6.local_pref) == ("2001:db8:ffff::11", 1000)
            assert set(v4.communities) == {"64496:666", "no-export"}
        # the confirmation comes from the routers' RIBs
        applied = wait_until(lambda: len(_applied(pop)) == 2 and _applied(pop), 15, "applied records")
        a = applied[f"{POP}|198.18.4.0/24"]  # type: ignore[index]
        assert (a.link_id, a.next_hop, a.routers) == ("ams1-r1:transit-1", "198.51.100.11", ("ams1-r1", "ams1-r2"))
        assert a.confirmed_at >= a.since
        assert _metric(svc, "confirm_seconds_count") >= 2

        send(pop, rec("198.18.4.0/24", action="WITHDRAW"))
        for r in routers.values():
            wait_until(lambda r=r: set(ours(r)) == {"2001:db8:5::/48"}, 15, f"withdrawn from {r.spec.name}")
        wait_until(lambda: set(_applied(pop)) == {f"{POP}|2001:db8:5::/48"}, 15, "applied tombstone")
        # the same desired set again changes nothing on the routers: idempotent
        sent = _metric(svc, "announces_total", pop=POP)
        send(pop, rec("2001:db8:5::/48", "ams1-r1:transit-1"))
        wait_until(lambda: _metric(svc, "messages_total", topic="recommendations") >= 4, 10, "REFRESH read")
        passes = _metric(svc, "reconcile_duration_seconds_count")
        wait_until(lambda: _metric(svc, "reconcile_duration_seconds_count") >= passes + 4, 10, "reconcile passes")
        assert _metric(svc, "announces_total", pop=POP) == sent
    finally:
        svc.stop()
    for r in routers.values():  # a clean stop closes the sessions: the routers drop everything
        wait_until(lambda r=r: not ours(r), 15, f"routes gone from {r.spec.name} after stop")


def test_refused_inputs_are_counted_dead_lettered_and_never_announced(
    pop: KafkaSettings, routers: dict[str, BirdRouter], tmp_path: Path
) -> None:
    svc = _service(pop, routers, tmp_path)
    try:
        bad = {
            "unknown-link": rec("198.18.5.0/24", "ams1-r9:nowhere", next_hop="198.51.100.99"),
            "bad-next-hop": rec("198.18.6.0/24", "ams1-r1:transit-1", next_hop="198.51.100.10"),
            "no-route": rec("198.18.7.0/24", "ams1-r1:transit-1"),
            "not-allowed": rec("198.18.5.128/25", "ams1-r1:transit-1"),
        }
        send(pop, *bad.values(), rec("198.18.4.0/24", "ams1-r2:ix-1"))
        wait_until(lambda: set(ours(routers["ams1-r1"])) == {"198.18.4.0/24"}, 20, "the valid one announced")
        for reason in bad:
            wait_until(lambda reason=reason: _metric(svc, "refused_total", reason=reason) == 1, 10, reason)
        # dead letters are produced asynchronously: counted at once, readable once delivered
        dls = wait_until(
            lambda: (d := read_compacted(pop, pop.topic(catalog.DEAD_LETTERS))) and len(d) >= len(bad) and d,
            30,
            "four dead letters delivered",
        )
        assert len(dls) == len(bad), sorted(dls)  # type: ignore[arg-type]
        assert all(set(ours(r)) == {"198.18.4.0/24"} for r in routers.values())
    finally:
        svc.stop()


def test_ttl_expiry_withdraws_without_the_autopilot(
    pop: KafkaSettings, routers: dict[str, BirdRouter], tmp_path: Path
) -> None:
    svc = _service(pop, routers, tmp_path)
    try:
        send(pop, rec("198.18.4.0/24", ttl_s=4), rec("198.18.5.0/24", ttl_s=300))
        r1 = routers["ams1-r1"]
        wait_until(lambda: len(ours(r1)) == 2, 20, "both announced")
        # no REFRESH comes: past valid_until the first is withdrawn, the second stays
        wait_until(lambda: set(ours(r1)) == {"198.18.5.0/24"}, 20, "the expired one withdrawn")
        assert _metric(svc, "skipped_overrides", pop=POP, why="expired") == 1
    finally:
        svc.stop()


def test_drain_withdraws_everything_and_resume_brings_it_back(
    pop: KafkaSettings, routers: dict[str, BirdRouter], tmp_path: Path
) -> None:
    svc = _service(pop, routers, tmp_path)
    try:
        send(pop, rec("198.18.4.0/24"), rec("198.18.5.0/24"))
        wait_until(lambda: all(len(ours(r)) == 2 for r in routers.values()), 20, "announced")
        _control(pop, InjectorControl(kind="drain", pop="*", by="test", at=time.time()))
        wait_until(lambda: all(not ours(r) for r in routers.values()), 15, "drained")
        assert _metric(svc, "skipped_overrides", pop=POP, why="drained") == 2
        _control(pop, InjectorControl(kind="resume", pop="*", by="test", at=time.time()))
        wait_until(lambda: all(len(ours(r)) == 2 for r in routers.values()), 15, "resumed")
    finally:
        svc.stop()


def test_cap_and_rate_limit_bound_what_reaches_a_router(
    pop: KafkaSettings, routers: dict[str, BirdRouter], tmp_path: Path
) -> None:
    svc = _service(pop, routers, tmp_path, max_active_per_pop=2, max_announces_per_cycle=1, cycle_s=3)
    try:
        t0 = time.monotonic()
        send(
            pop,
            rec("198.18.4.0/24", rate_bps=3e9),
            rec("198.18.5.0/24", rate_bps=2e9),
            rec("198.18.6.0/24", rate_bps=1e9),
        )
        r1 = routers["ams1-r1"]
        wait_until(lambda: set(ours(r1)) == {"198.18.4.0/24"}, 20, "the biggest first")
        wait_until(lambda: set(ours(r1)) == {"198.18.4.0/24", "198.18.5.0/24"}, 20, "the next, a cycle later")
        assert time.monotonic() - t0 >= 2.5, "the rate limit let two announces through in one cycle"
        assert _metric(svc, "skipped_overrides", pop=POP, why="over-cap") == 1
        assert "198.18.6.0/24" not in ours(r1)
    finally:
        svc.stop()


def test_suggest_mode_announces_only_what_a_person_approved(
    pop: KafkaSettings, routers: dict[str, BirdRouter], tmp_path: Path
) -> None:
    svc = _service(pop, routers, tmp_path, mode="suggest")
    try:
        a, b = rec("198.18.4.0/24"), rec("198.18.5.0/24")
        send(pop, a, b)
        wait_until(lambda: _metric(svc, "skipped_overrides", pop=POP, why="pending-approval") == 2, 15, "pending")
        assert not ours(routers["ams1-r1"])
        _control(
            pop,
            InjectorControl(
                kind="approve",
                pop=POP,
                prefix=a.prefix,
                created_at=a.created_at,
                to_link=a.to.link_id,
                by="test",
                at=time.time(),
            ),
        )
        _control(
            pop,
            InjectorControl(
                kind="reject",
                pop=POP,
                prefix=b.prefix,
                created_at=b.created_at,
                to_link=b.to.link_id,
                by="test",
                at=time.time(),
            ),
        )
        wait_until(lambda: set(ours(routers["ams1-r1"])) == {"198.18.4.0/24"}, 15, "approved one announced")
        wait_until(lambda: _metric(svc, "skipped_overrides", pop=POP, why="rejected") == 1, 10, "rejected")
        # a new override of the approved prefix (a new created_at) needs a new approval
        send(pop, rec("198.18.4.0/24", created_at=time.time() + 5))
        wait_until(lambda: not ours(routers["ams1-r1"]), 15, "new instance not approved: withdrawn")
    finally:
        svc.stop()


def test_observe_mode_announces_nothing(pop: KafkaSettings, routers: dict[str, BirdRouter], tmp_path: Path) -> None:
    svc = _service(pop, routers, tmp_path, mode="observe")
    try:
        send(pop, rec("198.18.4.0/24"))
        wait_until(lambda: _metric(svc, "desired_overrides", pop=POP) == 1, 15, "desired computed")
        assert not any(r.session_established() for r in routers.values()), "observe must not even connect"
        assert not ours(routers["ams1-r1"])
    finally:
        svc.stop()


def _exabgp_pids(run_dir: Path) -> list[int]:
    out = subprocess.run(["pgrep", "-f", str(run_dir)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def test_sigkill_drops_every_route_and_a_restart_announces_once(
    pop: KafkaSettings, routers: dict[str, BirdRouter], tmp_path: Path
) -> None:
    import yaml

    run_dir = tmp_path / "inj-proc"
    port = free_port()
    cfg = tmp_path / "injector.yaml"
    settings = injector_settings(pop, routers, run_dir, metrics={"listen": f"127.0.0.1:{port}"})
    cfg.write_text(
        yaml.safe_dump({"kafka": settings.pop("kafka"), "metrics": settings.pop("metrics"), "injector": settings})
    )
    send(pop, rec("198.18.4.0/24"), rec("2001:db8:5::/48"))

    def start() -> Child:
        return Child(
            "injector", ["injector", "run", "--config", str(cfg)], {}, tmp_path / "injector.log", metrics_port=port
        )

    child = start()
    try:
        wait_until(lambda: all(len(ours(r)) == 2 for r in routers.values()), 30, "announced by the process")
        assert _exabgp_pids(run_dir), "exabgp runs under the injector"
        child.proc.send_signal(signal.SIGKILL)
        child.proc.wait(10)
        t0 = time.monotonic()
        wait_until(lambda: all(not ours(r) for r in routers.values()), 12, "routes gone after SIGKILL")
        gone_s = time.monotonic() - t0
        wait_until(lambda: not _exabgp_pids(run_dir), 10, "no exabgp or helper left behind")
        print(f"routes gone {gone_s:.2f}s after SIGKILL of the injector", file=sys.stderr)

        child = start()
        wait_until(lambda: all(len(ours(r)) == 2 for r in routers.values()), 30, "announced again")
        wait_until(lambda: "netpilot_injector_announces_total" in child.metrics(), 10, "metrics")

        def passes() -> float:
            line = next(
                l
                for l in child.metrics().splitlines()
                if l.startswith("netpilot_injector_reconcile_duration_seconds_count")
            )
            return float(line.split()[-1])

        p0 = passes()
        wait_until(lambda: passes() >= p0 + 4, 15, "reconcile passes after the re-announce")
        text = child.metrics()
        line = next(l for l in text.splitlines() if l.startswith("netpilot_injector_announces_total{"))
        assert float(line.split()[-1]) == 4.0, line  # 2 prefixes x 2 routers, once
        for r in routers.values():
            assert len(r.birdc("show", "route", "all", "protocol", "netpilot").split("BGP.next_hop")) - 1 == 2
    finally:
        child.stop()
