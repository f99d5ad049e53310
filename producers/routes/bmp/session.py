"""One router's BMP session: framed messages in, events on the shared :class:`RibState` out.

No sockets here (the server feeds bytes in), so the tests replay captured streams through
the same code. Everything that is dropped is counted by reason; per-message problems skip
that message, and only a broken stream (:class:`FramingError`) ends the session.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from netpilot.obs.logging import RateLimitedLog, get_logger
from producers.routes.bmp import framing as f
from producers.routes.bmp.bgp import PeerCodec
from producers.routes.bmp.linkmap import LinkMap
from producers.routes.bmp.rib import RibState, RouterSession
from producers.routes.mrt import LinkRef

log = get_logger("netpilot.bmp")

Policy = Literal["pre", "post"]
ACCEPTED_PEER_TYPES = (0, 2)
"""Global and local-instance peers; RD-instance (VRF) and Loc-RIB peers are not links."""


@dataclass
class Tally:
    """What one batch of messages did; the service adds it to the Prometheus counters."""

    messages: Counter[str] = field(default_factory=Counter)
    malformed: Counter[str] = field(default_factory=Counter)
    ignored: Counter[str] = field(default_factory=Counter)
    announced: int = 0
    withdrawn: int = 0
    peer_downs: Counter[str] = field(default_factory=Counter)


@dataclass
class _Peer:
    codec: PeerCodec
    link: LinkRef | None


class BmpSession:
    def __init__(
        self,
        source: str,
        state: RibState,
        linkmap: LinkMap,
        policy: Policy = "pre",
        strip_local_as: bool = True,
        max_message: int = 1 << 20,
        rate_limited: RateLimitedLog | None = None,
    ) -> None:
        self.source = source
        self.state = state
        self.linkmap = linkmap
        self.post_policy = policy == "post"
        self.strip_local_as = strip_local_as
        self.stream = f.BmpStream(max_message)
        self.key: str | None = None
        self.router: str | None = None
        self.sys_name: str | None = None
        self.sys_descr: str | None = None
        self.tally = Tally()
        self._peers: dict[str, _Peer] = {}
        self._rs: RouterSession | None = None
        self._rl = rate_limited or RateLimitedLog(log)

    # -- input ------------------------------------------------------------------------------
    def feed(self, data: bytes, now: float) -> None:
        """Process what the socket returned; raises FramingError when the stream is broken."""
        for msg in self.stream.feed(data):
            if isinstance(msg, f.FramingError):
                raise msg  # after the good messages before it
            if isinstance(msg, f.MessageError):
                self._malformed(msg)
                continue
            try:
                self._handle(msg, now)
            except f.MessageError as exc:
                self._malformed(exc)

    def close(self, now: float) -> None:
        """The connection ended: the router's routes are held (see RibState)."""
        if self.owns_state():
            self.state.close_session(self._key(), now)

    def owns_state(self) -> bool:
        """False once a newer session of the same router took over."""
        return self._rs is not None and self.state.sessions.get(self._rs.key) is self._rs

    def take_tally(self) -> Tally:
        t, self.tally = self.tally, Tally()
        return t

    @property
    def peers_up(self) -> int:
        return len(self._peers)

    @property
    def peer_addresses(self) -> list[str]:
        return list(self._peers)

    # -- messages ---------------------------------------------------------------------------
    def _handle(self, msg: f.BmpMessage, now: float) -> None:
        name = f.TYPE_NAMES.get(msg.type)
        if name is None:
            raise f.MessageError("unknown-type", f"BMP message type {msg.type}")
        self.tally.messages[name] += 1
        if msg.type == f.INITIATION:
            tlvs = f.parse_tlvs(msg.body)
            self.sys_name, self.sys_descr = tlvs.get(f.TLV_SYS_NAME), tlvs.get(f.TLV_SYS_DESCR)
            self._open(now)
            return
        self._open(now)  # RFC 7854 says Initiation comes first; be lenient if it did not
        if msg.type == f.TERMINATION:
            log.info("router ends the BMP session", router=self.key, info=f.parse_tlvs(msg.body))
            return
        if msg.type in (f.STATISTICS, f.ROUTE_MIRRORING):
            return
        peer = msg.peer
        assert peer is not None  # peer messages always have one (framing)
        if peer.peer_type not in ACCEPTED_PEER_TYPES:
            self.tally.ignored["peer-type"] += 1
            return
        if msg.type == f.PEER_UP:
            self._peer_up(peer, msg.body, now)
        elif msg.type == f.PEER_DOWN:
            self.tally.peer_downs[f.parse_peer_down(msg.body)] += 1
            self._peers.pop(peer.address, None)
            if self.state.has_peer(self._key(), peer.address):
                self.state.peer_down(self._key(), peer.address, now)
        else:
            self._route_monitoring(peer, msg.body, now)

    def _peer_up(self, peer: f.PeerHeader, body: memoryview, now: float) -> None:
        up = f.parse_peer_up(body)
        codec = PeerCodec(up.sent_open, up.received_open, self.strip_local_as)
        link = self.linkmap.link(self.router, peer.address)
        self._peers[peer.address] = _Peer(codec, link)
        if link is None:
            self.tally.ignored["unmapped-peer"] += 1
            self._rl.warning(
                f"unmapped-{self.key}-{peer.address}",
                "BMP peer maps to no inventory link (no link has it in next_hops); its routes are skipped",
                router=self.key,
                peer=peer.address,
                peer_as=peer.asn,
            )
            if self.state.has_peer(self._key(), peer.address):  # the inventory no longer maps it
                self.state.peer_down(self._key(), peer.address, now)
            return
        self.state.peer_up(self._key(), peer.address, link, codec.families, now)
        log.info(
            "peer up", router=self.key, peer=peer.address, peer_as=codec.peer_as, link=f"{link.pop}/{link.link_id}"
        )

    def _route_monitoring(self, peer: f.PeerHeader, body: memoryview, now: float) -> None:
        if peer.adj_rib_out:
            self.tally.ignored["adj-rib-out"] += 1
            return
        if peer.post_policy != self.post_policy:
            self.tally.ignored["other-policy"] += 1
            return
        known = self._peers.get(peer.address)
        if known is None:
            raise f.MessageError("no-peer-up", f"route monitoring for {peer.address} before its Peer Up")
        if known.link is None:
            self.tally.ignored["unmapped-peer"] += 1
            return
        ev = known.codec.update(body, peer.as2)
        if ev.other_family:
            self.tally.ignored["family"] += ev.other_family
        if ev.treat_as_withdraw:
            self.tally.malformed["treat-as-withdraw"] += 1
        if ev.eor is not None:
            self.state.end_of_rib(self._key(), peer.address, ev.eor, now)
        if ev.announced or ev.withdrawn:
            self.state.update(self._key(), peer.address, ev.announced, ev.withdrawn, now)
            self.tally.announced += len(ev.announced)
            self.tally.withdrawn += len(ev.withdrawn)

    # -- helpers ----------------------------------------------------------------------------
    def _open(self, now: float) -> None:
        if self.key is not None:
            return
        self.router = self.linkmap.identify(self.source, self.sys_name)
        self.key = self.router or self.source
        self._rs = self.state.open_session(self.key, self.router, self.linkmap.links_of(self.router), now)
        log.info(
            "BMP session",
            router=self.key,
            source=self.source,
            sys_name=self.sys_name,
            sys_descr=self.sys_descr,
            identified=self.router is not None,
        )

    def _key(self) -> str:
        if not self.owns_state():
            raise f.FramingError("replaced", f"a newer BMP session of {self.key} took over")
        assert self.key is not None
        return self.key

    def _malformed(self, exc: f.MessageError) -> None:
        self.tally.malformed[exc.reason] += 1
        self._rl.warning(
            f"malformed-{exc.reason}", "malformed BMP message skipped", router=self.key or self.source, error=str(exc)
        )
