"""``netpilot decode FILE.pcap``: decode a capture of exporter datagrams.

Prints one row per flow, in capture order, with where it came from (frame number,
exporter address and port, template id, sequence number): JSON lines by default, or CSV,
Parquet or Arrow IPC (``--format``). ``--explain`` adds one JSON object per drop on stderr
(frame, offset in the datagram, reason, message); ``--stats`` a summary. Templates seen
earlier in the capture apply, exactly as in the running collector, and data still waiting
for its template when the capture ends is counted (``no_template``), not lost silently.
"""

from __future__ import annotations

import json
import sys
from array import array
from collections import Counter
from pathlib import Path
from typing import IO, Any

import numpy as np
import typer

from netpilot.wire.flows import addr_to_str
from producers.collector.decode.decoder import Decoder, DecoderOptions
from producers.collector.decode.result import DecodeResult
from producers.collector.decode_output import FORMATS, Writer, frame
from producers.collector.pcapfile import CaptureStats, read_datagrams

app = typer.Typer(add_completion=False)

CHUNK = 2000  # datagrams per decode pass: bounded memory on big captures


class _Run:
    """The state of one ``netpilot decode``: decoder, writer and what the summary counts."""

    def __init__(self, decoder: Decoder, writer: Writer, explain: IO[str] | None) -> None:
        self.decoder, self.writer, self.explain = decoder, writer, explain
        self.frames, self.ports, self.exporters = array("q"), array("q"), bytearray()
        self.totals: dict[str, Counter[str]] = {"datagrams": Counter(), "flows": Counter(), "drops": Counter()}
        self.summary = {"sampling_unknown": 0, "link_stats": 0}

    def add(self, result: DecodeResult) -> None:
        frames = np.frombuffer(self.frames, np.int64)
        ports = np.frombuffer(self.ports, np.int64)
        if result.n:
            self.writer.write(frame(result, frames, ports))
        for (_, proto), n in result.datagrams.items():
            self.totals["datagrams"][proto] += n
        for (_, proto), n in result.flows.items():
            self.totals["flows"][proto] += n
        self.totals["drops"].update(result.drops)
        self.summary["sampling_unknown"] += result.sampling_unknown
        self.summary["link_stats"] += len(result.link_stats)
        if self.explain is not None:
            for e in result.explained:
                exporter = bytes(self.exporters[16 * e.datagram : 16 * e.datagram + 16])
                row = {
                    "frame": int(frames[e.datagram]),
                    "exporter": addr_to_str(exporter),
                    "exporter_port": int(ports[e.datagram]),
                    "offset": e.offset,
                    "reason": e.reason,
                    "count": e.count,
                    "message": e.message,
                }
                self.explain.write(json.dumps(row) + "\n")


@app.command()
def decode(
    file: Path = typer.Argument(..., help="pcap/pcapng capture of exporter datagrams."),
    stats: bool = typer.Option(False, "--stats", help="Print a summary to stderr."),
    explain: bool = typer.Option(False, "--explain", help="Print every drop (frame, offset, reason) to stderr."),
    fmt: str = typer.Option("jsonl", "--format", help=f"Output format: {', '.join(FORMATS)}."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write here instead of stdout."),
    default_sampling_rate: int = typer.Option(1, min=1, help="Rate for flows whose exporter states none."),
    template_scope: str = typer.Option(
        "session", help="Templates per exporter address and source port (session), or per address (exporter)."
    ),
) -> None:
    """Decode NetFlow v5/v9, IPFIX and sFlow v5 datagrams in FILE; one row per flow, in capture order."""
    if fmt not in FORMATS:
        raise typer.BadParameter(f"{fmt!r}: choose one of {', '.join(FORMATS)}", param_hint="--format")
    if template_scope not in ("session", "exporter"):
        raise typer.BadParameter(f"{template_scope!r}: session or exporter", param_hint="--template-scope")
    options = DecoderOptions(
        default_sampling_rate=default_sampling_rate,
        template_scope=template_scope,  # type: ignore[arg-type]
        provenance=True,
        explain=explain,
    )
    decoder = Decoder(options)
    cap = CaptureStats()
    sink: IO[bytes] = output.open("wb") if output is not None else sys.stdout.buffer
    try:
        run = _Run(decoder, Writer(sink, fmt), sys.stderr if explain else None)
        batch: list[tuple[bytes, bytes, int, int]] = []
        for d in read_datagrams(file, cap):
            batch.append((d.src, d.payload, d.ts_ms, d.src_port))
            run.frames.append(d.frame)
            run.ports.append(d.src_port)
            run.exporters += d.src
            if len(batch) >= CHUNK:
                run.add(decoder.decode(batch))
                batch.clear()
        run.add(decoder.decode(batch))
        run.add(decoder.flush())  # the capture is over: what still waits for a template is lost
        run.writer.close(frame(decoder.flush(), np.zeros(0, np.int64), np.zeros(0, np.int64)))
        sink.flush()
    finally:
        if output is not None:
            sink.close()
    if stats:
        report: dict[str, Any] = {
            "packets": cap.packets,
            "udp_datagrams": cap.datagrams,
            "skipped": dict(cap.skipped),
            **{k: dict(v) for k, v in run.totals.items()},
            **run.summary,
            "templates": decoder.template_count(),
        }
        sys.stderr.write(json.dumps(report) + "\n")
