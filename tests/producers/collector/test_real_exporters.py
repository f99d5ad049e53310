"""Real exporters, real packets: our decode equals tshark's, flow for flow.

For each exporter the flow count and the multiset of per-flow (bytes, packets) must equal
tshark's decode of the very same datagrams, and the decode must drop nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from netpilot.wire.flows import FlowFlags
from producers.collector.decode.decoder import Decoder
from tests.producers.collector.conftest import LOOPBACK
from tests.producers.collector.exporters import Export
from tests.producers.collector.traffic import tshark_fields

NETFLOW = [
    "softflowd-5",
    "softflowd-10",
    "pmacctd-5",
    "pmacctd-9",
    "pmacctd-10",
    "fprobe-5",
    "nfreplay-5",
    "nfreplay-9",
    "softflowd-9-s10",
    "softflowd-10-s10",
    "pmacctd-9-s4",
    "pmacctd-10-s4",
]


def tshark_netflow(e: Export) -> Counter[tuple[int, int]]:
    rows = tshark_fields(e.pcap, e.port, "cflow", ["cflow.octets", "cflow.packets"])
    pairs: Counter[tuple[int, int]] = Counter()
    for octets, packets in rows:
        pairs.update(zip(map(int, octets.split(",")), map(int, packets.split(","))))
    return pairs


def decode(e: Export):  # type: ignore[no-untyped-def]
    result = Decoder().decode([(LOOPBACK, d, 1_000) for d in e.datagrams])
    assert not result.drops, (e.name, dict(result.drops), result.errors)
    return result


def ours(result) -> Counter[tuple[int, int]]:  # type: ignore[no-untyped-def]
    return Counter(zip(result.columns["bytes"].tolist(), result.columns["packets"].tolist()))


@pytest.mark.parametrize("name", NETFLOW)
def test_netflow_and_ipfix_exporters_match_tshark(exports: dict[str, Export], name: str) -> None:
    e = exports[name]
    assert e.datagrams, f"{name} exported nothing"
    expected = tshark_netflow(e)
    result = decode(e)
    assert result.n == sum(expected.values()) > 0
    assert ours(result) == expected
    assert (result.columns["time_end"] >= result.columns["time_start"]).all()
    # every flow the pcap made has addresses from the documentation ranges
    assert (result.columns["src_addr"].any(axis=1)).all()


def test_softflowd_v9_decodes_every_flowset(exports: dict[str, Export]) -> None:
    """softflowd's v9 header count omits its last flowset, and tshark stops at the count.

    So tshark shows one flow fewer than softflowd sent; we decode by set length and get
    exactly the flows softflowd's IPFIX export of the same pcap carries.
    """
    v9, ipfix = decode(exports["softflowd-9"]), tshark_netflow(exports["softflowd-10"])
    partial = tshark_netflow(exports["softflowd-9"])
    assert ours(v9) == ipfix
    assert not partial - ours(v9)
    assert sum(partial.values()) <= v9.n


def test_ipfix_biflows_split_into_the_unidirectional_flows(exports: dict[str, Export]) -> None:
    """softflowd -b sends RFC 5103 biflows (reverse counters under PEN 29305): decoded into
    one flow per direction that carried traffic, they equal softflowd's plain IPFIX export."""
    e = exports["softflowd-10-b"]
    rows = tshark_fields(e.pcap, e.port, "cflow", ["cflow.octets", "cflow.packets"])
    nonzero: Counter[tuple[int, int]] = Counter()
    for octets, packets in rows:  # tshark lists forward and reverse counters together
        nonzero.update(p for p in zip(map(int, octets.split(",")), map(int, packets.split(","))) if p != (0, 0))
    bi, uni = decode(e), decode(exports["softflowd-10"])
    assert ours(bi) == nonzero == ours(uni)

    def tuples(r) -> Counter:  # type: ignore[no-untyped-def,type-arg]
        c = r.columns
        icmp = (c["ip_proto"] == 1) | (c["ip_proto"] == 58)
        dst_port = np.where(icmp, -1, c["dst_port"])  # softflowd -b exports ICMP type 0 both ways
        return Counter(
            zip(
                map(bytes, c["src_addr"]),
                map(bytes, c["dst_addr"]),
                c["src_port"].tolist(),
                dst_port.tolist(),
                c["ip_proto"].tolist(),
                c["bytes"].tolist(),
            )
        )

    assert tuples(bi) == tuples(uni)


def test_sflow_from_pmacctd_matches_tshark(exports: dict[str, Export]) -> None:
    e = exports["pmacctd-sflow"]
    rows = tshark_fields(e.pcap, e.port, "sflow", ["sflow_245.header.frame_length"])
    expected = Counter(int(v) for row in rows for v in row[0].split(",") if v)
    result = decode(e)
    assert Counter(result.columns["bytes"].tolist()) == expected
    assert (result.columns["packets"] == 1).all()
    assert (result.columns["sampling_rate"] == 1).all()
    assert not (result.columns["flags"] & FlowFlags.SAMPLING_UNKNOWN).any()
    assert (result.columns["in_if"] == 7).all()  # sfprobe_ifindex
    protos = Counter(result.columns["ip_proto"].tolist())
    assert set(protos) == {1, 6, 17}


def test_fields_agree_between_exporters(exports: dict[str, Export]) -> None:
    """softflowd and pmacctd saw the same pcap: same 5-tuples, same bytes per flow."""

    def keyed(name: str) -> set[tuple]:
        c = decode(exports[name]).columns
        return set(
            zip(
                map(bytes, c["src_addr"]),
                map(bytes, c["dst_addr"]),
                c["src_port"].tolist(),
                c["dst_port"].tolist(),
                c["ip_proto"].tolist(),
                c["bytes"].tolist(),
            )
        )

    assert keyed("softflowd-10") == keyed("pmacctd-10")


def test_sampling_rate_from_v9_options_data(exports: dict[str, Export]) -> None:
    """softflowd v9 sends an options template + record with samplingInterval (IE 34)."""
    result = decode(exports["softflowd-9"])
    assert (result.columns["sampling_rate"] == 1).all()
    assert result.sampling_unknown == 0
    v5 = decode(exports["softflowd-5"])  # v5 header says 0: unknown, default applied, flagged
    assert v5.sampling_unknown == v5.n
    assert (v5.columns["flags"] & FlowFlags.SAMPLING_UNKNOWN).all()


@pytest.mark.parametrize(
    ("name", "rate"), [("softflowd-9-s10", 10), ("softflowd-10-s10", 10), ("pmacctd-9-s4", 4), ("pmacctd-10-s4", 4)]
)
def test_sampling_rate_from_real_exporters_options(exports: dict[str, Export], name: str, rate: int) -> None:
    result = decode(exports[name])
    assert result.n > 0 and result.sampling_unknown == 0
    assert (result.columns["sampling_rate"] == rate).all()
    assert (result.columns["bytes_scaled"] == result.columns["bytes"] * rate).all()
    assert (result.columns["packets_scaled"] == result.columns["packets"] * rate).all()


def test_netpilot_decode_cli_prints_json_flows(exports: dict[str, Export]) -> None:
    e = exports["softflowd-10"]
    res = subprocess.run(
        [sys.executable, "-m", "netpilot.cli", "decode", str(e.pcap), "--stats"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert Counter((r["bytes"], r["packets"]) for r in rows) == tshark_netflow(e)
    keys = {
        "exporter",
        "protocol",
        "observation_domain",
        "time_start",
        "time_end",
        "src_addr",
        "dst_addr",
        "src_port",
        "dst_port",
        "ip_proto",
        "tcp_flags",
        "bytes",
        "packets",
        "sampling_rate",
        "bytes_scaled",
        "packets_scaled",
        "in_if",
        "out_if",
        "src_as",
        "dst_as",
        "next_hop",
    }
    assert keys <= set(rows[0])
    assert {r["protocol"] for r in rows} == {"ipfix"}
    assert {r["exporter"] for r in rows} == {"127.0.0.1"}
    assert {r["next_hop"] for r in rows} == {None}
    assert any(r["src_addr"] == "2001:db8::10" for r in rows)
    stats = json.loads(res.stderr.strip().splitlines()[-1])
    assert stats["flows"] == {"ipfix": len(rows)} and stats["drops"] == {}
