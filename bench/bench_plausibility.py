"""What the collector's plausibility bounds keep out of mutated datagrams (issue 13's fault).

    .venv/bin/python bench/bench_plausibility.py [--datagrams 10000] [--seed 5]

IPFIX datagrams shaped like bench_decode's (30 flows each, plausible) get 1 to 8 random
bytes changed after the header, as a fault harness does to a real exporter's datagrams.
They are decoded without and with the default bounds; printed: flows decoded and kept,
refusals by reason, and the largest and total sampling-corrected bytes of what is kept,
against the total of the same datagrams unmutated. Stateless per-flow bounds cannot catch
every plausible-looking garbage value; the remainder is what the streams and autopilot
checks downstream (saturating sums, demand above capacity) are for.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_decode import EXPORTER, NOW_S, ipfix_datagrams

from producers.collector.decode.bounds import FlowBounds
from producers.collector.decode.decoder import Decoder, DecoderOptions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datagrams", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    clean = ipfix_datagrams(args.datagrams, rng)  # the first one carries the template
    mutated = [clean[0]]
    for d in clean[1:]:
        b = bytearray(d)
        for _ in range(rng.randint(1, 8)):
            b[16 + rng.randrange(len(b) - 16)] = rng.randrange(256)
        mutated.append(bytes(b))
    now = NOW_S * 1000
    honest = Decoder().decode([(EXPORTER, d, now) for d in clean]).columns["bytes_scaled"].astype(float).sum()
    print(f"{args.datagrams:,} datagrams, unmutated total bytes_scaled {honest:.3g}")
    for bounds in (None, FlowBounds()):
        r = Decoder(DecoderOptions(bounds=bounds)).decode([(EXPORTER, d, now) for d in mutated])
        kept = r.columns["bytes_scaled"].astype(float)
        print(
            f"{'default bounds' if bounds else 'no bounds':14s} decoded {sum(r.flows.values()):,} kept {r.n:,}  "
            f"max {kept.max():.3g}  total {kept.sum():.3g} ({kept.sum() / honest:.3g}x)  "
            f"dropped {dict(sorted(r.drops.items()))}"
        )


if __name__ == "__main__":
    main()
