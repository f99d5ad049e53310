"""Insert rate into chDB through clickhouse-connect, and bytes per flow on disk.

    .venv/bin/python bench/bench_clickhouse.py [--rows 2000000] [--batch 100000] [--path DIR]

Synthetic but shaped like real egress traffic (flows/1 schema): a few PoPs, routers and
links, Zipf-distributed destinations, web-heavy ports, log-normal sizes, one sampling rate
per exporter, time_received advancing at a steady flow rate. Inserts go through
``sinks.clickhouse.client.ClickHouseClient.insert_arrow`` (the sink's own path, with a dedup
token) into the migrated schema, once with the rollup views attached (what the sink does)
and once into the raw table alone. Then ``OPTIMIZE TABLE ... FINAL`` and bytes per flow from
system.parts / system.columns. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from netpilot.wire import flows
from sinks.clickhouse.client import ClickHouseClient
from sinks.clickhouse.migrations import migrate
from sinks.clickhouse.settings import Retention

POPS = ("ams", "fra", "lon", "nyc")


def synthetic_flows(n: int, start_ms: int, seed: int, flows_per_s: int = 100_000) -> pa.Table:
    rng = np.random.default_rng(seed)
    t = start_ms + (np.arange(n, dtype=np.int64) * 1000) // flows_per_s
    pop_idx = rng.integers(0, len(POPS), n)
    link_local = rng.integers(0, 8, n)
    link_idx = pop_idx * 8 + link_local
    router_idx = pop_idx * 2 + link_local // 4
    exporter_idx = router_idx
    # Our side: ~16k servers in 64 /24s.
    src = (0xC6336400 + rng.integers(0, 64, n) * 256 + rng.integers(1, 255, n)).astype(np.uint64)
    # Far side: Zipf over ~1M popular addresses, plus 20 % uniform long tail (scans, P2P).
    far = np.minimum(rng.zipf(1.2, n), 1_000_000).astype(np.uint64)
    dst = (0x0B000000 + far * 2654435761 % (1 << 28)).astype(np.uint64)
    tail = rng.random(n) < 0.2
    dst[tail] = rng.integers(0x01000000, 0xDF000000, int(tail.sum()), dtype=np.uint64)
    dst_prefix = dst & 0xFFFFFF00
    # AS popularity is Zipf too (a few clouds/CDNs carry most bytes); up to 5000 ASes.
    dst_as = (64512 + np.minimum(rng.zipf(1.4, n), 5000)).astype(np.uint32)
    size = np.clip(rng.lognormal(8.5, 1.6, n), 40, 5e7).astype(np.uint64)
    packets = np.maximum(size // np.clip(rng.normal(900, 300, n), 64, 1500).astype(np.uint64), 1)
    rate = np.where(exporter_idx % 2 == 0, 1000, 2048).astype(np.uint32)
    web = rng.random(n) < 0.7
    dport = np.where(
        web,
        rng.choice(np.array([443, 80], np.uint16), n, p=[0.85, 0.15]),
        rng.integers(1024, 65535, n).astype(np.uint16),
    )
    sport = rng.integers(32768, 61000, n).astype(np.uint16)
    proto = np.where(rng.random(n) < 0.9, 6, 17).astype(np.uint8)
    links = [f"{p}-tr{j}" for p in POPS for j in range(8)]
    routers = [f"{p}-edge{j}" for p in POPS for j in range(2)]
    return flows.flow_table(
        {
            "time_received": t,
            "time_start": t - rng.integers(0, 60_000, n),
            "time_end": t - rng.integers(0, 1000, n),
            "flow_type": np.full(n, 3, np.uint8),
            "exporter": flows.ipv4_to_addr(0xC0000200 + exporter_idx.astype(np.uint64)),
            "observation_domain": exporter_idx.astype(np.uint32),
            "pop": (pop_idx, POPS),
            "router": (router_idx, routers),
            "link_id": (link_idx, links),
            "in_if": (100 + link_local).astype(np.uint32),
            "out_if": (1 + link_local).astype(np.uint32),
            "src_addr": flows.ipv4_to_addr(src),
            "dst_addr": flows.ipv4_to_addr(dst),
            "src_port": sport,
            "dst_port": dport,
            "ip_proto": proto,
            "tcp_flags": np.where(proto == 6, rng.choice(np.array([16, 24, 27], np.uint8), n), 0).astype(np.uint8),
            "bytes": size,
            "packets": packets,
            "sampling_rate": rate,
            "bytes_scaled": size * rate,
            "packets_scaled": packets * rate,
            "src_as": np.full(n, 64500, np.uint32),
            "dst_as": dst_as,
            "dst_prefix": flows.ipv4_to_addr(dst_prefix),
            "dst_prefix_len": np.full(n, 24, np.uint8),
            "next_hop": flows.ipv4_to_addr(0xC6336300 + link_idx.astype(np.uint64)),
        }
    )


def run(client: ClickHouseClient, batches: list[pa.Table], label: str) -> float:
    times = []
    for i, b in enumerate(batches):
        t0 = time.perf_counter()
        client.insert_arrow("netpilot.flows_raw", b, f"bench/{label}/{i}")
        times.append(time.perf_counter() - t0)
    rows = sum(b.num_rows for b in batches)
    total = sum(times)
    per_batch = [b.num_rows / t for b, t in zip(batches, times)]
    print(
        f"{label:28} {rows:>9,} rows  {rows / total:>11,.0f} rows/s overall  "
        f"median batch {statistics.median(per_batch):>11,.0f} rows/s"
    )
    return rows / total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--batch", type=int, default=100_000)
    ap.add_argument("--path", type=Path, default=None)
    args = ap.parse_args()
    path = args.path or Path(tempfile.mkdtemp(prefix="bench-ch-"))
    shutil.rmtree(path, ignore_errors=True)
    start_ms = (int(time.time()) // 3600 - 1) * 3_600_000
    t0 = time.perf_counter()
    # contiguous time across batches (100k flows/s), like a live stream
    batches = [
        synthetic_flows(args.batch, start_ms + (i * args.batch * 1000) // 100_000, seed=i)
        for i in range(args.rows // args.batch)
    ]
    print("load average before: {:.1f} {:.1f} {:.1f} (2 cores; figures scale with it)".format(*os.getloadavg()))
    print(
        f"generated {args.rows:,} flows in {time.perf_counter() - t0:.1f}s "
        f"(Arrow {sum(b.nbytes for b in batches) / args.rows:.0f} B/flow in memory)"
    )

    client = ClickHouseClient(f"chdb://{path}")
    try:
        migrate(client, "netpilot", Retention(), 1000)
        run(client, batches, "raw + 1m/5m/1h rollup views")
        for view in ("flows_1m_mv", "flows_5m_mv", "flows_1h_mv"):
            client.command(f"DROP VIEW netpilot.{view}")
        client.command("TRUNCATE TABLE netpilot.flows_raw")
        run(client, batches, "raw table only")
        client.command("OPTIMIZE TABLE netpilot.flows_raw FINAL")
        rows, disk, parts = client.rows(
            "SELECT sum(rows), sum(bytes_on_disk), count() FROM system.parts "
            "WHERE database = 'netpilot' AND table = 'flows_raw' AND active"
        )[0]
        print(
            f"after OPTIMIZE FINAL: {rows:,} rows in {parts} parts, {disk:,} bytes on disk = {disk / rows:.1f} B/flow"
        )
        cols = client.rows(
            "SELECT name, data_compressed_bytes FROM system.columns WHERE "
            "database = 'netpilot' AND table = 'flows_raw' ORDER BY 2 DESC"
        )
        print("per column (B/flow): " + ", ".join(f"{n} {b / rows:.1f}" for n, b in cols[:12]))
    finally:
        client.close()
        if args.path is None:
            shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    main()
