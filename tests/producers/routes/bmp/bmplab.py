"""A PoP router that speaks BMP: FRR's bgpd (``-M bmp``) with BIRD instances as its eBGP
peers, all on loopback addresses in the root namespace, so no address is added anywhere.

bgpd runs without zebra (``-Z``: nothing touches this machine's forwarding table) and as
root (``-S``), on its own 127.0.0.0/8 address and ports; each peer is a BIRD with static
routes it exports over one eBGP session. Both run in the foreground as this process's
children, so closing the lab stops and reaps them. The peers' next hops are documentation
addresses (FRR refuses loopback next hops as martians). FRR 8.4 needs
``soft-reconfiguration inbound`` for pre-policy BMP (without it, it reports every route as
a withdrawal: FRR issue #10240). Everything stops in :meth:`BmpLab.close`.
"""

from __future__ import annotations

import json
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import yaml

from netpilot.proc import stop_process

T = TypeVar("T")
ROUTER = "bmp-r1"
"""The FRR hostname, sent as the BMP sysName: the inventory router of the same name."""
ROUTER_AS = 64496


def wait_until(cond: Callable[[], T | None], timeout: float, what: str, every: float = 0.1) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"not within {timeout:g}s: {what}")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class BirdPeer:
    name: str
    address: str
    asn: int
    next_hop4: str
    next_hop6: str
    prefixes: list[str] = field(default_factory=list)
    dir: Path = Path()
    port: int = 0

    @property
    def socket(self) -> Path:
        return self.dir / "bird.ctl"

    def config(self, router: str, router_port: int) -> str:
        v4 = " ".join(f"route {p} blackhole;" for p in self.prefixes if ":" not in p)
        v6 = " ".join(f"route {p} blackhole;" for p in self.prefixes if ":" in p)
        return f"""log "{self.dir}/bird.log" all;
router id {self.address};
protocol device {{}}
protocol static s4 {{ ipv4; {v4} }}
protocol static s6 {{ ipv6; {v6} }}
protocol bgp up {{
  local {self.address} port {self.port} as {self.asn};
  neighbor {router} port {router_port} as {ROUTER_AS};
  multihop 2; hold time 9; keepalive time 3; connect retry time 1;
  ipv4 {{ import none; export all; next hop address {self.next_hop4}; }};
  ipv6 {{ import none; export all; next hop address {self.next_hop6}; }};
}}
"""

    def birdc(self, *args: str) -> str:
        return subprocess.run(
            ["birdc", "-s", str(self.socket), *args], capture_output=True, text=True, timeout=10
        ).stdout


class BmpLab:
    def __init__(self, collector_port: int, peers: list[tuple[str, list[str]]], monitor: str = "pre-policy") -> None:
        base = random.randint(16, 250)
        self.subnet = f"127.{random.randint(16, 250)}.{base}"
        self.address = f"{self.subnet}.1"
        self.port = free_port(self.address)
        self.collector_port = collector_port
        self.monitor = monitor
        self.dir = Path(tempfile.mkdtemp(prefix="netpilot-bmp-"))
        self._procs: list[subprocess.Popen[bytes]] = []
        self.peers = {
            name: BirdPeer(
                name,
                f"{self.subnet}.{i + 2}",
                64510 + i,
                f"198.51.100.{i + 2}",
                f"2001:db8:ffff::{i + 2}",
                list(prefixes),
                self.dir / name,
            )
            for i, (name, prefixes) in enumerate(peers)
        }
        for peer in self.peers.values():
            peer.port = free_port(peer.address)

    # -- life -------------------------------------------------------------------------------
    def open(self) -> BmpLab:
        try:
            self._start_bgpd()
            for peer in self.peers.values():
                self._start_bird(peer)
            return self
        except BaseException:
            self.close()
            raise

    def _start_bgpd(self) -> None:
        neighbors = []
        families = {"ipv4": [], "ipv6": []}  # type: dict[str, list[str]]
        for p in self.peers.values():
            neighbors += [
                f" neighbor {p.address} remote-as {p.asn}",
                f" neighbor {p.address} port {p.port}",
                f" neighbor {p.address} update-source {self.address}",
                f" neighbor {p.address} ebgp-multihop 2",
                f" neighbor {p.address} timers 3 9",
                f" neighbor {p.address} timers connect 1",
            ]
            for afi in families:
                families[afi] += [
                    f"  neighbor {p.address} activate",
                    f"  neighbor {p.address} soft-reconfiguration inbound",
                ]
        conf = [
            f"hostname {ROUTER}",
            f"log file {self.dir}/bgpd.log",
            f"router bgp {ROUTER_AS}",
            f" bgp router-id {self.address}",
            " no bgp ebgp-requires-policy",
            " no bgp default ipv4-unicast",
            *neighbors,
        ]
        for afi, lines in families.items():
            conf += [f" address-family {afi} unicast", *lines, " exit-address-family"]
        conf += [
            " bmp targets netpilot",
            f"  bmp monitor ipv4 unicast {self.monitor}",
            f"  bmp monitor ipv6 unicast {self.monitor}",
            f"  bmp connect 127.0.0.1 port {self.collector_port} min-retry 100 max-retry 1000",
            " exit",
        ]
        (self.dir / "bgpd.conf").write_text("\n".join(conf) + "\n")
        d = self.dir
        self._spawn(
            [
                "/usr/lib/frr/bgpd",
                "-S",
                "-Z",
                "-M",
                "bmp",
                "-p",
                str(self.port),
                "-l",
                self.address,
                "--vty_socket",
                str(d),
                "-i",
                str(d / "bgpd.pid"),
                "-f",
                str(d / "bgpd.conf"),
                "-P",
                "0",
                "--log",
                f"file:{d}/bgpd.log",
            ],
            d / "bgpd.stderr",
        )
        deadline = time.monotonic() + 20
        while not (d / "bgpd.vty").exists():
            if time.monotonic() > deadline or self._procs[-1].poll() is not None:
                raise RuntimeError(f"FRR bgpd did not start; see {d}/bgpd.log")
            time.sleep(0.05)

    def _start_bird(self, peer: BirdPeer) -> None:
        peer.dir.mkdir(parents=True, exist_ok=True)
        (peer.dir / "bird.conf").write_text(peer.config(self.address, self.port))
        self._spawn(["bird", "-f", "-c", str(peer.dir / "bird.conf"), "-s", str(peer.socket)], peer.dir / "bird.stderr")
        deadline = time.monotonic() + 15
        while "Daemon is up" not in peer.birdc("show", "status"):
            if time.monotonic() > deadline or self._procs[-1].poll() is not None:
                raise RuntimeError(f"bird {peer.name} did not start: {(peer.dir / 'bird.stderr').read_text()}")
            time.sleep(0.05)

    def _spawn(self, cmd: list[str], stderr: Path) -> None:
        with stderr.open("wb") as err:
            self._procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err))

    def close(self) -> None:
        for proc in reversed(self._procs):  # children in the foreground: stopped and reaped here
            stop_process(proc, grace_s=10)
        self._procs.clear()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- control ----------------------------------------------------------------------------
    def announce(self, peer: str, prefixes: list[str]) -> None:
        """Make ``peer`` announce exactly ``prefixes`` (the others are withdrawn)."""
        p = self.peers[peer]
        p.prefixes = list(prefixes)
        (p.dir / "bird.conf").write_text(p.config(self.address, self.port))
        out = p.birdc("configure")
        assert "Reconfigured" in out or "Reconfiguration in progress" in out, out

    def shut(self, peer: str) -> None:
        self.peers[peer].birdc("disable", "up")

    def unshut(self, peer: str) -> None:
        self.peers[peer].birdc("enable", "up")

    def vtysh(self, command: str) -> str:
        return subprocess.run(
            ["vtysh", "--vty_socket", str(self.dir), "-c", command], capture_output=True, text=True, timeout=15
        ).stdout

    def received(self, peer: str) -> int:
        """Prefixes FRR holds from ``peer`` (both families)."""
        addr = self.peers[peer].address
        n = 0
        for afi in ("ipv4", "ipv6"):
            doc = json.loads(self.vtysh(f"show bgp {afi} unicast summary json") or "{}")
            n += int(doc.get("peers", {}).get(addr, {}).get("pfxRcd", 0))
        return n

    def established(self, peer: str) -> bool:
        return "Established" in self.peers[peer].birdc("show", "protocols", "up")

    def inventory(self, path: Path, links: dict[str, str]) -> Path:
        """An inventory for the lab's router: link name -> the peer on it."""
        doc = {
            "pops": {
                "lab1": {
                    "routers": {
                        ROUTER: {
                            "counters": "external",
                            "links": {
                                link: {
                                    "if_name": f"eth{i}",
                                    "capacity": "10G",
                                    "peer_asn": self.peers[peer].asn,
                                    "next_hops": [self.peers[peer].address, self.peers[peer].next_hop4],
                                }
                                for i, (link, peer) in enumerate(links.items())
                            },
                        }
                    }
                }
            }
        }
        path.write_text(yaml.safe_dump(doc))
        return path
