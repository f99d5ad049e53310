"""From the records of one template (a numpy structured array) to flows/1 columns.

Everything here is per column, for all records of a decode pass at once:

* counters: the first of the octet / packet IEs a template carries (``COUNTERS``); a
  firewall's initiator counters (IEs 231/298) come before the generic ones;
* times: absolute (ms, s, µs, ns), deltas, sysUpTime, or the NSEL event time (IE 323);
* packet sections (IEs 315 / 313): the embedded frame or IP header is parsed like an
  sFlow sampled header, for the addresses, protocol, ports and length a template lacks;
* biflows: RFC 5103 reverse counters (PEN 29305) and a firewall's responder counters
  (IEs 232/299) become a second row per record, for the reverse direction (see
  :func:`split_biflow`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from producers.collector.decode.compiler import IE, REVERSE_BIT, CompiledTemplate
from producers.collector.decode.sflow_headers import parse_headers

NTP_EPOCH_OFFSET = 2_208_988_800
U32 = np.int64(1 << 32)

OCTETS = (IE.INITIATOR_OCTETS, IE.OCTETS, IE.POST_OCTETS, IE.OCTETS_TOTAL, IE.POST_OCTETS_TOTAL)
PACKETS = (IE.INITIATOR_PACKETS, IE.PACKETS, IE.POST_PACKETS, IE.PACKETS_TOTAL, IE.POST_PACKETS_TOTAL)
REVERSE_OCTETS = (IE.RESPONDER_OCTETS,) + tuple(REVERSE_BIT | ie for ie in OCTETS[1:])
REVERSE_PACKETS = (IE.RESPONDER_PACKETS,) + tuple(REVERSE_BIT | ie for ie in PACKETS[1:])


def tcp_flags(tpl: CompiledTemplate, recs: np.ndarray, reverse: int = 0) -> np.ndarray | None:
    """tcpControlBits, else YAF's initialTCPFlags | unionTCPFlags; ``reverse``: REVERSE_BIT."""
    flags = tpl.uint(recs, reverse | IE.TCP_FLAGS)
    if flags is not None:
        return flags & np.uint64(0xFF)
    initial = tpl.uint(recs, reverse | IE.CERT_INITIAL_TCP_FLAGS)
    union = tpl.uint(recs, reverse | IE.CERT_UNION_TCP_FLAGS)
    if initial is None:
        return None if union is None else union & np.uint64(0xFF)
    return (initial if union is None else initial | union) & np.uint64(0xFF)


def icmp_type_code(tpl: CompiledTemplate, recs: np.ndarray) -> np.ndarray | None:
    """ICMP type << 8 | code: IE 32/139, else the separate type and code IEs (176-179, NSEL)."""
    v = first(tpl, recs, IE.ICMP_TYPE_CODE_V4, IE.ICMP_TYPE_CODE_V6)
    if v is not None:
        return v
    kind = first(tpl, recs, IE.ICMP_TYPE_V4, IE.ICMP_TYPE_V6)
    code = first(tpl, recs, IE.ICMP_CODE_V4, IE.ICMP_CODE_V6)
    if kind is None:
        return code
    return kind << np.uint64(8) if code is None else kind << np.uint64(8) | code


def first(tpl: CompiledTemplate, recs: np.ndarray, *ies: int) -> np.ndarray | None:
    """The first of ``ies`` the template carries, as uint64 per record."""
    for ie in ies:
        v = tpl.uint(recs, ie)
        if v is not None:
            return v
    return None


def ntp_ms(v: np.ndarray) -> np.ndarray:
    secs = (v >> np.uint64(32)).astype(np.int64) - NTP_EPOCH_OFFSET
    frac = (v & np.uint64(0xFFFFFFFF)).astype(np.int64)
    return secs * 1000 + (frac * 1000 >> 32)


def times(
    tpl: CompiledTemplate,
    recs: np.ndarray,
    export_ms: np.ndarray,
    uptime_ms: Callable[[], np.ndarray] | None,
    system_init_ms: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(time_start, time_end) in Unix ms.

    ``uptime_ms`` gives the v9 header's sysUpTime per record, when needed (None for IPFIX,
    whose sysUpTime fields need ``system_init_ms`` from options data). A flow with an end and no start
    starts at its end (NSEL events carry only the event time); with neither, both are the
    export time.
    """
    u = tpl.uint
    pairs: tuple[tuple[int, int, Callable[[np.ndarray], np.ndarray]], ...] = (
        (IE.START_MS, IE.END_MS, lambda v: v.astype(np.int64)),
        (IE.START_S, IE.END_S, lambda v: v.astype(np.int64) * 1000),
        (IE.START_US, IE.END_US, ntp_ms),
        (IE.START_NS, IE.END_NS, ntp_ms),
        (IE.START_DELTA_US, IE.END_DELTA_US, lambda v: export_ms - (v // 1000).astype(np.int64)),
        (-1, IE.OBS_TIME_MS, lambda v: v.astype(np.int64)),
        (-1, IE.OBS_TIME_S, lambda v: v.astype(np.int64) * 1000),
    )
    result: list[np.ndarray | None] = [None, None]
    for i in (0, 1):
        for start_ie, end_ie, to_ms in pairs:
            v = u(recs, (start_ie, end_ie)[i])
            if v is not None:
                result[i] = to_ms(v)
                break
        else:
            up = u(recs, (IE.START_UPTIME, IE.END_UPTIME)[i])
            if up is None:
                continue
            up = up.astype(np.int64)
            if uptime_ms is not None:
                # uptime counters are u32 ms: take the difference modulo 2^32
                result[i] = export_ms - ((uptime_ms() - up) % U32)
            elif system_init_ms:
                result[i] = system_init_ms + up
    end = export_ms if result[1] is None else result[1]
    start = end if result[0] is None else result[0]
    return start, end


def section_columns(tpl: CompiledTemplate, recs: np.ndarray) -> dict[str, np.ndarray] | None:
    """Columns parsed from a packet section (IE 315 frame, else IE 313 IP header), or None."""
    for ie, link in ((IE.DATALINK_SECTION, True), (IE.IP_HEADER_SECTION, False)):
        sec = tpl.section(recs, ie)
        if sec is None:
            continue
        headers, hlen = sec
        if link:
            proto = np.ones(len(recs), np.int64)  # sFlow's header protocol 1: Ethernet
        else:
            proto = np.where(headers[:, 0] >> 4 == 6, 12, 11)  # IPv6 / IPv4
        return parse_headers(headers, hlen, proto)
    return None


def split_biflow(
    tpl: CompiledTemplate,
    recs: np.ndarray,
    cols: dict[str, Any],
    rate: np.ndarray,
    counted: np.ndarray | None,
    keep_all: bool,
) -> list[tuple[int, dict[str, Any]]]:
    """Biflow records -> forward rows plus reverse rows.

    The reverse row of a record swaps the addresses, ports, interfaces and ASes and carries
    the reverse counters (RFC 5103 PEN 29305, or a firewall's responder IEs 232/299) and
    reverse TCP flags; its next hop is unknown (0). It comes right after its forward row in
    capture order. Each direction is kept only when it carried traffic, so a biflow export
    yields the same flows as a unidirectional export of the same packets; with
    ``keep_all`` (firewall events) every forward row is kept, traffic or not.
    ``counted`` (firewall events) zeroes the counters of records that must not count.
    """
    n = len(recs)
    zeros = np.zeros(n, np.uint64)
    rev_octets = first(tpl, recs, *REVERSE_OCTETS)
    rev_packets = first(tpl, recs, *REVERSE_PACKETS)
    rev_octets = zeros if rev_octets is None else rev_octets
    rev_packets = zeros if rev_packets is None else rev_packets
    if counted is not None:
        rev_octets = np.where(counted, rev_octets, zeros)
        rev_packets = np.where(counted, rev_packets, zeros)
    rev = dict(cols)
    for a, b in (("src_addr", "dst_addr"), ("src_port", "dst_port"), ("in_if", "out_if"), ("src_as", "dst_as")):
        rev[a], rev[b] = cols.get(b), cols.get(a)
    rev["next_hop"] = None
    proto = cols.get("ip_proto", zeros)
    icmp = (proto == 1) | (proto == 58)
    if np.any(icmp):  # ICMP keeps type/code in dst_port; the reverse type is its own field
        fwd_icmp = cols.get("dst_port", zeros)
        rev_icmp = first(tpl, recs, REVERSE_BIT | IE.ICMP_TYPE_CODE_V4, REVERSE_BIT | IE.ICMP_TYPE_CODE_V6)
        # softflowd leaves the reverse type 0 and keeps the seen type in the forward field
        rev_icmp = fwd_icmp if rev_icmp is None else np.where(rev_icmp == 0, fwd_icmp, rev_icmp)
        rev["src_port"] = np.where(icmp, 0, rev["src_port"] if rev["src_port"] is not None else 0)
        rev["dst_port"] = np.where(icmp, rev_icmp, rev["dst_port"] if rev["dst_port"] is not None else 0)
    rev_flags = tcp_flags(tpl, recs, REVERSE_BIT)
    rev["tcp_flags"] = zeros if rev_flags is None else rev_flags
    rev["bytes"], rev["packets"] = rev_octets, rev_packets
    rev["bytes_scaled"], rev["packets_scaled"] = rev_octets * rate, rev_packets * rate
    if "order" in cols:
        rev["order"] = cols["order"] + 1
    forward_keep = np.ones(n, np.bool_) if keep_all else (cols["packets"] > 0) | (cols["bytes"] > 0)
    out = []
    for part, keep in ((cols, forward_keep), (rev, (rev_packets > 0) | (rev_octets > 0))):
        m = int(np.count_nonzero(keep))
        if m:
            out.append((m, _rows(part, keep, n)))
    return out


def _rows(cols: dict[str, Any], keep: np.ndarray, n: int) -> dict[str, Any]:
    if keep.all():
        return {k: v for k, v in cols.items() if v is not None}
    return {
        k: (v[keep] if isinstance(v, np.ndarray) and v.ndim >= 1 and len(v) == n and k != "exporter" else v)
        for k, v in cols.items()
        if v is not None
    }
