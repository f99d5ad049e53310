"""Prefixes as plain integers: one 128-bit space for both families.

IPv4 lives at ``::ffff:0:0/96`` (IPv4-mapped, the layout netpilot/wire uses for addresses),
so a v4 /24 is ``(net, 120)`` here. Integers make containment, halving and longest-prefix
match a few shifts and dict lookups, with no ``ipaddress`` object per prefix on the
planner's path; text is parsed when a snapshot is built and formatted only for output.
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from streams.autopilot.errors import ScenarioError

V4_BASE = 0xFFFF << 32
"""``::ffff:0.0.0.0``: where IPv4 addresses start in the mapped space."""
V4_OFFSET = 96
"""Mapped length of an IPv4 /0."""
ALL_ONES = (1 << 128) - 1

Prefix = tuple[int, int]
"""(network, mapped length): the planner's key for a prefix."""


def parse(text: str) -> Prefix:
    """``"198.51.100.0/24"`` -> ``(mapped network, 120)``; host bits must be zero."""
    fast = _parse_v4(text)
    if fast is not None:
        return fast
    try:
        net = ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as exc:
        raise ScenarioError(
            f"bad prefix {text!r}: {exc} (write it as network/length, e.g. 198.51.100.0/24 or 2001:db8::/32)"
        ) from exc
    if net.version == 4:
        return V4_BASE | int(net.network_address), V4_OFFSET + net.prefixlen
    return int(net.network_address), net.prefixlen


def _parse_v4(text: str) -> Prefix | None:
    # Snapshots carry ~1e5 prefixes; ipaddress costs ~5 us each, this ~1 us. Anything
    # unusual (spaces, leading zeros, IPv6) falls back to ipaddress and its error messages.
    addr, slash, length = text.partition("/")
    parts = addr.split(".")
    if not slash or len(parts) != 4 or not length.isdigit():
        return None
    if not all(p.isdigit() and (p == "0" or p[0] != "0") and len(p) <= 3 for p in parts):
        return None
    octets = [int(p) for p in parts]
    mlen = int(length)
    if max(octets) > 255 or mlen > 32:
        return None
    net = (octets[0] << 24) | (octets[1] << 16) | (octets[2] << 8) | octets[3]
    if net & ((1 << (32 - mlen)) - 1):
        return None  # host bits set: let ipaddress produce the error
    return V4_BASE | net, V4_OFFSET + mlen


def is_v4(prefix: Prefix) -> bool:
    net, mlen = prefix
    return mlen >= V4_OFFSET and (net >> 32) == 0xFFFF


def afi(prefix: Prefix) -> Literal[4, 6]:
    return 4 if is_v4(prefix) else 6


def family_len(prefix: Prefix) -> int:
    """Length as an operator writes it (24 for a v4 /24)."""
    return prefix[1] - V4_OFFSET if is_v4(prefix) else prefix[1]


def to_text(prefix: Prefix) -> str:
    net, mlen = prefix
    if is_v4(prefix):
        return f"{ipaddress.IPv4Address(net & 0xFFFFFFFF)}/{mlen - V4_OFFSET}"
    return f"{ipaddress.IPv6Address(net)}/{mlen}"


_MASKS = tuple(ALL_ONES ^ ((1 << (128 - n)) - 1) for n in range(129))


def mask(mlen: int) -> int:
    return _MASKS[mlen]


def supernet(prefix: Prefix, mlen: int) -> Prefix:
    """The covering prefix of length ``mlen`` (``mlen`` <= the prefix's length)."""
    return prefix[0] & mask(mlen), mlen


def contains(outer: Prefix, inner: Prefix) -> bool:
    return outer[1] <= inner[1] and (inner[0] & mask(outer[1])) == outer[0]


def halves(prefix: Prefix) -> tuple[Prefix, Prefix]:
    net, mlen = prefix
    return (net, mlen + 1), (net | (1 << (127 - mlen)), mlen + 1)


def in_upper_half(parent: Prefix, inner: Prefix) -> bool:
    """Whether ``inner`` (inside ``parent``, and longer) is in the upper half of it."""
    return bool((inner[0] >> (127 - parent[1])) & 1)


def min_family_len(prefix: Prefix) -> int:
    """Length of the family's /0 in the mapped space (96 for v4, 0 for v6)."""
    return V4_OFFSET if is_v4(prefix) else 0
