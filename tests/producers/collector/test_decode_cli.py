"""``netpilot decode`` as a tool: capture order with provenance, ``--explain``, formats."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from tests.producers.collector.decode.builders import ipfix, ipfix_set, ipfix_template, v5, v9, v9_template
from tests.producers.collector.traffic import tshark_fields, write_datagram_pcap

PORT = 2055
A = [(1, 4), (2, 4)]
B = [(2, 4), (1, 4)]


def with_sequence(datagram: bytes, seq: int, offset: int) -> bytes:
    return datagram[:offset] + struct.pack(">I", seq) + datagram[offset + 4 :]


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    datagrams = [
        with_sequence(
            ipfix(
                [
                    ipfix_template(300, A),
                    ipfix_template(301, B),
                    ipfix_set(300, struct.pack(">IIII", 1, 1, 2, 1)),
                    ipfix_set(301, struct.pack(">II", 1, 3)),
                    ipfix_set(300, struct.pack(">II", 4, 1)),
                ]
            ),
            70,
            8,
        ),
        b"\x00\x07" + bytes(30),  # not an export: explained
        with_sequence(v9([v9_template(400, B), ipfix_set(400, struct.pack(">II", 1, 5))]), 71, 12),
        v5(records=2),
        ipfix([ipfix_set(302, struct.pack(">II", 6, 1))]),  # its template never comes
    ]
    pcap = tmp_path_factory.mktemp("decode") / "mixed.pcap"
    write_datagram_pcap(pcap, datagrams, PORT)
    return pcap


def netpilot(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "netpilot.cli", *args], capture_output=True, text=True, timeout=120)


def test_rows_in_capture_order_with_frame_template_and_sequence_like_tshark(capture: Path) -> None:
    res = netpilot("decode", str(capture), "--stats", "--explain")
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["bytes"] for r in rows] == [1, 2, 3, 4, 5, 1500, 1501]
    assert [r["template_id"] for r in rows] == [300, 300, 301, 300, 400, 0, 0]
    frames = {int(f): int(s) for f, s in tshark_fields(capture, PORT, "cflow", ["frame.number", "cflow.sequence"])}
    assert [r["frame"] for r in rows] == [1, 1, 1, 1, 3, 4, 4]
    assert [r["sequence"] for r in rows] == [frames[r["frame"]] for r in rows] == [70, 70, 70, 70, 71, 0, 0]
    assert {r["exporter"] for r in rows} == {"127.0.0.1"} and {r["exporter_port"] for r in rows} == {40000}
    assert [r["protocol"] for r in rows] == ["ipfix"] * 4 + ["netflow9"] + ["netflow5"] * 2
    assert rows[0]["time_received"].endswith("Z") and rows[0]["next_hop"] is None
    *explained, stats = [json.loads(line) for line in res.stderr.splitlines()]
    assert [(e["frame"], e["offset"], e["reason"]) for e in explained] == [
        (2, 0, "unknown_version"),
        (5, None, "no_template"),  # the capture ended with it still waiting
    ]
    assert stats["drops"] == {"unknown_version": 1, "no_template": 1}
    assert stats["flows"] == {"ipfix": 4, "netflow9": 1, "netflow5": 2}


@pytest.mark.parametrize("fmt", ["csv", "parquet", "arrow"])
def test_other_formats_carry_the_same_rows(capture: Path, tmp_path: Path, fmt: str) -> None:
    jsonl = netpilot("decode", str(capture))
    assert jsonl.returncode == 0, jsonl.stderr
    expected = pl.read_ndjson(jsonl.stdout.encode())
    out = tmp_path / f"flows.{fmt}"
    res = netpilot("decode", str(capture), "--format", fmt, "-o", str(out))
    assert res.returncode == 0, res.stderr
    got = {"csv": pl.read_csv, "parquet": pl.read_parquet, "arrow": pl.read_ipc_stream}[fmt](out)
    assert got.columns == expected.columns and len(got) == len(expected) == 7
    for name in ("frame", "bytes", "template_id", "sequence", "src_addr", "protocol"):
        assert got[name].cast(pl.String).to_list() == expected[name].cast(pl.String).to_list()
    if fmt != "csv":  # typed formats keep real timestamps
        assert got.schema["time_end"] == pl.Datetime("ms", "UTC")


def test_an_empty_capture_gives_a_valid_empty_file(tmp_path: Path) -> None:
    pcap = tmp_path / "empty.pcap"
    write_datagram_pcap(pcap, [], PORT)
    out = tmp_path / "flows.parquet"
    res = netpilot("decode", str(pcap), "--format", "parquet", "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert pl.read_parquet(out).shape[0] == 0 and "frame" in pl.read_parquet(out).columns
    res = netpilot("decode", str(pcap), "--format", "xml")
    assert res.returncode == 2 and "xml" in res.stderr
