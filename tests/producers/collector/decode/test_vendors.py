"""Vendor template layouts (vendors.py): decoded columns, and field for field against tshark.

Each datagram is written into a pcap and dissected by tshark too; where tshark decodes a
field we compare with it, where it does not (YAF's CERT flags, the inside of packet
sections) with what the datagram was built from.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import dpkt
import numpy as np

from netpilot.wire.flows import FirewallEvent, addr_to_str
from producers.collector.decode.decoder import Decoder
from producers.collector.decode.result import DecodeResult
from tests.producers.collector.decode.builders import EXPORTER, ipfix, ipfix_set, v9
from tests.producers.collector.decode.vendors import (
    ASA82_FIELDS,
    H3C_FIELDS,
    JUNIPER_FIELDS,
    MS,
    NSEL_FIELDS,
    PSAMP_FIELDS,
    YAF_FIELDS,
    Biflow,
    Event,
    asa82_record,
    h3c_record,
    juniper_record,
    nsel_record,
    psamp_record,
    template_set,
    v4_packet,
    v6_packet,
    yaf_record,
)
from tests.producers.collector.traffic import tshark_fields, write_datagram_pcap

PORT = 2055


def decode(datagrams: list[bytes]) -> DecodeResult:
    result = Decoder().decode([(EXPORTER, d, MS) for d in datagrams])
    assert not result.drops, (dict(result.drops), result.errors)
    return result


def tshark(tmp_path: Path, datagrams: list[bytes], fields: list[str]) -> list[list[list[str]]]:
    """Per datagram, per field, the values tshark shows (in record order)."""
    pcap = tmp_path / "vendor.pcap"
    write_datagram_pcap(pcap, datagrams, PORT)
    return [[v.split(",") if v else [] for v in row] for row in tshark_fields(pcap, PORT, "cflow", fields)]


def rows(r: DecodeResult, *names: str) -> Counter[tuple]:
    c = r.columns
    cols = [
        [addr_to_str(bytes(a)) for a in c[n]] if c[n].ndim == 2 else c[n].tolist()  # addresses as text
        for n in names
    ]
    return Counter(zip(*cols))


def test_yaf_biflows_total_counters_and_reverse_rows_match_tshark(tmp_path: Path) -> None:
    flows = [
        Biflow("192.0.2.1", "198.51.100.2", 40000, 443, 6, 5_000, 70_000, 10, 60, (0x02, 0x18), (0x12, 0x19)),
        Biflow("192.0.2.3", "198.51.100.4", 5353, 53, 17, 80, 160, 1, 1, (0, 0), (0, 0)),
        Biflow("192.0.2.5", "198.51.100.6", 40001, 80, 6, 60, 0, 1, 0, (0x02, 0), (0, 0)),  # no answer
    ]
    datagrams = [ipfix([template_set(2, 300, YAF_FIELDS), ipfix_set(300, b"".join(map(yaf_record, flows)))])]
    r = decode(datagrams)
    [[src, dst, sport, dport, proto, octets, packets]] = tshark(
        tmp_path,
        datagrams,
        [
            "cflow.srcaddr",
            "cflow.dstaddr",
            "cflow.srcport",
            "cflow.dstport",
            "cflow.protocol",
            "cflow.permanent_octets",  # octetTotalCount, forward then reverse per record
            "cflow.permanent_packets",
        ],
    )
    expected: Counter[tuple] = Counter()
    for i in range(len(src)):
        fwd, rev = int(octets[2 * i]), int(octets[2 * i + 1])
        pfwd, prev = int(packets[2 * i]), int(packets[2 * i + 1])
        key = (src[i], dst[i], int(sport[i]), int(dport[i]), int(proto[i]))
        expected[key + (fwd, pfwd)] += 1
        if rev or prev:  # the reverse direction, as its own row with swapped addresses and ports
            expected[(dst[i], src[i], int(dport[i]), int(sport[i]), int(proto[i]), rev, prev)] += 1
    got = rows(r, "src_addr", "dst_addr", "src_port", "dst_port", "ip_proto", "bytes", "packets")
    assert got == expected and r.n == 5
    # YAF's TCP flags (CERT PEN 6871, not tcpControlBits): initial | union, per direction
    flags = rows(r, "src_addr", "tcp_flags")
    assert flags[("192.0.2.1", 0x1A)] == 1 and flags[("198.51.100.2", 0x1B)] == 1
    assert flags[("192.0.2.5", 0x02)] == 1
    assert (r.columns["time_start"] == MS - 4000).all() and (r.columns["time_end"] == MS - 1000).all()


NSEL_EVENTS = [
    Event(1, FirewallEvent.CREATED),
    Event(1, FirewallEvent.UPDATE, fwd_octets=1000, rev_octets=20_000, fwd_packets=10, rev_packets=20),
    Event(2, FirewallEvent.CREATED, sport=40002),
    Event(1, FirewallEvent.UPDATE, fwd_octets=500, rev_octets=7_000, fwd_packets=5, rev_packets=7),
    Event(3, FirewallEvent.DENIED, sport=40003, dport=23, ext=1001),
    # conn 1's teardown repeats its whole traffic, already counted by its updates
    Event(1, FirewallEvent.DELETED, fwd_octets=1500, rev_octets=27_000, fwd_packets=15, rev_packets=27, ext=2001),
    # conn 2 ended before its first update: the teardown is its only count
    Event(2, FirewallEvent.DELETED, sport=40002, fwd_octets=300, rev_octets=4_000, fwd_packets=3, rev_packets=4),
    Event(
        4,
        FirewallEvent.DELETED,
        proto=1,
        sport=0,
        dport=0,
        icmp=(8, 0),
        fwd_octets=84,
        rev_octets=84,
        fwd_packets=1,
        rev_packets=1,
    ),
]


def test_cisco_nsel_counts_updates_and_teardowns_once_and_keeps_the_event(tmp_path: Path) -> None:
    tpl = template_set(0, 263, NSEL_FIELDS)
    datagrams = [
        v9([tpl, ipfix_set(263, b"".join(map(nsel_record, NSEL_EVENTS[:4])))]),
        v9([ipfix_set(263, b"".join(map(nsel_record, NSEL_EVENTS[4:])))]),
    ]
    r = decode(datagrams)
    seen = tshark(
        tmp_path,
        datagrams,
        [
            "cflow.flow_id",
            "cflow.firewall_event",
            "cflow.srcaddr",
            "cflow.srcport",
            "cflow.initiator_octets",
            "cflow.responder_octets",
            "cflow.initiator_packets",
            "cflow.responder_packets",
        ],
    )
    records = [list(zip(*d)) for d in seen]
    assert [int(rec[1]) for d in records for rec in d] == [e.event for e in NSEL_EVENTS]
    # what tshark shows, with the counting rule applied (decode/firewall.py)
    updated = {int(rec[0]) for d in records for rec in d if int(rec[1]) == FirewallEvent.UPDATE}
    expected: Counter[tuple] = Counter()
    for d in records:
        for conn, event, src, sport, fwd, rev, pfwd, prev in d:
            ev = int(event)
            counts = ev == FirewallEvent.UPDATE or (ev == FirewallEvent.DELETED and int(conn) not in updated)
            expected[(src, int(sport), ev, int(fwd) if counts else 0, int(pfwd) if counts else 0)] += 1
            if counts and (int(rev) or int(prev)):
                expected[("198.51.100.20", 443 if int(sport) else 0, ev, int(rev), int(prev))] += 1
    got = rows(r, "src_addr", "src_port", "fw_event", "bytes", "packets")
    assert got == expected
    c = r.columns
    assert int(c["bytes"].sum()) == 1000 + 500 + 300 + 84 + 20_000 + 7_000 + 4_000 + 84
    assert int(c["packets"].sum()) == 10 + 5 + 3 + 1 + 20 + 7 + 4 + 1
    # responder rows swap the interfaces (NF_F_SRC_INTF_ID 3 inside, NF_F_DST_INTF_ID 4 outside)
    responders = c["src_addr"][:, 15] == 20
    assert (c["in_if"][responders] == 4).all() and (c["out_if"][responders] == 3).all()
    # ICMP: NF_F_ICMP_TYPE/CODE go into dst_port as type << 8 | code
    icmp = c["ip_proto"] == 1
    assert c["dst_port"][icmp].tolist()[0] == 8 << 8
    # an update's counters are for its interval: it starts and ends at its event time
    upd = c["fw_event"] == FirewallEvent.UPDATE
    assert (c["time_start"][upd] == c["time_end"][upd]).all() and (c["time_end"][upd] == MS - 1000).all()
    deleted = c["fw_event"] == FirewallEvent.DELETED
    assert (c["time_start"][deleted] == MS - 60_000).all()  # NF_F_FLOW_CREATE_TIME_MSEC
    assert (r.table().column("fw_event").to_numpy() == c["fw_event"]).all()


def test_cisco_nsel_without_updates_counts_teardowns_and_remembers_across_passes() -> None:
    dec = Decoder()
    tpl = template_set(0, 263, NSEL_FIELDS)
    first = dec.decode([(EXPORTER, v9([tpl, ipfix_set(263, nsel_record(NSEL_EVENTS[1]))]), MS)])
    assert first.columns["bytes"].tolist() == [1000, 20_000]
    later = dec.decode([(EXPORTER, v9([ipfix_set(263, nsel_record(NSEL_EVENTS[5]))]), MS + 60_000)])
    assert later.n == 1 and later.columns["bytes"].tolist() == [0]  # counted by its update already
    assert len(dec._templates.firewall) == 0  # the connection is over: forgotten


def test_asa_82_layout_event_in_40005_bytes_in_85(tmp_path: Path) -> None:
    events = [
        Event(7, FirewallEvent.CREATED),
        Event(7, FirewallEvent.DELETED, fwd_octets=12_345),
        Event(8, FirewallEvent.DENIED, sport=40008, ext=1002),
    ]
    datagrams = [v9([template_set(0, 256, ASA82_FIELDS), ipfix_set(256, b"".join(map(asa82_record, events)))])]
    r = decode(datagrams)
    [[conn, octets]] = tshark(tmp_path, datagrams, ["cflow.flow_id", "cflow.permanent_octets"])
    assert [int(v) for v in conn] == [7, 7, 8] and [int(v) for v in octets] == [0, 12_345, 0]
    assert r.columns["fw_event"].tolist() == [1, 2, 3]
    assert r.columns["bytes"].tolist() == [0, 12_345, 0]


def test_h3c_v9_variable_length_field_decodes_like_ipfix(tmp_path: Path) -> None:
    recs = h3c_record(1, b"dns") + h3c_record(2, b"x" * 300) + h3c_record(3, b"")  # 1-byte, 3-byte, empty
    datagrams = [v9([template_set(0, 3281, H3C_FIELDS), ipfix_set(3281, recs)])]
    r = decode(datagrams)
    [[src, dst, sport, octets, packets, app]] = tshark(
        tmp_path,
        datagrams,
        ["cflow.srcaddr", "cflow.dstaddr", "cflow.srcport", "cflow.octets", "cflow.packets", "cflow.appl_name"],
    )
    assert app[0] == "dns"  # tshark walked the same variable-length encoding
    expected = Counter(zip(src, dst, map(int, sport), map(int, octets), map(int, packets)))
    assert rows(r, "src_addr", "dst_addr", "src_port", "bytes", "packets") == expected
    assert r.n == 3 and r.columns["in_if"].tolist() == [5, 5, 5]
    # sysUpTime 90 s / 99 s against the header's 100 s
    assert (r.columns["time_start"] == MS - 10_000).all() and (r.columns["time_end"] == MS - 1_000).all()


def test_juniper_inline_monitoring_frame_sections_are_parsed(tmp_path: Path) -> None:
    frames = [
        v4_packet("192.0.2.7", "198.51.100.8", 1234, 80, 6, 100, vlan=10),
        v4_packet("192.0.2.9", "198.51.100.10", 5000, 53, 17, 40),
    ]
    body = juniper_record(7, 8, frames[0], 64) + juniper_record(7, 9, frames[1], 300)  # 300: whole frame
    datagrams = [ipfix([template_set(2, 500, JUNIPER_FIELDS), ipfix_set(500, body)])]
    r = decode(datagrams)
    [[size, section, in_if, out_if]] = tshark(
        tmp_path,
        datagrams,
        ["cflow.data_link_frame_size", "cflow.data_link_frame_section", "cflow.inputint", "cflow.outputint"],
    )
    c = r.columns
    assert c["bytes"].tolist() == [int(v) for v in size] == [len(f) for f in frames]
    assert c["packets"].tolist() == [1, 1]
    assert c["in_if"].tolist() == [int(v) for v in in_if] and c["out_if"].tolist() == [int(v) for v in out_if]
    for i, hexbytes in enumerate(section):  # what tshark shows of each section, parsed by dpkt
        eth = dpkt.ethernet.Ethernet(bytes.fromhex(hexbytes.replace(":", "")))
        ip = eth.data
        assert addr_to_str(bytes(c["src_addr"][i])) == addr_to_str(b"\x00" * 10 + b"\xff\xff" + ip.src)
        assert addr_to_str(bytes(c["dst_addr"][i])) == addr_to_str(b"\x00" * 10 + b"\xff\xff" + ip.dst)
        assert (c["ip_proto"][i], c["src_port"][i], c["dst_port"][i]) == (ip.p, ip.data.sport, ip.data.dport)
    assert c["tcp_flags"].tolist() == [dpkt.tcp.TH_ACK | dpkt.tcp.TH_PUSH, 0]


def test_psamp_ip_header_sections_fixed_length(tmp_path: Path) -> None:
    packets = [v6_packet("2001:db8::1", "2001:db8::2", 5353, 53, 30), v6_packet("2001:db8::3", "2001:db8::4", 1, 2, 0)]
    body = b"".join(psamp_record(9, p) for p in packets)
    datagrams = [ipfix([template_set(2, 501, PSAMP_FIELDS), ipfix_set(501, body)])]
    r = decode(datagrams)
    [[selector, section]] = tshark(tmp_path, datagrams, ["cflow.selector_id", "cflow.section_header"])
    assert [int(s) for s in selector] == [9, 9]
    c = r.columns
    for i, hexbytes in enumerate(section):
        ip = dpkt.ip6.IP6(bytes.fromhex(hexbytes.replace(":", "")))
        assert bytes(c["src_addr"][i]) == ip.src and bytes(c["dst_addr"][i]) == ip.dst
        assert (c["ip_proto"][i], c["src_port"][i], c["dst_port"][i]) == (17, ip.data.sport, ip.data.dport)
    assert c["bytes"].tolist() == [len(p) for p in packets]  # the IP header's own length
    assert (c["time_end"] == MS - 5).all() and np.array_equal(c["packets"], [1, 1])
