"""Live traffic: exporters sniff a veth in a network namespace while iperf3 sends UDP.

Reuses the linkstats tests' NetLab (router + peer namespaces, a data veth, a management
veth to this process). softflowd reads the interface through tcpdump and a FIFO (the
recipe's reliable way; its own live capture loses light traffic here) and fprobe sniffs it
directly; both export to a receiver on the management address. The IPFIX flow of the
iperf3 stream must carry exactly iperf3's packets and bytes (+ IP/UDP headers).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from netpilot.wire.flows import addr_to_str, str_to_addr
from producers.collector.decode.decoder import Decoder
from tests.producers.collector.traffic import UdpCapture, tshark_fields, wait_capturing, write_datagram_pcap
from tests.producers.linkstats.netlab import NetLab

pytestmark = pytest.mark.netns  # NetLab namespaces, tcpdump and fprobe on a veth: root

IP_UDP_HEADERS = 28


def _decode(cap: UdpCapture, exporter: str, workdir: Path, name: str) -> tuple:  # type: ignore[type-arg]
    dgs = [d for d, _ in cap.datagrams]
    result = Decoder().decode([(str_to_addr(exporter), d, 1) for d in dgs])
    assert not result.drops, (name, dict(result.drops), result.errors)
    pcap = workdir / f"{name}.pcap"
    write_datagram_pcap(pcap, dgs, cap.port)
    expected: Counter[tuple[int, int]] = Counter()
    for octets, packets in tshark_fields(pcap, cap.port, "cflow", ["cflow.octets", "cflow.packets"]):
        expected.update(zip(map(int, octets.split(",")), map(int, packets.split(","))))
    assert Counter(zip(result.columns["bytes"].tolist(), result.columns["packets"].tolist())) == expected
    return result


def _iperf_flow(result, sender: str, receiver: str, records: int | None = 1):  # type: ignore[no-untyped-def]
    """(bytes, packets) of the iperf3 stream summed over its flow records."""
    c = result.columns
    rows = [
        i
        for i in range(result.n)
        if addr_to_str(bytes(c["src_addr"][i])) == sender
        and addr_to_str(bytes(c["dst_addr"][i])) == receiver
        and c["ip_proto"][i] == 17
        and c["dst_port"][i] == 5201
    ]
    seen = [
        (
            addr_to_str(bytes(c["src_addr"][i])),
            addr_to_str(bytes(c["dst_addr"][i])),
            int(c["ip_proto"][i]),
            int(c["dst_port"][i]),
            int(c["packets"][i]),
        )
        for i in range(result.n)
    ]
    assert rows and (records is None or len(rows) == records), (rows, seen)
    return int(c["bytes"][rows].sum()), int(c["packets"][rows].sum())


def _wait_until_capturing(tcpdump: subprocess.Popen, fprobe: subprocess.Popen, tcpdump_log: Path) -> None:  # type: ignore[type-arg]
    """Both captures attached before the traffic starts: each holds a packet socket, and
    tcpdump says it listens (it has opened the FIFO, so softflowd reads it)."""
    wait_capturing(tcpdump.pid)
    wait_capturing(fprobe.pid)
    deadline = time.monotonic() + 60
    while "listening on" not in tcpdump_log.read_text(errors="replace"):
        assert tcpdump.poll() is None and time.monotonic() < deadline, tcpdump_log.read_text(errors="replace")
        time.sleep(0.05)


def _wait_until_captured(tcpdump: subprocess.Popen, tcpdump_log: Path, timeout: float = 30.0) -> None:  # type: ignore[type-arg]
    """Until tcpdump has written every packet its filter received: SIGUSR1 makes it print its
    counts and go on. Stopping it earlier would drop what it had not read yet."""
    deadline = time.monotonic() + timeout
    while True:
        size = len(tcpdump_log.read_text(errors="replace"))
        tcpdump.send_signal(signal.SIGUSR1)
        while len(text := tcpdump_log.read_text(errors="replace")) == size or not text.endswith("\n"):
            assert tcpdump.poll() is None and time.monotonic() < deadline, text
            time.sleep(0.05)
        captured = re.findall(r"(\d+) packets? captured", text)
        received = re.findall(r"(\d+) packets? received by filter", text)
        if captured and received and captured[-1] == received[-1]:
            return
        assert time.monotonic() < deadline, text


def _expire_and_exit(softflowd: subprocess.Popen) -> None:  # type: ignore[type-arg]
    """softflowd exports everything and exits at the end of its capture file. On a loaded
    machine it can be slow to notice the FIFO's end: a SIGTERM then does the same (it expires
    and exports every flow before exiting), so the test never depends on that timing."""
    try:
        softflowd.wait(30)
    except subprocess.TimeoutExpired:
        softflowd.send_signal(signal.SIGTERM)
        softflowd.wait(60)


def test_softflowd_and_fprobe_on_a_live_veth(tmp_path: Path) -> None:
    lab = NetLab(tmp_path / "lab").open()
    procs: list[subprocess.Popen] = []
    try:
        sf_cap, fp_cap = UdpCapture(lab.root_addr), UdpCapture(lab.root_addr)
        fifo = tmp_path / "uplink.fifo"
        os.mkfifo(fifo)
        in_router = ["ip", "netns", "exec", lab.router_ns]
        tcpdump_log = tmp_path / "tcpdump.log"
        with open(tcpdump_log, "wb") as td_err:
            tcpdump = subprocess.Popen(
                in_router + ["tcpdump", "-i", lab.data_if, "-U", "-s", "256", "-w", str(fifo)],
                stdout=subprocess.DEVNULL,
                stderr=td_err,
            )
        softflowd = subprocess.Popen(
            in_router
            + [
                "softflowd",
                "-d",
                "-r",
                str(fifo),
                "-a",
                "-v",
                "10",
                "-n",
                f"{lab.root_addr}:{sf_cap.port}",
                "-p",
                str(tmp_path / "sf.pid"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        fprobe = subprocess.Popen(
            in_router
            + [
                "fprobe",
                "-i",
                lab.data_if,
                "-p",
                "-n",
                "5",
                "-s",
                "1",
                "-d",
                "1",
                "-e",
                "2",
                "-l",
                "2",
                f"{lab.root_addr}:{fp_cap.port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs += [tcpdump, softflowd, fprobe]
        _wait_until_capturing(tcpdump, fprobe, tcpdump_log)
        report = lab.iperf3_udp(2_000_000, 2)["end"]["sum"]
        _wait_until_captured(tcpdump, tcpdump_log)
        tcpdump.send_signal(signal.SIGTERM)  # end of "file": softflowd expires everything and exits
        tcpdump.wait(30)
        _expire_and_exit(softflowd)
        sf_cap.wait_quiet(0.5, 10)
        fp_cap.wait_quiet(1.5, 15)
        fprobe.send_signal(signal.SIGTERM)
        fprobe.wait(10)
        sf_cap.close()
        fp_cap.close()
        ipfix = _decode(sf_cap, lab.agent_addr, tmp_path, "softflowd-live")
        nbytes, npackets = _iperf_flow(ipfix, "192.0.2.1", lab.peer_addr)
        extra = npackets - report["packets"]  # iperf3's 4-byte UDP "connect" datagram
        assert extra in (0, 1)
        assert nbytes == report["bytes"] + IP_UDP_HEADERS * npackets + 4 * extra
        v5 = _decode(fp_cap, lab.agent_addr, tmp_path, "fprobe-live")
        # fprobe's 2 s active timeout may split the stream into several records
        fp_bytes, fp_packets = _iperf_flow(v5, "192.0.2.1", lab.peer_addr, records=None)
        assert 0 < fp_packets <= npackets and fp_bytes <= nbytes  # fprobe may miss packets on veths
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        lab.close()
