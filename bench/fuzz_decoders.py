"""A long fuzz run of the flow decoders: mutated real-shaped datagrams, once, on demand.

    nice -n 19 .venv/bin/python bench/fuzz_decoders.py --examples 250000 [--protocols v5,v9,ipfix,sflow]

Not part of ``make test`` (the suite keeps its small fuzz test in
tests/producers/collector/decode/test_robustness.py); this is the million-input run.
Every protocol gets ``--examples`` Hypothesis examples; each example is one datagram,
drawn from valid seeds (the shapes bench_decode.py generates, plus sFlow counter samples
and extended router/gateway records) and mutated: bytes overwritten, cut, inserted,
32-bit words set to edge values, or truncated. One long-lived decoder per protocol sees
them all (template and pending state carry over, as in the collector).

Checked per datagram, beyond "no exception escapes":

* nothing dropped by the catch-all (``decode_failed`` means a decoder bug);
* the datagram is accounted for: counted as decoded, or at least one drop counted;
* every flow the decoder counts is in the result (``flows`` counters == rows; == Arrow
  table length, checked every 10th example);
* every record a NetFlow v5 header counts is a flow or a counted drop.

Hypothesis draws the seed datagram and a mutation seed (the mutations themselves are drawn
from ``random`` with that seed: two draws an example instead of dozens keep Hypothesis's
own cost below the decoder's, so a million examples take minutes, not an hour).
Examples run in chunks of ``--chunk`` (a fresh Hypothesis engine each, with its own
seed, so memory stays flat); a failing chunk is reported (shrunk example, error) and the
run goes on. Prints examples, failures and time per protocol; exits 1 on any failure.
"""

from __future__ import annotations

import argparse
import random
import struct
import sys
import time
import traceback
from pathlib import Path

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))

import bench_decode as shapes

from producers.collector.decode.decoder import Decoder, DecoderOptions
from producers.collector.decode.errors import Reason

NOW = shapes.NOW_S * 1000


def _sflow_extras(rng: random.Random) -> list[bytes]:
    """sFlow datagrams beyond the bench's: counter samples, extended router/gateway records,
    expanded samples, IPv6 agent, raw IPv4 headers."""
    flow = shapes.sflow_datagrams(1, rng, samples=1)[0]
    sample = flow[28:]  # the one flow sample (format, length, body)
    fmt, slen = struct.unpack_from(">II", sample)
    body = bytearray(sample[8:])
    gw = (
        struct.pack(">I4s", 1, bytes([203, 0, 113, 9]))
        + struct.pack(">IIII", 64500, 64496, 64497, 2)
        + struct.pack(">II", 2, 2)
        + struct.pack(">II", 64497, 64511)
        + struct.pack(">II", 1, 1)
        + struct.pack(">I", 64512)
    )
    router = struct.pack(">I16sI", 2, bytes(15) + b"\x01", 64)
    recs = struct.pack(">II", 1003, len(gw)) + gw + struct.pack(">II", 1002, len(router)) + router
    struct.pack_into(">I", body, 28, 3)  # three records now
    gw_sample = struct.pack(">II", 1, len(body) + len(recs)) + bytes(body) + recs
    # expanded flow sample: same records after the 44-byte expanded fixed part
    exp_body = struct.pack(">11I", 1, 0, 3, 256, 0, 0, 0, 7, 0, 9, 1) + bytes(body[32:])
    expanded = struct.pack(">II", 3, len(exp_body)) + exp_body
    generic = struct.pack(
        ">IIQIIQIIIIIIQIIIIII", 7, 6, 10**10, 1, 3, 10**9, 5, 0, 0, 0, 0, 0, 2 * 10**9, 9, 0, 0, 1, 2, 0
    )
    counters_body = struct.pack(">III", 1, 7, 1) + struct.pack(">II", 1, len(generic)) + generic
    counters = struct.pack(">II", 2, len(counters_body)) + counters_body
    raw4 = bytearray(sample)
    struct.pack_into(">I", raw4, 8 + 32 + 8, 11)  # header protocol: raw IPv4 (the Ethernet bytes then lie)

    def dgram(agent: bytes, *samples: bytes) -> bytes:
        return struct.pack(">I", 5) + agent + struct.pack(">IIII", 0, 7, 1000, len(samples)) + b"".join(samples)

    v4 = struct.pack(">I4s", 1, bytes([192, 0, 2, 1]))
    v6 = struct.pack(">I16s", 2, bytes(15) + b"\x02")
    return [
        dgram(v4, gw_sample, counters, expanded),
        dgram(v6, counters, sample),
        dgram(v4, bytes(raw4), gw_sample),
    ]


def seeds(protocol: str) -> list[bytes]:
    rng = random.Random(5)
    if protocol == "v5":
        return shapes.v5_datagrams(3, rng)
    if protocol == "sflow":
        return shapes.sflow_datagrams(2, rng, samples=3) + _sflow_extras(rng)
    version = 9 if protocol == "v9" else 10
    gens = [shapes.v9_datagrams if version == 9 else shapes.ipfix_datagrams]
    if version == 9:
        gens += [
            shapes._templated(9, 310, shapes.FIELDS + [(96, 0xFFFF)], shapes._v9_varlen),
            shapes._templated(9, 330, shapes.NSEL_FIELDS, shapes._nsel),
        ]
    else:
        gens += [
            shapes._templated(10, 320, shapes.BIFLOW_FIELDS, shapes._biflow),
            shapes._templated(10, 340, shapes.SECTION_FIELDS, shapes._section),
        ]
    out = []
    for gen in gens:
        out += gen(2, rng)  # the first carries the template, the second data only
    return out


EDGE_WORDS = (0, 1, 2, 3, 4, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFF, 0x10000, 1002, 1003)


def mutate(d: bytes, rng: random.Random) -> bytes:
    """0 to 5 mutations: bytes overwritten, cut or inserted, a word set to an edge value, a cut tail."""
    out = bytearray(d)
    for _ in range(rng.randint(0, 5)):
        op = rng.randint(0, 4)
        pos = rng.randrange(max(1, len(out)))
        if op == 0 and out:
            out[pos] = rng.randrange(256)
        elif op == 1:
            del out[pos : pos + rng.randint(1, 16)]
        elif op == 2:
            out[pos:pos] = rng.randbytes(rng.randint(0, 16))
        elif op == 3 and len(out) >= 4:  # a count, length or format word set to an edge value
            at = min(pos & ~3, len(out) - 4)
            word = rng.choice(EDGE_WORDS) if rng.random() < 0.7 else rng.randrange(1 << 32)
            out[at : at + 4] = struct.pack(">I", word)
        elif op == 4:
            del out[pos:]
    return bytes(out)


class Run:
    def __init__(self, protocol: str) -> None:
        self.protocol = protocol
        self.pool = seeds(protocol)
        self.decoder = Decoder(DecoderOptions(max_templates=256, pending_sets=128, pending_bytes=1 << 18))
        for d in self.pool:  # templates first, so mutated data sets meet one
            self.decoder.decode([(shapes.EXPORTER, d, NOW)])
        self.examples = self.datagrams_decoded = self.datagrams_dropped = self.flows = self.drops = 0

    def check(self, d: bytes) -> None:
        self.examples += 1
        r = self.decoder.decode([(shapes.EXPORTER, d, NOW)])
        assert not r.drops[Reason.DECODE_FAILED], r.errors
        decoded, dropped = sum(r.datagrams.values()), sum(r.drops.values())
        assert decoded <= 1 and (decoded or dropped), f"datagram neither decoded nor dropped: {r}"
        assert sum(r.flows.values()) == r.n, (r.flows, r.n)
        if self.examples % 10 == 0:  # building the Arrow table costs more than decoding one datagram
            assert len(r.table()) == r.n
        if self.protocol == "v5" and decoded and d[:2] == b"\x00\x05":
            count = struct.unpack_from(">H", d, 2)[0]
            # records the header counts are decoded or dropped; bytes beyond them are dropped too
            assert r.n <= count <= r.n + dropped, (count, r.n, r.drops)
        self.datagrams_decoded += decoded
        self.datagrams_dropped += 1 - decoded
        self.flows += r.n
        self.drops += dropped
        assert self.decoder.template_count() <= 256 and len(self.decoder.pending) <= 128

    def chunk(self, examples: int, chunk_seed: int) -> None:
        @seed(chunk_seed)
        @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(st.sampled_from(self.pool), st.integers(0, (1 << 64) - 1))
        def fuzz(base: bytes, mutation_seed: int) -> None:
            self.check(mutate(base, random.Random(mutation_seed)))

        fuzz()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=250_000, help="examples per protocol")
    ap.add_argument("--protocols", default="v5,v9,ipfix,sflow")
    ap.add_argument("--chunk", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    failures = 0
    for protocol in args.protocols.split(","):
        run = Run(protocol)
        t0, c0 = time.perf_counter(), time.process_time()
        done, k = 0, 0
        while done < args.examples:
            n = min(args.chunk, args.examples - done)
            before = run.examples
            try:
                run.chunk(n, args.seed * 1_000_003 + k)
            except Exception:  # noqa: BLE001 - a finding: report it and keep fuzzing
                failures += 1
                print(f"{protocol}: FAILURE in chunk {k}:\n{traceback.format_exc()}", flush=True)
            done += max(run.examples - before, 1) if run.examples > before else n
            k += 1
            print(f"{protocol}: {done:,} examples, {failures} failures, {time.perf_counter() - t0:,.0f} s", flush=True)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(
            f"{protocol:6s} examples {run.examples:,} (datagrams decoded {run.datagrams_decoded:,}, "
            f"dropped {run.datagrams_dropped:,}; flows {run.flows:,}; drops counted {run.drops:,}) "
            f"failures {failures} in {dt:,.0f} s ({cpu:,.0f} s CPU)",
            flush=True,
        )
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
