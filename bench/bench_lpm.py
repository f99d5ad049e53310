"""Longest-prefix-match lookups/s for a 1M-prefix table (IPv4 + IPv6), netpilot.lpm.PrefixTable.

    .venv/bin/python bench/bench_lpm.py [--prefixes 1000000] [--v6-share 0.2] [--batch 100000] [--repeat 5]

Prefixes are random but shaped like a full table: IPv4 mostly /24 (60 %), /19-/23 (30 %),
/8-/18 (10 %); IPv6 mostly /48 (50 %), /29-/47 (50 %). Lookup batches mix addresses inside
known prefixes (80 %) and random ones (20 %, mostly misses or short covering prefixes), in
flows/1's 16-byte IPv4-mapped layout. Prints build time and lookups/s (median of repeats).
"""

from __future__ import annotations

import argparse
import ipaddress
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from netpilot.lpm import PrefixTable


def make_prefixes(n: int, v6_share: float, rng: np.random.Generator) -> list[str]:
    n6 = int(n * v6_share)
    n4 = n - n6
    len4 = rng.choice(
        [24, 23, 22, 21, 20, 19, 16, 12, 8], size=n4, p=[0.60, 0.10, 0.08, 0.05, 0.04, 0.03, 0.06, 0.03, 0.01]
    )
    a4 = rng.integers(0x01000000, 0xDF000000, size=n4, dtype=np.uint64)
    mask4 = (0xFFFFFFFF << (32 - len4.astype(np.uint64))) & 0xFFFFFFFF
    a4 &= mask4
    out = [f"{ipaddress.IPv4Address(int(a))}/{int(p)}" for a, p in zip(a4, len4)]
    len6 = rng.choice([48, 44, 40, 36, 32, 29], size=n6, p=[0.5, 0.15, 0.1, 0.1, 0.1, 0.05])
    hi = (0x2000 << 48) | rng.integers(0, 1 << 60, size=n6, dtype=np.uint64).astype(object)
    for h, p in zip(hi, len6):
        v = (int(h) << 64) & ~((1 << (128 - int(p))) - 1) & ((1 << 128) - 1)
        out.append(f"{ipaddress.IPv6Address(v)}/{int(p)}")
    return out


def make_addresses(prefixes: list[str], n: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros((n, 16), np.uint8)
    pick = rng.integers(0, len(prefixes), size=int(n * 0.8))
    for row, i in enumerate(pick):
        net = ipaddress.ip_network(prefixes[i])
        host = int(net.network_address) + int(rng.integers(0, min(net.num_addresses, 1 << 62)))
        if net.version == 4:
            out[row, 10:12] = 0xFF
            out[row, 12:] = np.frombuffer(host.to_bytes(4, "big"), np.uint8)
        else:
            out[row] = np.frombuffer(host.to_bytes(16, "big"), np.uint8)
    rest = out[len(pick) :]
    rest[:] = rng.integers(0, 256, size=rest.shape, dtype=np.uint8)
    rest[::2, :10] = 0
    rest[::2, 10:12] = 0xFF  # half of the random ones are IPv4
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prefixes", type=int, default=1_000_000)
    ap.add_argument("--v6-share", type=float, default=0.2)
    ap.add_argument("--batch", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(42)
    prefixes = make_prefixes(args.prefixes, args.v6_share, rng)
    t0 = time.perf_counter()
    table = PrefixTable.build(prefixes, values=np.arange(len(prefixes)) % 64)
    build_s = time.perf_counter() - t0
    addrs = make_addresses(prefixes, args.batch, rng)
    table.lookup(addrs[:1000])  # warm-up
    times = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        idx, _, _ = table.lookup(addrs)
        times.append(time.perf_counter() - t)
    med = statistics.median(times)
    print(f"prefixes={len(prefixes):,} (v6 {args.v6_share:.0%})")
    print(f"build: {build_s:.1f} s from text prefixes")
    print(
        f"lookup: batch {args.batch:,} -> median {med * 1e3:.0f} ms = {args.batch / med / 1e6:.2f} M lookups/s "
        f"(best {args.batch / min(times) / 1e6:.2f} M/s); matched {np.mean(idx >= 0):.0%}"
    )


if __name__ == "__main__":
    main()
