"""``netpilot decode FILE.pcap [--stats]``: decode a capture of exporter datagrams.

Prints one JSON object per flow (stdout); ``--stats`` adds a summary object on stderr
(datagrams and flows per protocol, drops by reason, templates). Templates seen earlier in
the capture apply, exactly as in the running collector.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import typer

from netpilot.wire.flows import FlowType, addr_to_str
from producers.collector.decode.decoder import Decoder, DecoderOptions
from producers.collector.pcapfile import CaptureStats, read_datagrams

app = typer.Typer(add_completion=False)

CHUNK = 2000  # datagrams per decode pass: bounded memory on big captures
FIELDS = (
    "observation_domain",
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
)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def flow_rows(result) -> list[dict]:
    """JSON-ready dicts for the flows of one decode result (troubleshooting, not a hot path)."""
    c = result.columns
    lists = {k: c[k].tolist() for k in FIELDS + ("time_start", "time_end", "flow_type", "flags")}
    rows = []
    for i in range(result.n):
        nh = bytes(c["next_hop"][i])
        row = {
            "exporter": addr_to_str(bytes(c["exporter"][i])),
            "protocol": FlowType(lists["flow_type"][i]).label,
            "observation_domain": lists["observation_domain"][i],
            "time_start": _iso(lists["time_start"][i]),
            "time_end": _iso(lists["time_end"][i]),
            "src_addr": addr_to_str(bytes(c["src_addr"][i])),
            "dst_addr": addr_to_str(bytes(c["dst_addr"][i])),
        }
        row.update({k: lists[k][i] for k in FIELDS if k != "observation_domain"})
        row["next_hop"] = addr_to_str(nh) if any(nh) else None
        row["sampling_unknown"] = bool(lists["flags"][i] & 1)
        rows.append(row)
    return rows


@app.command()
def decode(
    file: Path = typer.Argument(..., help="pcap/pcapng capture of exporter datagrams."),
    stats: bool = typer.Option(False, "--stats", help="Print a summary to stderr."),
    default_sampling_rate: int = typer.Option(1, min=1, help="Rate for flows whose exporter states none."),
) -> None:
    """Decode NetFlow v5/v9, IPFIX and sFlow v5 datagrams in FILE; one JSON object per flow."""
    decoder = Decoder(DecoderOptions(default_sampling_rate=default_sampling_rate))
    cap = CaptureStats()
    totals: dict[str, Counter] = {"datagrams": Counter(), "flows": Counter(), "drops": Counter()}
    summary = {"sampling_unknown": 0, "link_stats": 0}
    out = sys.stdout
    batch: list[tuple[bytes, bytes, int]] = []

    def flush() -> None:
        result = decoder.decode(batch)
        batch.clear()
        for row in flow_rows(result):
            out.write(json.dumps(row) + "\n")
        for (_, proto), n in result.datagrams.items():
            totals["datagrams"][proto] += n
        for (_, proto), n in result.flows.items():
            totals["flows"][proto] += n
        totals["drops"].update(result.drops)
        summary["sampling_unknown"] += result.sampling_unknown
        summary["link_stats"] += len(result.link_stats)

    for d in read_datagrams(file, cap):
        batch.append((d.src, d.payload, d.ts_ms))
        if len(batch) >= CHUNK:
            flush()
    flush()
    if stats:
        report = {
            "packets": cap.packets,
            "udp_datagrams": cap.datagrams,
            "skipped": dict(cap.skipped),
            **{k: dict(v) for k, v in totals.items()},
            **summary,
            "templates": decoder.template_count(),
        }
        sys.stderr.write(json.dumps(report) + "\n")
