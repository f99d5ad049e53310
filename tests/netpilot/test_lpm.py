"""PrefixTable against a brute-force longest-prefix match with the ipaddress module."""

from __future__ import annotations

import ipaddress
import random

import numpy as np

from netpilot.lpm import PrefixTable
from netpilot.wire.flows import addr_to_str, str_to_addr


def _addrs(texts: list[str]) -> np.ndarray:
    return np.frombuffer(b"".join(str_to_addr(t) for t in texts), np.uint8).reshape(-1, 16)


def test_longest_prefix_wins_for_both_families() -> None:
    t = PrefixTable.build(
        ["0.0.0.0/0", "198.51.100.0/24", "198.51.100.128/25", "2001:db8::/32", "2001:db8:1::/48", "::/0"],
        values=[10, 11, 12, 13, 14, 15],
    )
    idx, plen, paddr = t.lookup(
        _addrs(["198.51.100.7", "198.51.100.200", "192.0.2.1", "2001:db8:1::5", "2001:db8:2::1", "3fff::1"])
    )
    assert idx.tolist() == [11, 12, 10, 14, 13, 15]
    assert plen.tolist() == [24, 25, 0, 48, 32, 0]
    assert [addr_to_str(bytes(p)) for p in paddr[:2]] == ["198.51.100.0", "198.51.100.128"]
    assert addr_to_str(bytes(paddr[3])) == "2001:db8:1::"


def test_no_route_and_no_cross_family_match() -> None:
    t = PrefixTable.build(["::/0", "2001:db8::/32"])
    idx, plen, paddr = t.lookup(_addrs(["192.0.2.1"]))  # a v6 default does not carry IPv4
    assert idx.tolist() == [-1] and plen.tolist() == [0] and not paddr.any()
    empty = PrefixTable.build([])
    assert empty.lookup(_addrs(["192.0.2.1"]))[0].tolist() == [-1]


def test_random_tables_match_brute_force() -> None:
    rng = random.Random(3)
    nets = set()
    for _ in range(300):
        if rng.random() < 0.6:
            nets.add(ipaddress.ip_network((rng.getrandbits(32), rng.randint(8, 32)), strict=False))
        else:
            nets.add(ipaddress.ip_network((rng.getrandbits(128) & ~(0xFFFF << 80), rng.randint(16, 128)), strict=False))
    nets = list(nets)
    table = PrefixTable.build(nets)
    probes = []
    for _ in range(400):
        base = rng.choice(nets)
        probes.append(base.network_address + rng.randrange(min(base.num_addresses, 1 << 20)))
        probes.append(ipaddress.ip_address(rng.getrandbits(32)))
    idx, plen, _ = table.lookup(_addrs([str(p) for p in probes]))
    for p, i, ln in zip(probes, idx.tolist(), plen.tolist()):
        best = max((n for n in nets if n.version == p.version and p in n), key=lambda n: n.prefixlen, default=None)
        assert (i == -1) if best is None else (nets[i] == best and ln == best.prefixlen), (p, i, best)


def test_host_bits_ignored_objects_accepted_and_bad_prefix_named() -> None:
    t = PrefixTable.build(["198.51.100.77/24", ipaddress.ip_network("2001:db8::/32"), "192.0.2.1"])
    idx, plen, _ = t.lookup(_addrs(["198.51.100.1", "2001:db8::9", "192.0.2.1", "192.0.2.2"]))
    assert idx.tolist() == [0, 1, 2, -1] and plen.tolist() == [24, 32, 32, 0]
    for bad in ("198.51.100.0/33", "nonsense/8", "2001:db8::/129"):
        try:
            PrefixTable.build([bad])
        except ValueError as exc:
            assert bad in str(exc)
        else:
            raise AssertionError(f"{bad} accepted")
