"""Run Debian's real flow exporters against a pcap and capture what they send.

Every exporter reads the same traffic pcap (or, for fprobe, sniffs UDP it is sent on lo)
and exports to its own UDP receiver on 127.0.0.1. They run in parallel: pmacctd needs
several seconds to flush, and the test folder must stay fast.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tests.producers.collector.traffic import UdpCapture, wait_capturing, write_datagram_pcap


@dataclass
class Export:
    name: str
    port: int
    datagrams: list[bytes]
    pcap: Path
    """Captured datagrams wrapped as Ethernet/IPv4/UDP frames (for tshark / netpilot decode)."""


def _finish(
    name: str, cap: UdpCapture, workdir: Path, quiet_s: float, timeout_s: float, proc: subprocess.Popen | None = None
) -> Export:
    cap.wait_quiet(quiet_s, timeout_s)
    if proc is not None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    cap.close()
    dgs = [d for d, _ in cap.datagrams]
    pcap = workdir / f"{name}.pcap"
    write_datagram_pcap(pcap, dgs, cap.port)
    return Export(name, cap.port, dgs, pcap)


def softflowd(workdir: Path, traffic: Path, version: str, sampling: int = 0, biflow: bool = False) -> Export:
    cap = UdpCapture()
    name = f"softflowd-v{version}" + (f"-s{sampling}" if sampling else "") + ("-b" if biflow else "")
    cmd = [
        "softflowd",
        "-d",
        "-r",
        str(traffic),
        "-a",
        "-v",
        version,
        "-n",
        f"127.0.0.1:{cap.port}",
        "-p",
        str(workdir / f"{name}.pid"),
    ]
    if version != "5":
        cmd.insert(-4, "-6")
    if sampling:
        cmd += ["-s", str(sampling)]
    if biflow:
        cmd.append("-b")  # RFC 5103 biflows: reverse counters under PEN 29305
    subprocess.run(cmd, capture_output=True, timeout=60, check=True)
    return _finish(name, cap, workdir, 0.5, 10)


def pmacctd(workdir: Path, traffic: Path, version: str, sampling: int = 0) -> Export:
    cap = UdpCapture()
    name = f"pmacctd-{version}" + (f"-s{sampling}" if sampling else "")
    conf = workdir / f"{name}.conf"
    common = f"daemonize: false\npcap_savefile: {traffic}\n" + (f"sampling_rate: {sampling}\n" if sampling else "")
    if version == "sflow":
        conf.write_text(
            common + f"plugins: sfprobe[sp]\nsampling_rate: 1\n"
            f"sfprobe_receiver[sp]: 127.0.0.1:{cap.port}\nsfprobe_agentip[sp]: 192.0.2.1\n"
            f"sfprobe_ifindex[sp]: 7\n"
        )
    else:
        conf.write_text(
            common + f"plugins: nfprobe[np]\nnfprobe_receiver[np]: 127.0.0.1:{cap.port}\n"
            f"nfprobe_version[np]: {version}\n"
            "nfprobe_timeouts[np]: tcp=3:udp=3:icmp=3:general=3:maxlife=4:expint=1\n"
            "aggregate[np]: src_host, dst_host, src_port, dst_port, proto, tos, tcpflags\n"
        )
    proc = subprocess.Popen(["pmacctd", "-f", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return _finish(name, cap, workdir, 2.0, 40, proc)


def fprobe(workdir: Path) -> Export:
    """fprobe sniffs lo for UDP we send to a private port (it cannot read a pcap).

    ``-l 2`` logs to stdout, which also keeps fprobe in the foreground: with the default
    ``-l 1`` it daemonizes and the process we started (and terminate) is not the exporter.
    """
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    port = sink.getsockname()[1]
    cap = UdpCapture()
    proc = subprocess.Popen(
        [
            "fprobe",
            "-i",
            "lo",
            "-p",
            "-f",
            f"udp and dst port {port}",
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
            f"127.0.0.1:{cap.port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_capturing(proc.pid)  # libpcap attached before the traffic
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for i in range(12):
            for _ in range(4):
                tx.sendto(b"y" * (10 + 3 * i), (f"127.0.0.{1 + i % 4}", port))
                time.sleep(0.002)
        tx.close()
        return _finish("fprobe-v5", cap, workdir, 1.5, 20, proc)
    finally:
        sink.close()


def nfreplay(workdir: Path, source: Export, version: str) -> Export:
    """nfcapd stores ``source``'s datagrams; nfreplay re-exports them as v5 or v9."""
    store = workdir / f"nfcapd-{version}"
    store.mkdir()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    proc = subprocess.Popen(
        ["nfcapd", "-b", "127.0.0.1", "-p", str(port), "-w", str(store), "-t", "60"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for d in source.datagrams:
            tx.sendto(d, ("127.0.0.1", port))
            time.sleep(0.01)
        tx.close()
        time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
    files = [f for f in store.rglob("nfcapd.*") if f.is_file()]
    assert files, f"nfcapd stored nothing in {store}"
    cap = UdpCapture()
    subprocess.run(
        ["nfreplay", "-r", str(files[0]), "-v", version, "-H", "127.0.0.1", "-p", str(cap.port), "-d", "1000"],
        capture_output=True,
        timeout=60,
        check=True,
    )
    return _finish(f"nfreplay-v{version}", cap, workdir, 0.5, 10)


def run_all(workdir: Path, traffic: Path) -> dict[str, Export]:
    with ThreadPoolExecutor(max_workers=12) as pool:
        futures = {
            "pmacctd-5": pool.submit(pmacctd, workdir, traffic, "5"),
            "pmacctd-9": pool.submit(pmacctd, workdir, traffic, "9"),
            "pmacctd-10": pool.submit(pmacctd, workdir, traffic, "10"),
            "pmacctd-sflow": pool.submit(pmacctd, workdir, traffic, "sflow"),
            "fprobe-5": pool.submit(fprobe, workdir),
            "softflowd-5": pool.submit(softflowd, workdir, traffic, "5"),
            "softflowd-9": pool.submit(softflowd, workdir, traffic, "9"),
            "softflowd-10": pool.submit(softflowd, workdir, traffic, "10"),
            # sampled exports: rates travel in options data (softflowd: IEs 305/306 in
            # IPFIX, 34 in v9; pmacctd: a sampler table, IEs 48/49/50, referenced by IE 48)
            "softflowd-9-s10": pool.submit(softflowd, workdir, traffic, "9", 10),
            "softflowd-10-s10": pool.submit(softflowd, workdir, traffic, "10", 10),
            "pmacctd-9-s4": pool.submit(pmacctd, workdir, traffic, "9", 4),
            "pmacctd-10-s4": pool.submit(pmacctd, workdir, traffic, "10", 4),
            "softflowd-10-b": pool.submit(softflowd, workdir, traffic, "10", 0, True),
        }
        out = {k: f.result() for k, f in futures.items()}
        replays = {f"nfreplay-{v}": pool.submit(nfreplay, workdir, out["softflowd-9"], v) for v in ("5", "9")}
        out.update({k: f.result() for k, f in replays.items()})
    return out
