"""FRR (bgpd + zebra) as a PoP router in a network namespace, for the injector tests.

zebra installs what bgpd selects into the namespace's kernel FIB, so a test can check the
override is where packets are forwarded, not only in BGP. A management veth joins the test
process (the injector's ExaBGP) to the namespace on a free /30 of 198.51.100.0/24; the
overrides' next hops sit on a dummy interface inside the namespace. Everything goes away
in :meth:`FrrRouter.close`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

NEXT_HOPS = (
    "198.51.100.11",
    "2001:db8:ffff::11",
    "198.51.100.10",
    "2001:db8:ffff::10",
    "198.51.100.20",
    "2001:db8:ffff::20",
)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def _free_mgmt() -> int:
    used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    for base in range(128, 252, 4):  # clear of the lab's next hops (.10, .11, .20)
        if f"198.51.100.{base + 1}/" not in used and f"198.51.100.{base + 2}/" not in used:
            return base
    raise RuntimeError("no free /30 in 198.51.100.128/25")


class FrrRouter:
    def __init__(self, local_as: int = 64496) -> None:
        tag = uuid.uuid4().hex[:6]
        self.ns, self.root_if = f"npf-{tag}", f"npf{tag}"
        base = _free_mgmt()
        self.injector_addr, self.address = f"198.51.100.{base + 1}", f"198.51.100.{base + 2}"
        self.local_as = local_as
        # FRR drops to user frr: its folder must be reachable by it (pytest's tmp is 0700)
        self.dir = Path(tempfile.mkdtemp(prefix="netpilot-frr-"))
        os.chmod(self.dir, 0o755)

    def open(self) -> FrrRouter:
        try:
            return self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> FrrRouter:
        _ip("netns", "add", self.ns)
        _ip("-n", self.ns, "link", "set", "lo", "up")
        _ip("link", "add", self.root_if, "type", "veth", "peer", "name", "mgmt0", "netns", self.ns)
        _ip("addr", "add", f"{self.injector_addr}/30", "dev", self.root_if)
        _ip("link", "set", self.root_if, "up")
        _ip("-n", self.ns, "addr", "add", f"{self.address}/30", "dev", "mgmt0")
        _ip("-n", self.ns, "link", "set", "mgmt0", "up")
        # a veth pair inside the namespace stands for the peering LAN (no dummy module here)
        _ip("-n", self.ns, "link", "add", "peers0", "type", "veth", "peer", "name", "peers1")
        _ip("-n", self.ns, "link", "set", "peers1", "up")
        _ip("-n", self.ns, "link", "set", "peers0", "up")
        for hop in NEXT_HOPS:  # the peers' addresses, reachable: FRR's next-hop tracking accepts them
            _ip("-n", self.ns, "route", "add", f"{hop}/{128 if ':' in hop else 32}", "dev", "peers0")
        (self.dir / "zebra.conf").write_text("hostname np-frr\n")
        (self.dir / "bgpd.conf").write_text(
            "hostname np-frr\n"
            f"router bgp {self.local_as}\n"
            f" bgp router-id {self.address}\n"
            " no bgp ebgp-requires-policy\n"
            f" neighbor {self.injector_addr} remote-as {self.local_as}\n"
            f" neighbor {self.injector_addr} timers 3 9\n"
            " address-family ipv4 unicast\n"
            f"  neighbor {self.injector_addr} activate\n"
            " exit-address-family\n"
            " address-family ipv6 unicast\n"
            f"  neighbor {self.injector_addr} activate\n"
            " exit-address-family\n"
        )
        shutil.chown(self.dir, "frr", "frr")
        for f in self.dir.iterdir():
            shutil.chown(f, "frr", "frr")
        d = str(self.dir)
        for daemon in ("zebra", "bgpd"):
            subprocess.run(
                [
                    "ip",
                    "netns",
                    "exec",
                    self.ns,
                    f"/usr/lib/frr/{daemon}",
                    "-d",
                    "-z",
                    f"{d}/zserv.api",
                    "--vty_socket",
                    d,
                    "-i",
                    f"{d}/{daemon}.pid",
                    "-f",
                    f"{d}/{daemon}.conf",
                    "-P",
                    "0",
                    "--log",
                    f"file:{d}/{daemon}.log",
                ],
                check=True,
                capture_output=True,
                timeout=30,
            )
            deadline = time.monotonic() + 20
            while not (self.dir / f"{daemon}.vty").exists():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"FRR {daemon} did not start; see {d}/{daemon}.log")
                time.sleep(0.05)
        return self

    def vtysh(self, command: str) -> str:
        return subprocess.run(
            ["vtysh", "--vty_socket", str(self.dir), "-c", command], capture_output=True, text=True, timeout=15
        ).stdout

    def fib(self, prefix: str) -> str:
        return subprocess.run(
            ["ip", "-n", self.ns, "-6" if ":" in prefix else "-4", "route", "show", prefix],
            capture_output=True,
            text=True,
        ).stdout

    def close(self) -> None:
        for daemon in ("bgpd", "zebra"):
            try:
                pid = int((self.dir / f"{daemon}.pid").read_text())
                os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    os.kill(pid, 0)
                    time.sleep(0.05)
                os.kill(pid, signal.SIGKILL)
            except (OSError, ValueError):
                pass
        subprocess.run(["ip", "link", "del", self.root_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)
