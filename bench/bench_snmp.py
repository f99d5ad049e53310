"""SNMP poll cycle time for N interfaces served by real snmpd agents in a network namespace.

    .venv/bin/python bench/bench_snmp.py [--interfaces 1000] [--agents 4] [--cycles 5]

Needs root, iproute2 and snmpd (scripts/install-system-deps.sh). Creates a namespace with
``--interfaces`` interfaces (veth pairs), runs ``--agents`` snmpd processes in it (one per "router"),
gives each router an equal share of the links (by ifName), then times full poll cycles:
all routers polled concurrently, as the poller's scheduler does at worst (it normally
spreads routers over the interval). Prints ifName resolution time, cycle times (median,
worst), OIDs per second and the poller's CPU time per cycle. Net-SNMP keeps its default
3 s interface cache unless ``--fresh`` (cache timeout 0, as the iperf3 test uses; every
request then re-reads all interfaces from the kernel, which is slow at this size).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from netpilot.wire.links import LinkInventory
from producers.linkstats.router import COLUMNS, RouterPoller
from producers.linkstats.snmp import Credentials, SnmpClient
from tests.producers.linkstats.netlab import NetLab


async def run(lab: NetLab, names: list[str], agents: int, cycles: int, max_oids: int) -> None:
    pollers = []
    share = (len(names) + agents - 1) // agents
    for a in range(agents):
        links = tuple(
            LinkInventory(pop="bench", router=f"r{a}", link_id=n, if_name=n, capacity_bps=1e9)
            for n in names[a * share : (a + 1) * share]
        )
        client = SnmpClient(
            lab.agent_addr, 1161 + a, Credentials("2c", community="public"), timeout=5.0, max_oids_per_request=max_oids
        )
        pollers.append(RouterPoller("bench", f"r{a}", links, client))
    t0 = time.perf_counter()
    missing = await asyncio.gather(*(p.resolve() for p in pollers))
    resolve_s = time.perf_counter() - t0
    assert not any(missing), missing
    walls, cpus, published = [], [], 0
    for _ in range(cycles):
        c0, w0 = time.process_time(), time.perf_counter()
        results = await asyncio.gather(*(p.poll() for p in pollers))
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
        published = sum(len(r.stats) for r in results)
    for p in pollers:
        p.client.close()
    oids = published * len(COLUMNS) + len(pollers)
    print(f"interfaces={published} agents={agents} oids/cycle={oids} oids/request<={max_oids}")
    print(f"ifName resolution (GETBULK walk): {resolve_s:.2f} s")
    print(
        f"poll cycle: median {statistics.median(walls):.2f} s, worst {max(walls):.2f} s "
        f"({oids / statistics.median(walls):,.0f} OIDs/s); poller CPU median "
        f"{statistics.median(cpus):.2f} s/cycle"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--interfaces", type=int, default=1000)
    ap.add_argument("--agents", type=int, default=4)
    ap.add_argument("--cycles", type=int, default=5)
    ap.add_argument("--max-oids", type=int, default=40)
    ap.add_argument("--fresh", action="store_true", help="nsCacheTimeout=0 (re-read all interfaces per request)")
    args = ap.parse_args()
    lab = NetLab(Path(tempfile.mkdtemp(prefix="bench-snmp-"))).open()
    try:
        names = lab.add_interfaces(args.interfaces)
        for a in range(args.agents):
            lab.start_snmpd(1161 + a, fresh_counters=args.fresh)
        asyncio.run(run(lab, names, args.agents, args.cycles, args.max_oids))
    finally:
        lab.close()


if __name__ == "__main__":
    main()
