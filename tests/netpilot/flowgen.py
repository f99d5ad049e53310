"""Deterministic synthetic flow batches for tests and benchmarks (numpy, no per-flow Python)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from netpilot.wire import flows


def make_flows(
    n: int, seed: int = 0, pop: str = "ams1", ipv6_share: float = 0.2, start_ms: int = 1_790_000_000_000
) -> pa.Table:
    rng = np.random.default_rng(seed)
    v6 = rng.random(n) < ipv6_share
    src = flows.ipv4_to_addr(rng.integers(0xC0000200, 0xC00002FF, n, dtype=np.uint32))
    dst = flows.ipv4_to_addr(rng.integers(0xC6336400, 0xC63364FF, n, dtype=np.uint32))
    v6_dst = np.zeros((n, 16), np.uint8)
    v6_dst[:, :4] = [0x20, 0x01, 0x0D, 0xB8]
    v6_dst[:, 4:] = rng.integers(0, 256, (n, 12), dtype=np.uint8)
    dst[v6] = v6_dst[v6]
    t0 = start_ms + np.sort(rng.integers(0, 60_000, n))
    rate = rng.choice(np.array([1, 100, 1000], np.uint32), n)
    b = rng.integers(40, 1_500_000, n, dtype=np.uint64)
    p = np.maximum(1, b // 800).astype(np.uint64)
    return flows.flow_table(
        {
            "time_received": t0 + 1000,
            "time_start": t0 - rng.integers(0, 30_000, n),
            "time_end": t0,
            "flow_type": rng.integers(1, 5, n, dtype=np.uint8),
            "exporter": flows.ipv4_to_addr(np.full(n, 0xC0000201, np.uint32)),
            "observation_domain": np.zeros(n, np.uint32),
            "pop": pop,
            "router": (rng.integers(0, 2, n), ["r1", "r2"]),
            "in_if": rng.integers(1, 10, n, dtype=np.uint32),
            "out_if": rng.integers(10, 20, n, dtype=np.uint32),
            "link_id": (rng.integers(0, 3, n), [f"{pop}-r1:et-0/0/{i}" for i in range(3)]),
            "src_addr": src,
            "dst_addr": dst,
            "src_port": rng.integers(1024, 65535, n, dtype=np.uint16),
            "dst_port": rng.choice(np.array([80, 443, 53], np.uint16), n),
            "ip_proto": rng.choice(np.array([6, 17], np.uint8), n),
            "tcp_flags": rng.integers(0, 64, n, dtype=np.uint8),
            "bytes": b,
            "packets": p,
            "sampling_rate": rate,
            "bytes_scaled": b * rate,
            "packets_scaled": p * rate,
            "src_as": np.full(n, 64496, np.uint32),
            "dst_as": rng.choice(np.array([64500, 64501, 64502], np.uint32), n),
            "dst_prefix": dst,
            "dst_prefix_len": np.where(v6, 48, 24).astype(np.uint8),
            "next_hop": flows.ipv4_to_addr(np.full(n, 0xCB007101, np.uint32)),
            "flags": np.zeros(n, np.uint8),
        }
    )
