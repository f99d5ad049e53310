"""The SNMP poller against Debian's snmpd in network namespaces, with real iperf3 traffic.

One scenario (it needs ~50 s of wall time, so it is not split): two agents in the router
namespace serve the same veth; router r1 is polled with SNMPv2c, r2 with SNMPv3 authPriv.
iperf3 pushes UDP through the veth; both pollers' rates must match iperf3's within 5 %.
Then r1's snmpd is killed: the poller survives, counts and reports it, retries with
backoff, and r2 keeps being polled on time. r1's agent comes back: polling resumes and the
restart shows as a counter reset, never as a traffic spike.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from netpilot import catalog
from netpilot.obs.metrics import sample_value
from netpilot.settings import KafkaSettings
from netpilot.wire.links import LinkStats
from producers.inventory.load import load_inventory
from producers.linkstats.service import SnmpPollerService
from producers.linkstats.settings import SnmpPollerSettings
from tests.producers.linkstats.netlab import V3_AUTH, V3_PRIV, V3_USER, NetLab
from tests.producers.topicread import read_topic

INTERVAL = 5.0  # Net-SNMP refreshes its interface cache every few seconds: poll at >= 5 s
RATE = 40_000_000
UDP_IP_ETH = 8 + 20 + 14  # header octets per datagram the interface counts on top of iperf3's payload


@pytest.fixture
def lab(tmp_path: Path):
    lab = NetLab(tmp_path / "lab").open()
    try:
        yield lab
    finally:
        lab.close()


def _inventory(lab: NetLab, path: Path) -> Path:
    path.write_text(f"""
pops:
  lab1:
    routers:
      r1:
        snmp: {{target: "{lab.agent_addr}:1161", version: "2c", credentials: ro}}
        links:
          up-v2: {{if_name: {lab.data_if}, capacity: 10G, peer_asn: 64500}}
          ghost: {{if_name: nosuch0, capacity: 1G}}
      r2:
        snmp: {{target: "{lab.agent_addr}:1162", version: "3", credentials: v3}}
        links:
          up-v3: {{if_name: {lab.data_if}, capacity: 10G, peer_asn: 64500}}
""")
    return path


def _read_all(kafka: KafkaSettings) -> list[tuple[str, LinkStats]]:
    return [(r.key, LinkStats.decode(r.value)) for r in read_topic(kafka, kafka.topic(catalog.LINK_STATS))]


def _wait(cond, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.2)


def _mean_bps(stats: list[LinkStats], start: float, end: float) -> float:
    """Octets over the polls whose whole interval lies inside [start, end], as bit/s."""
    inside = [
        s
        for s in stats
        if s.out_octets_delta is not None and s.interval_s and s.ts - s.interval_s >= start and s.ts <= end
    ]
    assert len(inside) >= 2, f"only {len(inside)} poll intervals inside the iperf3 run"
    return sum(s.out_octets_delta for s in inside) * 8 / sum(s.interval_s for s in inside)


def test_rates_match_iperf3_and_agent_death_is_survived(
    lab: NetLab, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    lab.start_snmpd(1161)
    lab.start_snmpd(1162)
    registry = CollectorRegistry()
    settings = SnmpPollerSettings(
        kafka=kafka_settings,
        inventory=_inventory(lab, tmp_path / "inv.yaml"),
        interval_s=INTERVAL,
        timeout_s=1.0,
        backoff_initial_s=1.0,
        backoff_max_s=4.0,
        credentials={
            "ro": {"community": "public"},
            "v3": {
                "user": V3_USER,
                "auth_protocol": "sha256",
                "auth_key": V3_AUTH,
                "priv_protocol": "aes",
                "priv_key": V3_PRIV,
            },
        },
    )
    svc = SnmpPollerService(settings, registry, load_inventory(settings.inventory))
    polls = lambda r: sample_value(registry, "netpilot_snmp_polls_total", {"router": r})  # noqa: E731
    svc.start()
    try:
        _wait(lambda: polls("r1") >= 2 and polls("r2") >= 2, 3 * INTERVAL)
        report = lab.iperf3_udp(RATE, 21)
        # a whole poll interval after the traffic on each router: two more polls
        after = polls("r1"), polls("r2")
        _wait(lambda: polls("r1") >= after[0] + 2 and polls("r2") >= after[1] + 2, 4 * INTERVAL)

        lab.kill_snmpd(1161)
        killed_at = time.time()
        _wait(
            lambda: (
                sample_value(registry, "netpilot_snmp_poll_failures_total", {"router": "r1", "reason": "timeout"}) >= 3
            ),
            20,
        )
        ok, why = svc.health()
        assert ok and "r1" in why and "timeout" in why and "r2" not in why
        assert sample_value(registry, "netpilot_snmp_agent_up", {"router": "r1"}) == 0
        r2_polls_while_down = polls("r2")

        lab.start_snmpd(1161)
        restarted_at = time.time()
        _wait(lambda: sample_value(registry, "netpilot_snmp_agent_up", {"router": "r1"}) == 1, 10)
        back = polls("r1")
        _wait(lambda: polls("r1") >= back + 2, 3 * INTERVAL)
    finally:
        svc.stop()

    msgs = _read_all(kafka_settings)
    assert msgs and all(key == "lab1" for key, _ in msgs)  # keyed by PoP
    by_link: dict[str, list[LinkStats]] = {}
    for _, s in msgs:
        by_link.setdefault(s.link_id, []).append(s)
    assert set(by_link) == {"up-v2", "up-v3"}  # the ghost link is never published...
    assert (
        sample_value(registry, "netpilot_snmp_poll_failures_total", {"router": "r1", "reason": "unknown-interface"})
        >= 1
    )  # ...but counted
    v2, v3 = sorted(by_link["up-v2"], key=lambda s: s.ts), sorted(by_link["up-v3"], key=lambda s: s.ts)
    assert v2[0].if_name == lab.data_if and v2[0].speed_bps == 10e9 and v2[0].oper_up

    # -- rates against iperf3 ---------------------------------------------------------
    start = report["start"]["timestamp"]["timesecs"]
    sent = report["end"]["sum"]
    end = start + sent["seconds"]
    iperf_bps = sent["bits_per_second"]
    on_wire_bps = (sent["bytes"] + sent["packets"] * UDP_IP_ETH) * 8 / sent["seconds"]
    for stats in (v2, v3):
        measured = _mean_bps(stats, start, end)
        print(
            f"\n{stats[0].link_id}: poller {measured / 1e6:.2f} Mbit/s, iperf3 payload "
            f"{iperf_bps / 1e6:.2f}, on the wire {on_wire_bps / 1e6:.2f}"
        )
        assert measured == pytest.approx(iperf_bps, rel=0.05)
        assert measured == pytest.approx(on_wire_bps, rel=0.05)

    # -- the outage: r2 kept its schedule, r1 reported a reset after its agent restarted ----
    assert r2_polls_while_down >= 2
    gaps = [b.ts - a.ts for a, b in zip(v3, v3[1:])]
    assert max(gaps) < INTERVAL * 1.5, f"r2 was not polled on time: gaps {gaps}"
    assert not any(s.ts > killed_at + 2 and s.ts < restarted_at for s in v2)
    after = [s for s in v2 if s.ts > restarted_at]
    assert after[0].counter_reset and after[0].out_bps is None
    assert all(s.out_bps is None or s.out_bps < 1e6 for s in after)  # no phantom spike
    assert sum(1 for s in v2 if s.counter_reset) >= 1
