"""MRT TABLE_DUMP_V2 dumps written per RFC 6396, read back through mrtparse into routes."""

from __future__ import annotations

import gzip
import ipaddress
import random
from pathlib import Path as FsPath

from producers.routes.mrt import LinkRef, MrtReport, read_mrt
from tests.producers.routes.mrtwriter import Path, peer_index_table, rib

PEERS = [("198.51.100.1", 64500), ("2001:db8::1", 64501), ("198.51.100.99", 64999)]
MAP = {"198.51.100.1": LinkRef("fra1", "transit-a"), "2001:db8::1": LinkRef("fra1", "pni-b")}


def _dump(path: FsPath, n_v4: int = 300, n_v6: int = 200) -> list[tuple[str, int, Path]]:
    rng = random.Random(7)
    blobs, expected = [peer_index_table(PEERS)], []
    for i in range(n_v4):
        prefix = f"10.{i // 256}.{i % 256}.0/24"
        paths = [
            Path(
                0,
                (64500, rng.randint(1, 4_200_000_000)),
                "198.51.100.1",
                "igp",
                local_pref=100 + i % 3,
                med=i,
                communities=(f"64500:{i % 65535}", "65535:1"),
            ),
            Path(2, (64999,), "198.51.100.99"),
        ]  # a peer that is no link of ours
        blobs.append(rib(i, prefix, paths))
        expected.append((prefix, 0, paths[0]))
    for i in range(n_v6):
        prefix = str(ipaddress.ip_network(f"2001:db8:{i:x}::/48"))
        paths = [Path(1, (64501, 64510, 64520), "2001:db8::1", "incomplete", local_pref=None)]
        blobs.append(rib(n_v4 + i, prefix, paths))
        expected.append((prefix, 1, paths[0]))
    path.write_bytes(b"".join(blobs))
    return expected


def test_rib_dump_counts_and_attributes(tmp_path: FsPath) -> None:
    expected = _dump(tmp_path / "rib.mrt")
    report = MrtReport()
    routes = list(read_mrt(tmp_path / "rib.mrt", MAP, report))
    assert (report.records, report.rib_entries, report.routes) == (501, 800, 500)
    assert report.unmapped_peers == {"198.51.100.99": 300}
    assert not report.skipped_records and not report.errors
    by_prefix = {r.prefix: r for r in routes}
    assert len(by_prefix) == 500
    for prefix, peer, p in expected:
        r = by_prefix[prefix]
        assert (r.pop, r.link_id) == ("fra1", "transit-a" if peer == 0 else "pni-b")
        assert r.as_path == p.as_path and r.origin_as == p.as_path[-1]
        assert r.next_hop == p.next_hop and r.origin == p.origin
        assert r.local_pref == (p.local_pref if p.local_pref is not None else 100)
        assert r.med == (p.med or 0) and r.communities == p.communities


def test_gzipped_dump_and_truncated_tail(tmp_path: FsPath) -> None:
    raw = tmp_path / "rib.mrt"
    _dump(raw, 50, 0)
    data = raw.read_bytes()
    (tmp_path / "rib.mrt.gz").write_bytes(gzip.compress(data))
    assert len(list(read_mrt(tmp_path / "rib.mrt.gz", MAP))) == 50
    # a dump cut mid-record: the good records load, the broken tail is counted and reported
    (tmp_path / "cut.mrt").write_bytes(data[:-7])
    report = MrtReport()
    routes = list(read_mrt(tmp_path / "cut.mrt", MAP, report))
    assert len(routes) == 49
    assert report.skipped_records["parse-error"] == 1 and "length" in report.errors[0]
