"""A tiny network lab for SNMP tests: a "router" namespace running Debian's snmpd, a "peer"
namespace, a data veth between them (192.0.2.0/24, isolated in the namespaces) and a
management veth to the test process (a free /30 from 198.51.100.0/24; the root namespace's
own eth0 may already use 192.0.2.0/24). Everything is removed by :meth:`NetLab.close`.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

V3_USER, V3_AUTH, V3_PRIV = "npuser", "np-auth-secret", "np-priv-secret"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def _free_mgmt_net() -> int:
    used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    blocks = list(range(1, 63))
    random.shuffle(blocks)
    for b in blocks:
        base = b * 4
        if f"198.51.100.{base + 1}/" not in used and f"198.51.100.{base + 2}/" not in used:
            return base
    raise RuntimeError("no free /30 in 198.51.100.0/24 for the management veth")


class NetLab:
    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        tag = uuid.uuid4().hex[:6]
        self.router_ns, self.peer_ns = f"npr-{tag}", f"npp-{tag}"
        self.root_if = f"npm{tag}"
        base = _free_mgmt_net()
        self.root_addr, self.agent_addr = f"198.51.100.{base + 1}", f"198.51.100.{base + 2}"
        self.data_if, self.peer_addr = "uplink0", "192.0.2.2"
        self._procs: list[subprocess.Popen] = []
        self.snmpd: dict[int, subprocess.Popen] = {}

    def open(self) -> NetLab:
        _ip("netns", "add", self.router_ns)
        _ip("netns", "add", self.peer_ns)
        # management link: test process <-> router namespace
        _ip("link", "add", self.root_if, "type", "veth", "peer", "name", "mgmt0", "netns", self.router_ns)
        _ip("addr", "add", f"{self.root_addr}/30", "dev", self.root_if)
        _ip("link", "set", self.root_if, "up")
        _ip("-n", self.router_ns, "addr", "add", f"{self.agent_addr}/30", "dev", "mgmt0")
        _ip("-n", self.router_ns, "link", "set", "mgmt0", "up")
        _ip("-n", self.router_ns, "link", "set", "lo", "up")
        # data link: router <-> peer, where iperf3 traffic flows
        _ip(
            "-n",
            self.router_ns,
            "link",
            "add",
            self.data_if,
            "type",
            "veth",
            "peer",
            "name",
            "peer0",
            "netns",
            self.peer_ns,
        )
        _ip("-n", self.router_ns, "addr", "add", "192.0.2.1/24", "dev", self.data_if)
        _ip("-n", self.peer_ns, "addr", "add", f"{self.peer_addr}/24", "dev", "peer0")
        _ip("-n", self.router_ns, "link", "set", self.data_if, "up")
        _ip("-n", self.peer_ns, "link", "set", "peer0", "up")
        _ip("-n", self.peer_ns, "link", "set", "lo", "up")
        for ns, dev in ((self.router_ns, self.data_if), (self.peer_ns, "peer0")):
            # MTU-sized frames as on a wire (recipe: offloads off on veths)
            subprocess.run(
                [
                    "ip",
                    "netns",
                    "exec",
                    ns,
                    "ethtool",
                    "-K",
                    dev,
                    "tso",
                    "off",
                    "gso",
                    "off",
                    "gro",
                    "off",
                    "tx",
                    "off",
                    "rx",
                    "off",
                ],
                capture_output=True,
            )
        return self

    def add_interfaces(self, n: int) -> list[str]:
        """``n`` more interfaces in the router namespace, as veth pairs (the ``dummy``
        module is not loaded in this container). For cycle-time benchmarks."""
        names = [f"x{i}{side}" for i in range((n + 1) // 2) for side in "ab"][:n]
        batch = "".join(
            f"link add x{i}a type veth peer name x{i}b\nlink set x{i}a up\nlink set x{i}b up\n"
            for i in range((n + 1) // 2)
        )
        subprocess.run(
            ["ip", "-n", self.router_ns, "-batch", "-"], input=batch, text=True, check=True, capture_output=True
        )
        return names

    # -- snmpd -------------------------------------------------------------------------
    def start_snmpd(self, port: int = 1161, fresh_counters: bool = True) -> subprocess.Popen:
        d = self.dir / f"snmpd-{port}"
        d.mkdir(parents=True, exist_ok=True)
        conf = d / "snmpd.conf"
        conf.write_text(
            f"agentAddress udp:{self.agent_addr}:{port}\n"
            f"rocommunity public {self.root_addr}/32\n"
            f"rwcommunity lab-rw {self.root_addr}/32 .1.3.6.1.4.1.8072.1.5.3\n"
            f"createUser {V3_USER} SHA-256 {V3_AUTH} AES {V3_PRIV}\n"
            f"rouser {V3_USER} priv\n"
        )
        env = {**os.environ, "SNMP_PERSISTENT_DIR": str(d / "persist"), "MIBS": ""}
        proc = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                self.router_ns,
                "snmpd",
                "-f",
                "-C",
                "-c",
                str(conf),
                "-Lf",
                str(d / "snmpd.log"),
                "-p",
                str(d / "snmpd.pid"),
                "-u",
                "root",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.snmpd[port] = proc
        self._procs.append(proc)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            r = subprocess.run(
                [
                    "snmpget",
                    "-v2c",
                    "-c",
                    "public",
                    "-t",
                    "0.3",
                    "-r",
                    "0",
                    "-On",
                    f"{self.agent_addr}:{port}",
                    "1.3.6.1.2.1.1.3.0",
                ],
                capture_output=True,
                text=True,
                env={**os.environ, "MIBS": ""},
            )
            if r.returncode == 0:
                if fresh_counters:
                    self._fresh_counters(port)
                return proc
            time.sleep(0.2)
        raise RuntimeError(f"snmpd on port {port} did not answer: {(d / 'snmpd.log').read_text()}")

    def _fresh_counters(self, port: int) -> None:
        # Net-SNMP re-reads interface counters on a 3 s auto-reload timer, so a value can be
        # up to 3 s old: +-60 % on one 5 s interval. NET-SNMP-AGENT-MIB::nsCacheTimeout of
        # the ifTable cache = 0 makes it read the kernel at every request, as the test needs
        # to compare per-interval rates with iperf3 (measured: fresh to within ~20 ms).
        # Costly with many interfaces: every request then re-reads *all* of them.
        subprocess.run(
            [
                "snmpset",
                "-v2c",
                "-c",
                "lab-rw",
                "-On",
                f"{self.agent_addr}:{port}",
                "1.3.6.1.4.1.8072.1.5.3.1.2.1.3.6.1.2.1.2.2",
                "i",
                "0",
            ],
            check=True,
            capture_output=True,
            env={**os.environ, "MIBS": ""},
        )

    def kill_snmpd(self, port: int = 1161) -> None:
        proc = self.snmpd.pop(port)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    # -- traffic -----------------------------------------------------------------------
    def _wait_listening(self, port: int, timeout: float = 30.0) -> None:
        """Until a TCP socket listens on ``port`` in the peer namespace (iperf3's server)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = subprocess.run(
                ["ip", "netns", "exec", self.peer_ns, "ss", "-Htln", f"sport = :{port}"],
                capture_output=True,
                text=True,
                timeout=30,
            ).stdout
            if out.strip():
                return
            time.sleep(0.05)
        raise AssertionError(f"nothing listens on {port} in {self.peer_ns} within {timeout:g}s")

    def iperf3_udp(self, rate_bps: int, seconds: float, length: int = 1400) -> dict:
        """UDP from the router namespace to the peer; returns iperf3's JSON report."""
        server = subprocess.Popen(
            ["ip", "netns", "exec", self.peer_ns, "iperf3", "-s", "-1", "-B", self.peer_addr],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._procs.append(server)
        self._wait_listening(5201)
        out = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                self.router_ns,
                "iperf3",
                "-c",
                self.peer_addr,
                "-u",
                "-b",
                str(rate_bps),
                "-l",
                str(length),
                "-t",
                str(seconds),
                "-J",
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 30,
        )
        server.wait(10)
        if out.returncode != 0:
            raise RuntimeError(f"iperf3 failed: {out.stdout[-500:]} {out.stderr[-500:]}")
        return json.loads(out.stdout)

    def close(self) -> None:
        for p in self._procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        for ns in (self.router_ns, self.peer_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", self.root_if], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)
