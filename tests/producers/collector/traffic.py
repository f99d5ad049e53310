"""Test traffic and exporter plumbing: write a pcap, run a real exporter, capture its UDP.

Shared by the real-exporter tests, the service tests and bench/bench_decode.py.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import dpkt

# Documentation ranges only (RFC 5737 / RFC 3849).
V4_HOSTS = ["192.0.2.10", "192.0.2.20", "198.51.100.7", "198.51.100.99"]
V6_HOSTS = ["2001:db8::10", "2001:db8::20"]
T0 = 1_700_000_000.0


def _eth(ip: dpkt.Packet, v6: bool = False) -> bytes:
    return bytes(
        dpkt.ethernet.Ethernet(
            src=b"\x02\x00\x00\x00\x00\x01",
            dst=b"\x02\x00\x00\x00\x00\x02",
            type=dpkt.ethernet.ETH_TYPE_IP6 if v6 else dpkt.ethernet.ETH_TYPE_IP,
            data=ip,
        )
    )


def _v4(src: str, dst: str, l4: dpkt.Packet, proto: int) -> dpkt.ip.IP:
    ip = dpkt.ip.IP(
        src=socket.inet_pton(socket.AF_INET, src), dst=socket.inet_pton(socket.AF_INET, dst), p=proto, ttl=64, data=l4
    )
    ip.len = 20 + len(bytes(l4))
    return ip


def _v6(src: str, dst: str, l4: dpkt.Packet, proto: int) -> dpkt.ip6.IP6:
    ip = dpkt.ip6.IP6(
        src=socket.inet_pton(socket.AF_INET6, src),
        dst=socket.inet_pton(socket.AF_INET6, dst),
        nxt=proto,
        hlim=64,
        data=l4,
    )
    ip.plen = len(bytes(l4))
    return ip


def write_traffic(
    path: Path, flows: int = 40, packets_per_flow: int = 5, ipv6: bool = True, spread_s: float = 0.0
) -> int:
    """A pcap of TCP/UDP/ICMP flows between documentation addresses; returns packet count.

    Each flow has distinct ports and its own payload size, so per-flow byte counts differ.
    Flows finish with FIN so exporters expire them at end of file.
    """
    n = 0
    with path.open("wb") as fh:
        w = dpkt.pcap.Writer(fh, linktype=dpkt.pcap.DLT_EN10MB)
        t = T0
        for i in range(flows):
            v6 = ipv6 and i % 5 == 4
            hosts = V6_HOSTS if v6 else V4_HOSTS
            src, dst = hosts[i % len(hosts)], hosts[(i + 1) % len(hosts)]
            kind = i % 4
            for k in range(packets_per_flow):
                payload = b"x" * (20 + 7 * i + k)
                if kind in (0, 1):  # TCP
                    flags = dpkt.tcp.TH_ACK | (dpkt.tcp.TH_FIN if k == packets_per_flow - 1 else 0)
                    if k == 0:
                        flags = dpkt.tcp.TH_SYN
                    l4 = dpkt.tcp.TCP(
                        sport=20000 + i, dport=443 if kind else 80, flags=flags, seq=1000 + k, data=payload
                    )
                    proto = 6
                elif kind == 2:  # UDP
                    l4 = dpkt.udp.UDP(sport=30000 + i, dport=53, data=payload)
                    l4.ulen = 8 + len(payload)
                    proto = 17
                else:  # ICMP echo (v4) / UDP for v6 to keep things simple
                    if v6:
                        l4 = dpkt.udp.UDP(sport=31000 + i, dport=123, data=payload)
                        l4.ulen = 8 + len(payload)
                        proto = 17
                    else:
                        l4 = dpkt.icmp.ICMP(type=8, code=0, data=dpkt.icmp.ICMP.Echo(id=i, seq=k, data=payload))
                        proto = 1
                ip = _v6(src, dst, l4, proto) if v6 else _v4(src, dst, l4, proto)
                w.writepkt(_eth(ip, v6), ts=t)
                t += 0.001 + spread_s
                n += 1
    return n


class UdpCapture:
    """Receives datagrams on <address>:<free port> in a thread until stopped."""

    def __init__(self, address: str = "127.0.0.1") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind((address, 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.datagrams: list[tuple[bytes, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, _ = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            self.datagrams.append((data, time.time()))

    def wait_quiet(self, quiet_s: float = 1.0, timeout_s: float = 40.0, min_count: int = 1) -> None:
        """Wait until at least ``min_count`` datagrams came and none for ``quiet_s``."""
        deadline = time.monotonic() + timeout_s
        last, last_change = -1, time.monotonic()
        while time.monotonic() < deadline:
            n = len(self.datagrams)
            if n != last:
                last, last_change = n, time.monotonic()
            elif n >= min_count and time.monotonic() - last_change >= quiet_s:
                return
            time.sleep(0.1)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def write_datagram_pcap(path: Path, datagrams: list[bytes], port: int, src: str = "127.0.0.1") -> None:
    """Wrap captured payloads into Ethernet/IPv4/UDP frames (what tshark and `netpilot decode` read)."""
    with path.open("wb") as fh:
        w = dpkt.pcap.Writer(fh, linktype=dpkt.pcap.DLT_EN10MB)
        for i, d in enumerate(datagrams):
            udp = dpkt.udp.UDP(sport=40000, dport=port, data=d)
            udp.ulen = 8 + len(d)
            ip = _v4(src, "127.0.0.1", udp, 17)
            w.writepkt(_eth(ip), ts=T0 + i * 0.001)


def tshark_fields(pcap: Path, port: int, proto: str, fields: list[str]) -> list[list[str]]:
    """tshark -T fields output: one list of strings per datagram (empty lines skipped)."""
    cmd = [
        shutil.which("tshark") or "tshark",
        "-r",
        str(pcap),
        "-d",
        f"udp.port=={port},{proto}",
        "-T",
        "fields",
        "-E",
        "separator=|",
    ]
    for f in fields:
        cmd += ["-e", f]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env={**os.environ, "HOME": str(pcap.parent)})
    assert res.returncode == 0, res.stderr
    return [line.split("|") for line in res.stdout.splitlines() if line.strip("|\n")]


def wait_capturing(pid: int, timeout: float = 60.0) -> None:
    """Wait until process ``pid`` holds a packet socket (libpcap has attached): one of its
    file descriptors is a socket listed in /proc/<pid>/net/packet, the packet sockets of
    the network namespace it runs in. A live capture started before that misses traffic."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            lines = Path(f"/proc/{pid}/net/packet").read_text().splitlines()[1:]
            inodes = {line.split()[-1] for line in lines if line.split()}
            fds = Path(f"/proc/{pid}/fd")
            for fd in fds.iterdir():
                try:
                    target = os.readlink(fd)
                except OSError:
                    continue
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    return
        except OSError as exc:
            raise AssertionError(f"process {pid} is gone before capturing: {exc}") from exc
        time.sleep(0.05)
    raise AssertionError(f"process {pid} opened no packet socket within {timeout:g}s")
