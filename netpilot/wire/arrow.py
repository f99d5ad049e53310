"""Arrow IPC streams as Kafka message values: the part flows/1 and flow-aggregates/1 share.

One message value is one Arrow IPC stream (lz4-compressed by default) of one schema; each
wire module keeps its own schema, version check and column checks.
"""

from __future__ import annotations

import pyarrow as pa

from netpilot.errors import WireError

IPC_OPTIONS = {
    codec: pa.ipc.IpcWriteOptions(compression=None if codec == "none" else codec) for codec in ("lz4", "zstd", "none")
}
"""Write options per compression codec (``none``: uncompressed)."""


def write_stream(table: pa.Table, schema: pa.Schema, compression: str = "lz4") -> bytes:
    """``table`` (already of ``schema``) as one Arrow IPC stream, batch by batch."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema, options=IPC_OPTIONS[compression]) as writer:
        for batch in table.to_batches():
            writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def open_stream(value: bytes | memoryview | pa.Buffer, what: str) -> pa.RecordBatchStreamReader:
    """A reader over one message value (zero-copy); :class:`WireError` naming ``what`` (e.g.
    ``"flows batch"``) when it is not an Arrow IPC stream."""
    try:
        return pa.ipc.open_stream(value if isinstance(value, pa.Buffer) else pa.py_buffer(value))
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise WireError(f"{what} is not an Arrow IPC stream: {exc}") from exc
