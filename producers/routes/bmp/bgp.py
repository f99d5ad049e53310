"""The BGP messages inside BMP (OPENs of a Peer Up, UPDATEs of Route Monitoring), parsed
with ExaBGP's message parser.

ExaBGP is already netpilot's BGP speaker (the injector), it is maintained, and its UPDATE
parser handles what a hand-written one would get wrong: 2- vs 4-byte AS paths and AS4_PATH
reconciliation, ADD-PATH, MP_REACH/MP_UNREACH, End-of-RIB markers and RFC 7606's
treat-as-withdraw. What it needs to read an UPDATE is what the session negotiated; BMP
gives exactly that, because a Peer Up carries both OPEN messages of the monitored session
(RFC 7854 4.10), so each peer gets its own :class:`PeerCodec` built from them.

Only IPv4 and IPv6 unicast become routes; NLRI of other families are counted and skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from exabgp.bgp.message.action import Action
from exabgp.bgp.message.direction import Direction
from exabgp.bgp.message.open import Open
from exabgp.bgp.message.open.capability.capability import Capability
from exabgp.bgp.message.open.capability.negotiated import Negotiated
from exabgp.bgp.message.update import Update
from exabgp.bgp.message.update.attribute.attribute import Attribute
from exabgp.bgp.message.update.eor import EOR
from exabgp.logger import log as _exabgp_log
from exabgp.protocol.family import AFI, SAFI

from producers.routes.bmp.framing import MessageError, bgp_pdu

# ExaBGP logs through its own logger, configured only inside an ExaBGP daemon; here each
# UPDATE would otherwise format debug lines nobody reads. Our own metrics and logs cover it.
_exabgp_log.disable()

OPEN, UPDATE = 1, 2
UNICAST = {(int(AFI.ipv4), int(SAFI.unicast)): 4, (int(AFI.ipv6), int(SAFI.unicast)): 6}
"""(afi, safi) -> IP version of the families that become routes."""
Origin = Literal["igp", "egp", "incomplete"]
_ORIGINS: dict[int, Origin] = {0: "igp", 1: "egp", 2: "incomplete"}
_CODE = Attribute.CODE


@dataclass(frozen=True, slots=True)
class PathAttrs:
    """The attributes a route record carries; shared by every prefix announced with them."""

    next_hop: str | None
    as_path: tuple[int, ...]
    origin: Origin
    local_pref: int
    med: int
    communities: tuple[str, ...]


@dataclass(slots=True)
class UpdateEvents:
    announced: list[tuple[str, int, PathAttrs]] = field(default_factory=list)
    """(prefix, ADD-PATH id or 0, attributes)"""
    withdrawn: list[tuple[str, int]] = field(default_factory=list)
    eor: int | None = None
    """IP version (4/6) of an End-of-RIB marker for a unicast family."""
    other_family: int = 0
    """NLRI (or an End-of-RIB) of families other than IPv4/IPv6 unicast: skipped."""
    treat_as_withdraw: bool = False
    """RFC 7606: an attribute was malformed, so the announced prefixes are withdrawn."""


class PeerCodec:
    """Decodes one monitored peer's UPDATEs with the capabilities its session negotiated."""

    def __init__(self, sent_open: bytes, received_open: bytes, strip_local_as: bool = True) -> None:
        try:
            sent = Open.unpack_message(bytes(bgp_pdu(sent_open, OPEN)[1]), Direction.OUT, None)
            received = Open.unpack_message(bytes(bgp_pdu(received_open, OPEN)[1]), Direction.IN, None)
        except MessageError as exc:
            raise MessageError("bad-open", exc.detail) from exc
        except Exception as exc:  # ExaBGP raises Notify, ValueError, IndexError, struct.error...
            raise MessageError("bad-open", f"{type(exc).__name__}: {exc}") from exc
        self.local_as = _asn(sent)
        self.peer_as = _asn(received)
        self._strip = self.local_as if strip_local_as and self.local_as != self.peer_as else None
        # two negotiations, as BMP's A flag says per message whether AS_PATH is 2 or 4 bytes
        self._neg = {as2: _negotiated(sent, received, not as2) for as2 in (False, True)}
        self.families = {UNICAST[(int(a), int(s))] for a, s in self._neg[False].families if (int(a), int(s)) in UNICAST}
        if not self._neg[False].families:  # no multiprotocol capability: IPv4 unicast only
            self.families = {4}
        self._attrs: dict[tuple[Any, ...], PathAttrs] = {}

    def update(self, bgp_message: memoryview | bytes, as2: bool = False) -> UpdateEvents:
        """One Route Monitoring's BGP UPDATE -> announced/withdrawn prefixes or an EoR."""
        _, body = bgp_pdu(bgp_message, UPDATE)
        try:
            msg = Update.unpack_message(bytes(body), Direction.IN, self._neg[as2])
        except Exception as exc:  # ExaBGP raises Notify, ValueError, IndexError, struct.error...
            raise MessageError("bad-update", f"{type(exc).__name__}: {exc}") from exc
        out = UpdateEvents()
        if isinstance(msg, EOR):
            for nlri in msg.nlris:
                version = UNICAST.get((int(nlri.afi), int(nlri.safi)))
                if version is None:
                    out.other_family += 1
                else:
                    out.eor = version
            return out
        attrs = msg.attributes
        origin = attrs.get(_CODE.ORIGIN)
        # RFC 7606 7.1: an undefined ORIGIN value is treat-as-withdraw (ExaBGP keeps it)
        out.treat_as_withdraw = _CODE.INTERNAL_TREAT_AS_WITHDRAW in attrs or (
            origin is not None and origin.origin not in _ORIGINS
        )
        shared: PathAttrs | None = None
        for nlri in msg.nlris:
            if (int(nlri.afi), int(nlri.safi)) not in UNICAST:
                out.other_family += 1
                continue
            prefix = nlri.cidr.prefix()
            path_id = int.from_bytes(getattr(nlri.path_info, "path_info", b"") or b"", "big")
            if nlri.action == Action.WITHDRAW or out.treat_as_withdraw:
                out.withdrawn.append((prefix, path_id))
                continue
            nh = nlri.nexthop
            next_hop = None if nh is None or not nh.top() else nh.top()
            pa = shared if shared is not None and shared.next_hop == next_hop else self._path_attrs(attrs, next_hop)
            shared = pa
            out.announced.append((prefix, path_id, pa))
        return out

    def _path_attrs(self, attrs: Any, next_hop: str | None) -> PathAttrs:
        as_path: list[int] = []
        aspath = attrs.get(_CODE.AS_PATH)
        if aspath is not None:
            # AS_SET members are appended as listed, as producers/routes/mrt.py does: order is
            # meaningless there, and the last element is then only an origin candidate
            for segment in aspath.aspath:
                as_path.extend(int(asn) for asn in segment)
        if self._strip is not None and len(as_path) > 1 and as_path[0] == self._strip:
            as_path.pop(0)  # the router's own AS, prepended by FRR's BMP (see docs/network-model.md)
        origin = attrs.get(_CODE.ORIGIN)
        lp = attrs.get(_CODE.LOCAL_PREF)
        med = attrs.get(_CODE.MED)
        comms = attrs.get(_CODE.COMMUNITY)
        key = (
            next_hop,
            tuple(as_path),
            _ORIGINS[origin.origin] if origin is not None else "incomplete",
            int(lp.localpref) if lp is not None else 100,
            int(med.med) if med is not None else 0,
            tuple(_community(c.community) for c in comms.communities) if comms is not None else (),
        )
        pa = self._attrs.get(key)
        if pa is None:
            if len(self._attrs) > 100_000:  # a bounded intern table; it only saves memory
                self._attrs.clear()
            pa = self._attrs[key] = PathAttrs(*key)
        return pa


def _community(raw: bytes) -> str:
    """``ASN:value`` in numbers, as producers/routes/mrt.py writes them (well-known ones too)."""
    return f"{int.from_bytes(raw[:2], 'big')}:{int.from_bytes(raw[2:4], 'big')}"


def _asn(open_msg: Any) -> int:
    """The speaker's AS: the 4-byte capability when present (the OPEN's field says 23456)."""
    return int(open_msg.capabilities.get(Capability.CODE.FOUR_BYTES_ASN, open_msg.asn))


def _negotiated(sent: Any, received: Any, asn4: bool) -> Negotiated:
    neg = Negotiated({"capability": {"aigp": True}})  # accept AIGP; it is not used anyway
    neg.sent(sent)
    neg.received(received)
    neg.asn4 = asn4
    return neg
