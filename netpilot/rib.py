"""Reading what a router really installed: BIRD 2 through ``birdc``, FRR through ``vtysh``.

The BGP injector confirms its overrides from here, not from what it believes it announced,
and the demo's simulated routers steer traffic by it. Both CLIs are the routers' own
control interfaces; the parsers only keep what the loop needs (prefix, next hop, LOCAL_PREF,
communities, and whether the route is the one the router selected).
"""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from netpilot.errors import NetpilotError

RibKind = Literal["bird", "frr"]


class RibReadError(NetpilotError):
    """The router's control interface did not answer (retriable: the router may restart)."""


@dataclass(frozen=True)
class RibRoute:
    prefix: str
    next_hop: str | None
    local_pref: int | None
    communities: tuple[str, ...]
    best: bool


class RibReader(Protocol):
    def routes(self, community: str) -> list[RibRoute]:
        """Every route carrying ``community`` (``ASN:value``), best or not."""
        ...


def _run(cmd: list[str], timeout: float) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RibReadError(f"{cmd[0]}: {exc}") from exc
    if out.returncode != 0:
        raise RibReadError(f"{' '.join(cmd[:3])}: exit {out.returncode}: {(out.stderr or out.stdout).strip()[:300]}")
    return out.stdout


_BIRD_ROUTE = re.compile(r"^(?P<prefix>\S+)?\s+\S+\s+\[(?P<proto>\S+)\s[^\]]*\](?P<best>\s\*)?")
_BIRD_COMMUNITY = re.compile(r"\((\d+),(\d+)\)")
_WELL_KNOWN = {"65535:65281": "no-export", "65535:65282": "no-advertise"}


def parse_bird(text: str) -> list[RibRoute]:
    """``birdc show route all`` output -> routes (one per path, ``best`` from BIRD's ``*``)."""
    out: list[RibRoute] = []
    cur: dict[str, object] | None = None
    prefix: str | None = None

    def flush() -> None:
        if cur is not None and prefix is not None:
            out.append(
                RibRoute(
                    prefix=prefix,
                    next_hop=cur.get("nh"),  # type: ignore[arg-type]
                    local_pref=cur.get("lp"),  # type: ignore[arg-type]
                    communities=tuple(cur.get("comm", ())),  # type: ignore[arg-type]
                    best=bool(cur.get("best")),
                )
            )

    for line in text.splitlines():
        if not line.strip() or line.startswith(("BIRD ", "Table ")):
            continue
        if line.startswith("\t"):  # an attribute of the route above
            if cur is None:
                continue
            key, _, value = line.strip().partition(":")
            value = value.strip()
            if key == "BGP.next_hop":
                cur["nh"] = value.split()[0]
            elif key == "BGP.local_pref":
                cur["lp"] = int(value)
            elif key == "BGP.community":
                cur["comm"] = [_WELL_KNOWN.get(f"{a}:{b}", f"{a}:{b}") for a, b in _BIRD_COMMUNITY.findall(value)]
            continue
        m = _BIRD_ROUTE.match(line)
        if m is None:
            continue
        flush()
        if m.group("prefix"):
            prefix = m.group("prefix")
        cur = {"best": m.group("best") is not None}
    flush()
    return out


class BirdRib:
    def __init__(self, socket: Path, timeout: float = 5.0) -> None:
        self.socket = socket
        self.timeout = timeout

    def routes(self, community: str) -> list[RibRoute]:
        a, _, b = community.partition(":")
        # The filter runs in BIRD: only our routes cross the control socket.
        text = _run(["birdc", "-s", str(self.socket), f"show route all where ({a},{b}) ~ bgp_community"], self.timeout)
        return parse_bird(text)


def parse_frr(doc: dict[str, Any], community: str) -> list[RibRoute]:
    """``vtysh -c 'show bgp <afi> unicast community X json'`` -> routes."""
    out: list[RibRoute] = []
    for prefix, paths in (doc.get("routes") or {}).items():
        for p in paths:
            hops = [h.get("ip") for h in p.get("nexthops", []) if h.get("ip")]
            out.append(
                RibRoute(
                    prefix=prefix,
                    next_hop=hops[0] if hops else None,
                    local_pref=p.get("locPrf"),
                    communities=(community,),
                    best=bool(p.get("bestpath")) and bool(p.get("valid", True)),
                )
            )
    return out


class FrrRib:
    def __init__(self, vty_socket: Path, timeout: float = 5.0) -> None:
        self.vty_socket = vty_socket
        self.timeout = timeout

    def routes(self, community: str) -> list[RibRoute]:
        out: list[RibRoute] = []
        for afi in ("ipv4", "ipv6"):
            text = _run(
                [
                    "vtysh",
                    "--vty_socket",
                    str(self.vty_socket),
                    "-c",
                    f"show bgp {afi} unicast community {community} json",
                ],
                self.timeout,
            )
            try:
                doc = json.loads(text) if text.strip() else {}
            except ValueError as exc:
                raise RibReadError(f"vtysh: not JSON: {text[:200]!r}") from exc
            out.extend(parse_frr(doc, community))
        return out


def rib_reader(kind: RibKind, socket: Path) -> RibReader:
    return BirdRib(socket) if kind == "bird" else FrrRib(socket)


def normal_prefix(prefix: str) -> str:
    """Canonical CIDR text, so ``2001:db8:0::/48`` from one side meets ``2001:db8::/48``."""
    return str(ipaddress.ip_network(prefix, strict=False))
