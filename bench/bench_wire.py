"""Batch encode/decode of flows/1: flows/s and bytes/flow per codec, vs a numpy structured array.

    .venv/bin/python bench/bench_wire.py [--flows 200000] [--batch 10000] [--repeat 5]

Prints one line per variant (median of --repeat runs), on one core (no threads are used by
these code paths except Arrow's compression, which runs in the calling thread here).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from netpilot.wire import flows
from tests.netpilot.flowgen import make_flows


def timed(fn, repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--flows", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    batches = [make_flows(args.batch, seed=i) for i in range(args.flows // args.batch)]
    n = sum(b.num_rows for b in batches)
    print(
        f"flows/1 batch encode/decode: {n} synthetic flows in batches of {args.batch} "
        f"(20% IPv6, 3 sampling rates), median of {args.repeat}"
    )
    print(f"{'variant':34} {'encode flows/s':>15} {'decode flows/s':>15} {'bytes/flow':>11}")
    for codec in ("lz4", "zstd", "none"):
        encoded: list[bytes] = []
        # timed() calls each lambda within this iteration: the loop variables are the current ones
        enc = timed(
            lambda: encoded.__setitem__(slice(None), [flows.encode_flows(b, codec) for b in batches]),  # noqa: B023
            args.repeat,
        )
        size = sum(len(e) for e in encoded)
        dec = timed(lambda: [flows.decode_flows(e) for e in encoded], args.repeat)  # noqa: B023
        print(f"{'arrow ipc ' + codec:34} {n / enc:15,.0f} {n / dec:15,.0f} {size / n:11.1f}")
    # The alternative the issue asked us to weigh: a numpy structured array (strings as
    # dictionary indices) compressed as one buffer, with a JSON header for version+dictionaries.
    dtype = np.dtype(
        [
            (
                f.name,
                "V16"
                if f.name in flows.ADDRESS_FIELDS
                else "<i4"
                if f.name in flows.STRING_FIELDS
                else "<i8"
                if f.name in flows.TIMESTAMP_FIELDS
                else flows.NUMPY_DTYPES[f.name],
            )
            for f in flows.FLOW_SCHEMA
        ]
    )

    def np_encode(t: pa.Table, codec: str) -> bytes:
        arr = np.empty(t.num_rows, dtype)
        dicts = {}
        for name in flows.FIELD_NAMES:
            col = t.column(name).combine_chunks()
            if name in flows.STRING_FIELDS:
                arr[name] = col.indices.to_numpy()
                dicts[name] = col.dictionary.to_pylist()
            elif name in flows.ADDRESS_FIELDS:
                arr[name] = np.frombuffer(col.buffers()[1], "V16")
            else:
                arr[name] = col.cast(pa.int64()).to_numpy() if name in flows.TIMESTAMP_FIELDS else col.to_numpy()
        import json

        head = json.dumps({"v": 1, "n": t.num_rows, "dicts": dicts}).encode()
        body = pa.compress(arr.tobytes(), codec, asbytes=True)
        return len(head).to_bytes(4, "little") + head + body

    def np_decode(raw: bytes, codec: str) -> np.ndarray:
        import json

        hl = int.from_bytes(raw[:4], "little")
        head = json.loads(raw[4 : 4 + hl])
        body = pa.decompress(raw[4 + hl :], head["n"] * dtype.itemsize, codec, asbytes=True)
        return np.frombuffer(body, dtype)

    for codec in ("lz4", "zstd"):
        encoded = []
        enc = timed(
            lambda: encoded.__setitem__(slice(None), [np_encode(b, codec) for b in batches]),  # noqa: B023
            args.repeat,
        )
        size = sum(len(e) for e in encoded)
        dec = timed(lambda: [np_decode(e, codec) for e in encoded], args.repeat)  # noqa: B023
        print(f"{'numpy structured + ' + codec:34} {n / enc:15,.0f} {n / dec:15,.0f} {size / n:11.1f}")


if __name__ == "__main__":
    main()
