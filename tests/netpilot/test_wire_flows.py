"""flows/1 encoding: exact round trips (hypothesis), versioning, malformed input."""

from __future__ import annotations

import ipaddress

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netpilot.errors import WireError, WireVersionError
from netpilot.wire import flows
from tests.netpilot.flowgen import make_flows

U8, U16, U32, U64 = (st.integers(0, 2**b - 1) for b in (8, 16, 32, 64))
ADDR = st.one_of(
    st.ip_addresses(v=4).map(lambda a: b"\x00" * 10 + b"\xff\xff" + a.packed),
    st.ip_addresses(v=6).map(lambda a: a.packed),
)
TS = st.integers(0, 2**41)  # ms since the epoch, up to year ~2039 and beyond
NAME = st.text(min_size=0, max_size=12)


@st.composite
def flow_rows(draw: st.DrawFn) -> dict[str, list]:
    n = draw(st.integers(0, 40))
    cols: dict[str, list] = {}
    for f in flows.FLOW_SCHEMA:
        if f.name in flows.ADDRESS_FIELDS:
            strat = ADDR
        elif f.name in flows.STRING_FIELDS:
            strat = NAME
        elif f.name in flows.TIMESTAMP_FIELDS:
            strat = TS
        else:
            strat = {pa.uint8(): U8, pa.uint16(): U16, pa.uint32(): U32, pa.uint64(): U64}[f.type]
        cols[f.name] = draw(st.lists(strat, min_size=n, max_size=n))
    return cols


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=flow_rows(), codec=st.sampled_from(["lz4", "zstd", "none"]))
def test_round_trip_is_exact(rows: dict[str, list], codec: str) -> None:
    n = len(rows["bytes"])
    cols: dict[str, object] = {}
    for name, values in rows.items():
        if name in flows.ADDRESS_FIELDS:
            cols[name] = np.frombuffer(b"".join(values), np.uint8).reshape(n, 16) if n else np.zeros((0, 16), np.uint8)
        elif name in flows.STRING_FIELDS:
            cols[name] = values
        else:
            dtype = np.int64 if name in flows.TIMESTAMP_FIELDS else flows.NUMPY_DTYPES[name]
            cols[name] = np.array(values, dtype=dtype)
    table = flows.flow_table(cols, n=n)
    decoded = flows.decode_flows(flows.encode_flows(table, compression=codec))
    assert decoded.num_rows == n
    for name, values in rows.items():
        column = decoded.column(name)
        if name in flows.TIMESTAMP_FIELDS:
            column = column.cast(pa.int64())  # compare epoch milliseconds exactly
        got = column.to_pylist()
        assert got == values, name


def test_addresses_keep_both_families() -> None:
    t = make_flows(1000, seed=3)
    back = flows.decode_flows(flows.encode_flows(t))
    dst = np.frombuffer(back.column("dst_addr").combine_chunks().buffers()[1], np.uint8).reshape(-1, 16)
    v4 = flows.is_ipv4(dst)
    assert 0 < v4.sum() < len(dst)
    for row in np.nonzero(v4)[0][:5]:
        assert ipaddress.ip_address(flows.addr_to_str(bytes(dst[row]))).version == 4
    for row in np.nonzero(~v4)[0][:5]:
        assert flows.addr_to_str(bytes(dst[row])).startswith("2001:db8:")
    assert flows.str_to_addr("192.0.2.1") == b"\x00" * 10 + b"\xff\xff" + bytes([192, 0, 2, 1])


def test_unknown_major_version_is_a_version_error() -> None:
    t = make_flows(10)
    newer = t.replace_schema_metadata({"netpilot.schema": "flows", "netpilot.version": "2.0"})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, newer.schema) as w:
        w.write_table(newer)
    with pytest.raises(WireVersionError, match="2.0"):
        flows.decode_flows(sink.getvalue().to_pybytes())


def test_newer_minor_with_extra_column_is_read() -> None:
    t = make_flows(10)
    t = t.append_column("future_field", pa.array(np.arange(10)))
    t = t.replace_schema_metadata({"netpilot.schema": "flows", "netpilot.version": "1.7"})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, t.schema) as w:
        w.write_table(t)
    back = flows.decode_flows(sink.getvalue().to_pybytes())
    assert back.schema.names == list(flows.FIELD_NAMES)
    assert back.column("bytes").equals(t.column("bytes"))


@pytest.mark.parametrize(
    "value, error",
    [
        (b"", WireError),
        (b"not arrow at all", WireError),
        (b"\xff\xff\xff\xff" + b"\x00" * 64, WireError),
    ],
)
def test_garbage_is_a_wire_error(value: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        flows.decode_flows(value)


def test_truncated_batch_is_a_wire_error() -> None:
    raw = flows.encode_flows(make_flows(500))
    for cut in (len(raw) // 3, len(raw) - 9):
        with pytest.raises(WireError):
            flows.decode_flows(raw[:cut])


def test_other_schema_is_a_version_error() -> None:
    t = pa.table({"x": [1, 2]}).replace_schema_metadata(
        {"netpilot.schema": "flow-aggregates", "netpilot.version": "1.0"}
    )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, t.schema) as w:
        w.write_table(t)
    with pytest.raises(WireVersionError, match="not a flows batch"):
        flows.decode_flows(sink.getvalue().to_pybytes())


def test_wrong_column_type_is_a_wire_error() -> None:
    t = make_flows(5)
    idx = t.schema.get_field_index("bytes")
    t = t.set_column(idx, pa.field("bytes", pa.string()), pa.array(["x"] * 5))
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, t.schema) as w:
        w.write_table(t)
    with pytest.raises(WireError, match="bytes"):
        flows.decode_flows(sink.getvalue().to_pybytes())
