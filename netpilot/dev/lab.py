"""A routing lab in network namespaces whose kernel moves the traffic (``netpilot dev lab``).

Topology (every namespace is ``<prefix><role>``; nothing is addressed in the root namespace)::

    src ──── pop (FRR bgpd+zebra, AS 64496) ──transit0 (tc 100 Mbit)── transit (BIRD, AS 64500) ──┐
     │        │                              ──pni0     (tc  20 Mbit)── pni     (BIRD, AS 64501) ──┼── net
     │        │                              ──ix0      (tc  50 Mbit)── ix      (BIRD, AS 64502) ──┘
     │        └──mgmt0── nms (netpilot's side: ExaBGP, iBGP to the pop)

- ``pop`` is the PoP router: FRR's zebra puts what bgpd selects into the namespace's FIB, so
  the kernel forwards by BGP, overrides included. Local preference by peer type (PNI 300,
  IX 200, transit 100) makes a prefix reachable over several peers leave by the PNI first.
- ``transit``, ``pni``, ``ix`` are eBGP peers (BIRD 2) announcing prefixes of 198.18.0.0/15
  that live on ``net``'s loopback; several are announced by more than one peer.
- ``pop``'s egress veths are shaped with ``tc tbf`` to the links' capacities.
- ``src`` sends traffic (iperf3 UDP) to ``net``; ``net`` runs the iperf3 servers.
- ``nms`` is where netpilot's BGP speaker runs (the injector's ``exabgp_netns``).

Addresses come only from 198.51.100.0/24 (router links), 203.0.113.0/24 (source and the
peers' far side) and 198.18.0.0/15 (the announced prefixes). ``down`` stops every daemon by
its pid file, deletes the namespaces (which removes the veths) and the state folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from netpilot import catalog
from netpilot.errors import NetpilotError
from netpilot.kafka.producer import KafkaProducer
from netpilot.proc import stop_pid
from netpilot.settings import KafkaSettings
from netpilot.wire.links import LinkInventory, PeerType
from netpilot.wire.routes import Route

POP_AS = 64496


class LabError(NetpilotError):
    """A lab step failed (a missing tool, a daemon that did not start)."""


@dataclass(frozen=True)
class Peer:
    name: str  # transit, pni, ix: also the namespace suffix and the pop's interface stem
    peer_type: PeerType
    asn: int
    capacity_mbit: int
    pop_addr: str  # the pop's end of the /30
    peer_addr: str  # the peer's end: the next hop of its routes
    far_addr: str  # the peer's end towards net
    net_addr: str  # net's end towards this peer
    local_pref: int
    prefixes: tuple[str, ...]

    @property
    def pop_if(self) -> str:
        return f"{self.name}0"

    @property
    def link_id(self) -> str:
        """As the lab's inventory.yaml names it (and so flows, link-stats, routes)."""
        return f"{self.name}-1"


PEERS = (
    Peer(
        "transit",
        "transit",
        64500,
        100,
        "198.51.100.1",
        "198.51.100.2",
        "203.0.113.9",
        "203.0.113.10",
        100,
        ("198.18.10.0/24", "198.18.11.0/24", "198.18.12.0/24", "198.18.13.0/24", "198.18.14.0/24"),
    ),
    Peer(
        "pni",
        "pni",
        64501,
        20,
        "198.51.100.5",
        "198.51.100.6",
        "203.0.113.13",
        "203.0.113.14",
        300,
        ("198.18.10.0/24", "198.18.11.0/24", "198.18.12.0/24"),
    ),
    Peer(
        "ix",
        "ix",
        64502,
        50,
        "198.51.100.9",
        "198.51.100.10",
        "203.0.113.17",
        "203.0.113.18",
        200,
        ("198.18.12.0/24", "198.18.13.0/24", "198.18.14.0/24"),
    ),
)
PREFIXES = tuple(sorted({p for peer in PEERS for p in peer.prefixes}))
SRC_ADDR, SRC_POP_ADDR, SRC_NET = "203.0.113.1", "203.0.113.2", "203.0.113.0/30"
NMS_ADDR, NMS_POP_ADDR = "198.51.100.253", "198.51.100.254"
ROUTER = "lab-r1"
STREAMS_PER_PREFIX = 2
LAB_POP = "lab1"
SNMP_COMMUNITY = "public"
BMP_PORT = 11019  # the pop's own 127.0.0.1, where bgpd connects for BMP (relayed to the collector)
SOFTFLOWD_MAXLIFE_S = 2
"""softflowd cuts a flow into records of at most this (plus its 1 s expiry check): streams
spreads a record over the windows it spans, but its last share waits for the record, so
this plus the export delay must stay under the streams' allowed lateness (docs/lab.md)."""
FLOW_PORT = 2055  # the pop's own 127.0.0.1, where its exporters send (relayed to the collector)


def host(prefix: str) -> str:
    """The address inside ``prefix`` that ``net`` answers on (``.1``)."""
    return prefix.rsplit(".", 1)[0] + ".1"


def peer(name: str) -> Peer:
    return next(p for p in PEERS if p.name == name)


def preferred(prefix: str) -> Peer:
    """The peer the pop forwards ``prefix`` to without an override (highest local preference)."""
    return max((p for p in PEERS if prefix in p.prefixes), key=lambda p: p.local_pref)


@dataclass
class LabState:
    prefix: str
    dir: str
    namespaces: list[str] = field(default_factory=list)
    pids: dict[str, int] = field(default_factory=dict)
    snmp_port: int = 0
    """The root namespace's 127.0.0.1 UDP port relayed to the pop's snmpd."""


def _run(*args: str, timeout: float = 30) -> str:
    out = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise LabError(f"{' '.join(args)}: {(out.stderr or out.stdout).strip()}")
    return out.stdout


class Lab:
    """The lab under one namespace prefix; its state (configs, logs, pid files) in ``state_dir``."""

    def __init__(self, prefix: str = "npl-", state_dir: Path | None = None) -> None:
        if len(prefix) > 12:
            raise LabError("namespace prefix too long (12 characters at most)")
        self.prefix = prefix
        # FRR drops to user frr: the folder must be reachable by it, hence /tmp and 0755
        self.dir = state_dir or Path(f"/tmp/netpilot-lab-{prefix.rstrip('-')}")

    # -- naming ---------------------------------------------------------------------------
    def ns(self, role: str) -> str:
        return f"{self.prefix}{role}"

    nms_address = NMS_ADDR
    """netpilot's end of the iBGP session (in the ``nms`` namespace)."""
    nms_peer = NMS_POP_ADDR
    """The pop's end of it."""

    @property
    def frr_dir(self) -> Path:
        return self.dir / "frr"

    def exec(self, role: str, *args: str, timeout: float = 30) -> str:
        return _run("ip", "netns", "exec", self.ns(role), *args, timeout=timeout)

    def _ip(self, role: str, *args: str) -> None:
        _run("ip", "-n", self.ns(role), *args)

    def _state_file(self) -> Path:
        return self.dir / "state.json"

    def state(self) -> LabState | None:
        try:
            return LabState(**json.loads(self._state_file().read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def _save(self, st: LabState) -> None:
        self._state_file().write_text(json.dumps(asdict(st), indent=1))

    # -- up -------------------------------------------------------------------------------
    def up(self, bmp_port: int | None = None, collector_port: int | None = None) -> LabState:
        """``bmp_port``/``collector_port``: the BMP and flow collectors' ports on the root
        namespace's 127.0.0.1 (relayed from the pop); None: no BMP, no flow export."""
        """Build the lab; on any failure tear down what was built and raise."""
        for tool in ("ip", "tc", "bird", "birdc", "vtysh", "iperf3", "snmpd", "softflowd"):
            if shutil.which(tool) is None:
                raise LabError(f"{tool} not found (apt-get install iproute2 bird2 frr iperf3 snmpd softflowd)")
        if not Path("/usr/lib/frr/bgpd").exists():
            raise LabError("FRR not found: apt-get install frr")
        if self.state() is not None or self.ns("pop") in self.namespaces():
            raise LabError(f"a lab with prefix {self.prefix!r} is already up (netpilot dev lab down first)")
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)
        st = LabState(self.prefix, str(self.dir))
        try:
            self._topology(st)
            self._peers(st)
            if bmp_port is not None:
                d = self.dir / "bmp"
                d.mkdir(exist_ok=True)
                self._relay(st, "bmp-relay", d, [str(BMP_PORT), self.ns("pop"), str(bmp_port), "tcp-out"])
            self._frr(st, bmp_port is not None)
            self._iperf_servers(st)
            self._snmp(st)
            if collector_port is not None:
                self._flows(st, collector_port)
            self.write_inventory(st)
            self._save(st)
            self.wait_ready()
        except BaseException:
            self._save(st)
            self.down()
            raise
        return st

    def wait_ready(self, timeout: float = 60) -> None:
        """Until the eBGP sessions are up and the kernel forwards every prefix to its preferred peer."""
        deadline = time.monotonic() + timeout
        want = {prefix: preferred(prefix).pop_if for prefix in PREFIXES}
        got: dict[str, str] = {}
        while time.monotonic() < deadline:
            if all(self.established().get(p.peer_addr) for p in PEERS):
                got = {prefix: self._egress_or_none(host(prefix)) for prefix in PREFIXES}
                if got == want:
                    return
            time.sleep(0.1)
        raise LabError(f"lab not ready within {timeout:g}s: forwarding {got}, wanted {want}; see {self.dir}")

    def _egress_or_none(self, destination: str) -> str:
        try:
            return self.egress(destination)
        except (LabError, ValueError, KeyError, IndexError):
            return "?"

    def _veth(self, a: str, a_if: str, a_addr: str, b: str, b_if: str, b_addr: str, plen: int = 30) -> None:
        _run("ip", "-n", self.ns(a), "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", self.ns(b))
        for role, ifname, addr in ((a, a_if, a_addr), (b, b_if, b_addr)):
            self._ip(role, "addr", "add", f"{addr}/{plen}", "dev", ifname)
            # MTU-sized packets as on a wire: the flow exporters and the shaper see real frames
            subprocess.run(
                [
                    "ip",
                    "netns",
                    "exec",
                    self.ns(role),
                    "ethtool",
                    "-K",
                    ifname,
                    "tso",
                    "off",
                    "gso",
                    "off",
                    "gro",
                    "off",
                ],
                capture_output=True,
            )
            self._ip(role, "link", "set", ifname, "up")

    def _topology(self, st: LabState) -> None:
        roles = ["src", "pop", "nms", "net", *(p.name for p in PEERS)]
        for role in roles:
            _run("ip", "netns", "add", self.ns(role))
            st.namespaces.append(self.ns(role))
            self._ip(role, "link", "set", "lo", "up")
            for key in ("net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0"):
                self.exec(role, "sysctl", "-qw", key)
        self._veth("src", "pop0", SRC_ADDR, "pop", "src0", SRC_POP_ADDR)
        self._ip("src", "route", "add", "198.18.0.0/15", "via", SRC_POP_ADDR)
        self._veth("nms", "pop0", NMS_ADDR, "pop", "mgmt0", NMS_POP_ADDR)
        for p in PEERS:
            self._veth("pop", p.pop_if, p.pop_addr, p.name, "pop0", p.peer_addr)
            self._veth(p.name, "net0", p.far_addr, "net", f"{p.name}0", p.net_addr)
            for prefix in p.prefixes:  # the peer forwards what it announces to net
                self._ip(p.name, "route", "add", prefix, "via", p.net_addr)
            self._ip(p.name, "route", "add", SRC_NET, "via", p.pop_addr)
            # the shaper: the link's capacity on the pop's egress
            self.exec(
                "pop",
                "tc",
                "qdisc",
                "add",
                "dev",
                p.pop_if,
                "root",
                "tbf",
                "rate",
                f"{p.capacity_mbit}mbit",
                "burst",
                f"{max(16, p.capacity_mbit // 2)}kb",
                "latency",
                "50ms",
            )
        for prefix in PREFIXES:
            self._ip("net", "addr", "add", f"{host(prefix)}/32", "dev", "lo")
        # replies go back by the transit (what comes back does not matter for the egress)
        self._ip("net", "route", "add", SRC_NET, "via", peer("transit").far_addr)

    def _peers(self, st: LabState) -> None:
        for p in PEERS:
            d = self.dir / p.name
            d.mkdir(exist_ok=True)
            statics = "\n".join(f"  route {prefix} unreachable;" for prefix in p.prefixes)
            (d / "bird.conf").write_text(
                f'log "{d}/bird.log" all;\n'
                f"router id {p.peer_addr};\n"
                "protocol device {}\n"
                f"protocol static announced {{ ipv4; {statics.strip()} }}\n"
                "protocol bgp pop {\n"
                f"  local {p.peer_addr} as {p.asn};\n"
                f"  neighbor {p.pop_addr} as {POP_AS};\n"
                "  hold time 9; keepalive time 3;\n"
                '  ipv4 { import none; export where proto = "announced"; };\n'
                "}\n"
            )
            self.exec(p.name, "bird", "-c", f"{d}/bird.conf", "-s", f"{d}/bird.ctl", "-P", f"{d}/bird.pid")
            st.pids[f"bird-{p.name}"] = self._pid_file(d / "bird.pid")

    def _frr(self, st: LabState, bmp: bool) -> None:
        d = self.frr_dir
        d.mkdir(exist_ok=True)
        lines = ["hostname lab-r1", "log file " + str(d / "bgpd.log")]
        for p in PEERS:
            lines += [f"route-map from-{p.name} permit 10", f" set local-preference {p.local_pref}", "exit"]
        lines += [
            f"router bgp {POP_AS}",
            f" bgp router-id {NMS_POP_ADDR}",
            " no bgp ebgp-requires-policy",
            " no bgp network import-check",
            f" neighbor {NMS_ADDR} remote-as {POP_AS}",
            f" neighbor {NMS_ADDR} description netpilot",
            f" neighbor {NMS_ADDR} timers 3 9",
        ]
        for p in PEERS:
            lines += [
                f" neighbor {p.peer_addr} remote-as {p.asn}",
                f" neighbor {p.peer_addr} description {p.link_id}",
                f" neighbor {p.peer_addr} timers 3 9",
            ]
        lines += [" address-family ipv4 unicast"]
        for p in PEERS:
            lines += [f"  neighbor {p.peer_addr} route-map from-{p.name} in"]
            # pre-policy BMP reports what the peer sent only if bgpd keeps it
            lines += [f"  neighbor {p.peer_addr} soft-reconfiguration inbound"]
        lines += [" exit-address-family"]
        if bmp:
            lines += [
                " bmp targets netpilot",
                "  bmp monitor ipv4 unicast pre-policy",
                f"  bmp connect 127.0.0.1 port {BMP_PORT} min-retry 100 max-retry 1000",
                " exit",
            ]
        (d / "bgpd.conf").write_text("\n".join(lines) + "\n")
        (d / "zebra.conf").write_text("hostname lab-r1\n")
        shutil.chown(d, "frr", "frr")
        for f in d.iterdir():
            shutil.chown(f, "frr", "frr")
        for daemon in ("zebra", "bgpd"):
            extra = ["-M", "bmp"] if daemon == "bgpd" and bmp else []
            self.exec(
                "pop",
                f"/usr/lib/frr/{daemon}",
                "-d",
                *extra,
                "-z",
                f"{d}/zserv.api",
                "--vty_socket",
                str(d),
                "-i",
                f"{d}/{daemon}.pid",
                "-f",
                f"{d}/{daemon}.conf",
                "-P",
                "0",
                "--log",
                f"file:{d}/{daemon}.log",
            )
            st.pids[daemon] = self._pid_file(d / f"{daemon}.pid")

    def _iperf_servers(self, st: LabState, streams: int = STREAMS_PER_PREFIX) -> None:
        # bound to the prefix's address: a UDP server on the wildcard would answer from net's
        # interface address and the client's connected socket would drop the answer
        for prefix in PREFIXES:
            for i in range(streams):
                port, addr = 5201 + i, host(prefix)
                pid_file = self.dir / f"iperf3-{addr}-{port}.pid"
                log = self.dir / f"iperf3-{addr}-{port}.log"
                self.exec(
                    "net", "iperf3", "-s", "-D", "-B", addr, "-p", str(port), "-I", str(pid_file), "--logfile", str(log)
                )
                st.pids[f"iperf3-{addr}-{port}"] = self._pid_file(pid_file)

    def _snmp(self, st: LabState) -> None:
        """snmpd in the pop (IF-MIB of its veths), reachable from the root namespace's
        127.0.0.1 through :mod:`netpilot.dev.labrelay`."""
        import socket

        d = self.dir / "snmpd"
        d.mkdir(exist_ok=True)
        (d / "snmpd.conf").write_text(
            f"agentAddress udp:127.0.0.1:161\nrocommunity {SNMP_COMMUNITY} 127.0.0.1/32\n"
            "rwcommunity lab-rw 127.0.0.1/32 .1.3.6.1.4.1.8072.1.5.3\n"  # nsCacheTable only
        )
        env = {**os.environ, "SNMP_PERSISTENT_DIR": str(d / "persist"), "MIBS": ""}
        subprocess.run(
            [
                "ip", "netns", "exec", self.ns("pop"), "snmpd", "-C", "-c", f"{d}/snmpd.conf",
                "-Lf", f"{d}/snmpd.log", "-p", f"{d}/snmpd.pid", "-u", "root",
            ],
            env=env, check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        st.pids["snmpd"] = self._pid_file(d / "snmpd.pid")
        # Net-SNMP re-reads interface counters on a ~3 s timer: a value up to 3 s old is +-60 %
        # on a 5 s poll (the lab saw a 20 Mbit/s link at 1.2). nsCacheTimeout 0 for the
        # ifTable cache makes every request read the kernel (cheap: the pop has 6 interfaces).
        deadline = time.monotonic() + 20
        while True:
            r = subprocess.run(
                [
                    "ip", "netns", "exec", self.ns("pop"), "snmpset", "-v2c", "-c", "lab-rw", "-On",
                    "127.0.0.1:161", "1.3.6.1.4.1.8072.1.5.3.1.2.1.3.6.1.2.1.2.2", "i", "0",
                ],
                capture_output=True, text=True, env={**os.environ, "MIBS": ""}, timeout=30,
            )  # fmt: skip
            if r.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise LabError(f"snmpd in the pop does not answer: {r.stderr.strip()}")
            time.sleep(0.2)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            st.snmp_port = s.getsockname()[1]
        self._relay(st, "snmp-relay", d, [str(st.snmp_port), self.ns("pop"), "161"])

    def _relay(self, st: LabState, name: str, d: Path, args: list[str]) -> None:
        import sys

        with open(d / f"{name}.log", "wb") as log:
            relay = subprocess.Popen(
                [sys.executable, "-m", "netpilot.dev.labrelay", *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # outlives `netpilot dev lab up`; `down` stops it by pid
            )
        st.pids[name] = relay.pid
        (d / f"{name}.pid").write_text(str(relay.pid))
        deadline = time.monotonic() + 20
        while b"ready" not in (d / f"{name}.log").read_bytes():
            if relay.poll() is not None or time.monotonic() > deadline:
                raise LabError(f"{name} did not start: {(d / f'{name}.log').read_text()}")
            time.sleep(0.05)

    def _flows(self, st: LabState, collector_port: int) -> None:
        """softflowd on each egress veth of the pop, IPFIX with the veth's ifIndex, to the
        collector on the root namespace's 127.0.0.1:``collector_port`` through a relay.

        Live capture loses light traffic (libpcap hands over full blocks), but the lab's
        streams are megabits; the filter keeps the egress towards the announced prefixes
        only (replies and BGP are not what the link carries out)."""
        d = self.dir / "flows"
        d.mkdir(exist_ok=True)
        self._relay(st, "flow-relay", d, [str(FLOW_PORT), self.ns("pop"), str(collector_port), "reverse"])
        index = self.if_index()
        for p in PEERS:
            self.exec(
                "pop", "softflowd", "-i", f"{index[p.pop_if]}:{p.pop_if}", "-v", "10", "-n", f"127.0.0.1:{FLOW_PORT}",
                "-t", f"maxlife={SOFTFLOWD_MAXLIFE_S}", "-t", "expint=1",
                "-t", "udp=3", "-t", "tcp=5", "-t", "general=5",
                "-p", f"{d}/softflowd-{p.name}.pid", "-c", f"{d}/softflowd-{p.name}.ctl", "dst net 198.18.0.0/15",
            )  # fmt: skip
            st.pids[f"softflowd-{p.name}"] = self._pid_file(d / f"softflowd-{p.name}.pid")

    @property
    def inventory_file(self) -> Path:
        return self.dir / "inventory.yaml"

    def write_inventory(self, st: LabState) -> None:
        """The lab router's links as netpilot's inventory describes them (if_name, capacity,
        next hop, SNMP target through the relay)."""
        import yaml

        index = self.if_index()
        links = {
            p.link_id: {
                "if_name": p.pop_if,
                "if_index": index[p.pop_if],  # flows name the interface by it
                "capacity": p.capacity_mbit * 1_000_000,
                "peer_asn": p.asn,
                "peer_type": p.peer_type,
                "next_hops": [p.peer_addr],
            }
            for p in PEERS
        }
        router = {
            "exporters": ["127.0.0.1"],
            "snmp": {"target": f"127.0.0.1:{st.snmp_port}", "version": "2c", "credentials": "lab"},
            "links": links,
        }
        doc = {"pops": {LAB_POP: {"description": "netpilot dev lab", "routers": {ROUTER: router}}}}
        self.inventory_file.write_text(yaml.safe_dump(doc, sort_keys=False))

    @staticmethod
    def _pid_file(path: Path, timeout: float = 20) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                return int(path.read_text().strip().strip("\x00"))
            except (OSError, ValueError):
                time.sleep(0.05)
        raise LabError(f"no pid in {path} within {timeout:g}s")

    # -- down -----------------------------------------------------------------------------
    def namespaces(self) -> list[str]:
        out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        return [
            line.split()[0] for line in out.splitlines() if line.split() and line.split()[0].startswith(self.prefix)
        ]

    def down(self) -> None:
        """Stop every daemon, delete the namespaces and the state folder. Safe to repeat."""
        st = self.state()
        pids = dict(st.pids) if st else {}
        for pid_file in self.dir.rglob("*.pid") if self.dir.exists() else ():
            try:
                pids.setdefault(str(pid_file), int(pid_file.read_text().strip().strip("\x00")))
            except (OSError, ValueError):
                pass
        for pid in set(pids.values()):
            if pid > 1:
                stop_pid(pid, grace_s=10, poll_s=0.05)
        # anything else still inside a lab namespace (an iperf3 client, an exporter) goes too
        for ns in self.namespaces():
            out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
            for left in out.split():
                stop_pid(int(left), grace_s=5, poll_s=0.05)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- looking at it --------------------------------------------------------------------
    def vtysh(self, command: str) -> str:
        return _run("vtysh", "--vty_socket", str(self.frr_dir), "-c", command, timeout=15)

    def established(self) -> dict[str, bool]:
        """Per BGP neighbour of the pop: is the session up."""
        try:
            peers = json.loads(self.vtysh("show bgp ipv4 unicast summary json") or "{}").get("peers", {})
        except (LabError, ValueError):
            return {}
        return {addr: info.get("state") == "Established" for addr, info in peers.items()}

    def egress(self, destination: str) -> str:
        """The pop's interface the kernel forwards ``destination`` out of."""
        out = json.loads(_run("ip", "-j", "-n", self.ns("pop"), "route", "get", destination))
        return str(out[0]["dev"])

    def tx_bytes(self) -> dict[str, int]:
        """The pop's transmitted bytes per egress interface, from the kernel."""
        out = json.loads(_run("ip", "-j", "-s", "-n", self.ns("pop"), "link", "show"))
        return {i["ifname"]: int(i["stats64"]["tx"]["bytes"]) for i in out if "stats64" in i}

    def if_index(self) -> dict[str, int]:
        out = json.loads(_run("ip", "-j", "-n", self.ns("pop"), "link", "show"))
        return {i["ifname"]: int(i["ifindex"]) for i in out}

    def send(self, destination: str, mbit: float, seconds: float, port: int = 5201) -> subprocess.Popen[bytes]:
        """Start an iperf3 UDP stream from ``src`` to ``destination`` (a child of the caller)."""
        return subprocess.Popen(
            [
                "ip", "netns", "exec", self.ns("src"), "iperf3", "-c", destination, "-u", "-b", f"{mbit}M",
                "-t", f"{seconds:g}", "-p", str(port), "-l", "1200",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def status(self) -> dict[str, object]:
        st = self.state()
        alive = {}
        for name, pid in (st.pids if st else {}).items():
            try:
                os.kill(pid, 0)
                alive[name] = True
            except OSError:
                alive[name] = False
        routes: dict[str, str] = {}
        if st is not None and self.ns("pop") in self.namespaces():
            routes = {prefix: self._egress_or_none(host(prefix)) for prefix in PREFIXES}
        return {
            "up": st is not None,
            "dir": str(self.dir),
            "namespaces": self.namespaces(),
            "processes": alive,
            "bgp": self.established() if st else {},
            "egress": routes,
        }


def publish_lab_pop(kafka: KafkaSettings) -> None:
    """The lab's links and routes as the inventory and the routes topics carry them."""
    p = KafkaProducer(kafka)
    for link in PEERS:
        inv = LinkInventory(
            pop=LAB_POP,
            link_id=link.link_id,
            router=ROUTER,
            capacity_bps=link.capacity_mbit * 1e6,
            next_hops=(link.peer_addr,),
            peer_type=link.peer_type,
        )
        p.produce(
            kafka.topic(catalog.LINK_INVENTORY),
            inv.encode(),
            key=f"{LAB_POP}|{link.link_id}",
            headers=LinkInventory.headers(),
            partition_key=LAB_POP,
        )
        for prefix in link.prefixes:
            r = Route(pop=LAB_POP, link_id=link.link_id, prefix=prefix, next_hop=link.peer_addr)
            p.produce(
                kafka.topic(catalog.ROUTES), r.encode(), key=r.key(), headers=Route.headers(), partition_key=LAB_POP
            )
    p.flush(30)
    p.close()
