"""The BMP collector's state: every monitored peer's Adj-RIB-In, and what the routes topic holds.

Pure: no sockets, no Kafka, no clock (``now`` is passed in), so the tests drive it directly.

**One rule** turns state into records. For a (link, prefix) whose state changed: the route
it should have is the first route (peers in address order) that a peer mapped to the link
holds for the prefix. If that differs from what was published, publish it; if there is none
and something was published, publish a tombstone -- but only once every router whose BMP
session covers the link is *live*. Until then the tombstone is deferred.

**Why the deferral.** A router's BMP session starts *syncing*: the router sends its whole
RIB again (after a collector restart, a reconnect, or the first connect). What the topic
held before is kept until the router has sent it all -- End-of-RIB from every peer for every
family, or ``settle_s`` without route messages, or ``sync_max_s`` at most. Then the session
is *live* and every key of its links is checked once against the topic: routes that really
went away get their tombstones, everything unchanged produces nothing. So a restart costs no
false withdrawals and no re-publishing. A session that drops is *down*: its routes are held
as they were for ``hold_s`` (the router is expected back and will resend them); when that
expires, its links' routes are withdrawn, since nothing vouches for them any more.

The topic's state at start comes from the compacted topic (:meth:`RibState.load_published`);
values are compared by hash, so a million routes cost ints, not their JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from netpilot.wire.routes import Route
from producers.routes.bmp.bgp import PathAttrs
from producers.routes.mrt import LinkRef

SessionState = Literal["syncing", "live", "down"]


@dataclass(frozen=True, slots=True)
class Change:
    link: LinkRef
    prefix: str
    value: bytes | None
    """The route/1 record, or None for a tombstone."""

    @property
    def key(self) -> str:
        return f"{self.link.pop}|{self.link.link_id}|{self.prefix}"


_HEAD = b'{"schema":"' + Route.schema_id().encode() + b'",'


def encode_route(link: LinkRef, prefix: str, attrs: PathAttrs, peer: str) -> bytes:
    """The route/1 record, byte for byte what ``Route(...).encode()`` gives (a test checks
    it), at a third of the cost: every field comes from an UPDATE the decoder already
    checked (so no validation), and pydantic's own JSON serialiser does the rest. The
    inventory keeps names ASCII, so its UTF-8 output equals json.dumps' escaped one."""
    route = Route.model_construct(
        pop=link.pop,
        link_id=link.link_id,
        prefix=prefix,
        next_hop=attrs.next_hop or peer,
        as_path=attrs.as_path,
        origin=attrs.origin,
        local_pref=attrs.local_pref,
        med=attrs.med,
        communities=attrs.communities,
    )
    return _HEAD + route.model_dump_json().encode()[1:]


class PeerRib:
    """One monitored peer's Adj-RIB-In (of the configured policy), mapped to one link."""

    __slots__ = ("address", "link", "routes", "_paths")

    def __init__(self, address: str, link: LinkRef) -> None:
        self.address = address
        self.link = link
        self.routes: dict[str, PathAttrs] = {}
        self._paths: dict[str, dict[int, PathAttrs]] | None = None
        """ADD-PATH only: every path per prefix; ``routes`` holds the lowest path id's."""

    def announce(self, prefix: str, path_id: int, attrs: PathAttrs) -> bool:
        if path_id:
            paths = (self._paths if self._paths is not None else self._new_paths()).setdefault(prefix, {})
            paths[path_id] = attrs
            attrs = paths[min(paths)]
        if self.routes.get(prefix) is attrs:
            return False
        self.routes[prefix] = attrs
        return True

    def withdraw(self, prefix: str, path_id: int) -> bool:
        if path_id and self._paths is not None and prefix in self._paths:
            paths = self._paths[prefix]
            paths.pop(path_id, None)
            if paths:
                best = paths[min(paths)]
                changed = self.routes.get(prefix) is not best
                self.routes[prefix] = best
                return changed
            del self._paths[prefix]
        return self.routes.pop(prefix, None) is not None

    def _new_paths(self) -> dict[str, dict[int, PathAttrs]]:
        self._paths = {}
        return self._paths


@dataclass
class RouterSession:
    """One router's BMP session as the state sees it (kept while ``down``, within hold_s)."""

    key: str
    """The inventory router's name, or the session's source address when it has none."""
    router: str | None
    state: SessionState
    started: float
    last_routes: float
    scope: set[LinkRef]
    """Links this session is authoritative for: its router's, its peers', and the previous
    session's (so a link that left the router still gets its tombstones)."""
    peers: dict[str, PeerRib] = field(default_factory=dict)
    pending_eor: set[tuple[str, int]] = field(default_factory=set)
    eor_seen: bool = False
    down_since: float | None = None


@dataclass(frozen=True)
class SyncEvent:
    key: str
    state: SessionState
    how: str
    """eor, quiet, timeout, hold-expired"""
    seconds: float


class RibState:
    def __init__(
        self,
        settle_s: float = 10.0,
        sync_max_s: float = 600.0,
        hold_s: float = 900.0,
        encode: Callable[[LinkRef, str, PathAttrs, str], bytes] = encode_route,
    ) -> None:
        self.settle_s, self.sync_max_s, self.hold_s = settle_s, sync_max_s, hold_s
        self._encode = encode
        self.published: dict[LinkRef, dict[str, int]] = {}
        """link -> prefix -> hash of the record the topic holds"""
        self.sessions: dict[str, RouterSession] = {}
        self._contributors: dict[LinkRef, list[PeerRib]] = {}
        self._scope_of: dict[LinkRef, set[str]] = {}
        self._dirty: set[tuple[LinkRef, str]] = set()
        self._expired: list[Change] = []
        self.deferred = 0
        """tombstones waiting for a session to be live (the last changes() call)"""

    # -- the topic's state ------------------------------------------------------------------
    def load_published(self, records: Iterable[tuple[str, bytes | None]]) -> int:
        """The compacted topic's latest record per key (tombstones skipped); returns how many."""
        n = 0
        for key, value in records:
            pop, _, rest = key.partition("|")
            link_id, _, prefix = rest.partition("|")
            if value is None or not prefix:
                continue
            self.published.setdefault(LinkRef(pop, link_id), {})[prefix] = hash(value)
            n += 1
        return n

    # -- session events ---------------------------------------------------------------------
    def open_session(self, key: str, router: str | None, router_links: Iterable[LinkRef], now: float) -> RouterSession:
        """A BMP session (re)starts: it replaces what a previous session of the router held."""
        old = self.sessions.pop(key, None)
        scope = set(router_links)
        if old is not None:
            scope |= old.scope
            self._drop_peers(old, mark=False)  # the new session resends; the sync end decides
        s = self.sessions[key] = RouterSession(key, router, "syncing", now, now, scope)
        self._index_scope()
        return s

    def close_session(self, key: str, now: float) -> None:
        s = self.sessions.get(key)
        if s is not None and s.state != "down":
            s.state, s.down_since = "down", now

    def peer_up(self, key: str, address: str, link: LinkRef, families: Iterable[int], now: float) -> None:
        s = self.sessions[key]
        old = s.peers.pop(address, None)
        if old is not None:  # a Peer Up without a Peer Down: the old session's routes are gone
            self._remove_peer(old)
        peer = PeerRib(address, link)
        s.peers[address] = peer
        self._contributors.setdefault(link, []).append(peer)
        self._contributors[link].sort(key=lambda p: p.address)
        if link not in s.scope:
            s.scope.add(link)
            self._index_scope()
        if s.state == "syncing":
            s.pending_eor |= {(address, f) for f in families}
        s.last_routes = now

    def peer_down(self, key: str, address: str, now: float) -> bool:
        s = self.sessions[key]
        peer = s.peers.pop(address, None)
        s.pending_eor = {p for p in s.pending_eor if p[0] != address}
        s.last_routes = now
        if peer is None:
            return False
        self._remove_peer(peer)
        return True

    def has_peer(self, key: str, address: str) -> bool:
        s = self.sessions.get(key)
        return s is not None and address in s.peers

    def update(
        self,
        key: str,
        address: str,
        announced: Iterable[tuple[str, int, PathAttrs]],
        withdrawn: Iterable[tuple[str, int]],
        now: float,
    ) -> None:
        s = self.sessions[key]
        peer = s.peers[address]
        link, dirty = peer.link, self._dirty
        for prefix, path_id in withdrawn:
            if peer.withdraw(prefix, path_id):
                dirty.add((link, prefix))
        for prefix, path_id, attrs in announced:
            if peer.announce(prefix, path_id, attrs):
                dirty.add((link, prefix))
        s.last_routes = now

    def end_of_rib(self, key: str, address: str, family: int, now: float) -> None:
        s = self.sessions[key]
        s.pending_eor.discard((address, family))
        s.eor_seen = True
        s.last_routes = now

    # -- time -------------------------------------------------------------------------------
    def tick(self, now: float) -> list[SyncEvent]:
        """End syncs that are complete (or quiet, or too long) and holds that expired."""
        events = []
        for s in list(self.sessions.values()):
            if s.state == "syncing":
                how = None
                if not s.pending_eor and s.eor_seen:
                    how = "eor"
                elif now - s.last_routes >= self.settle_s:
                    how = "quiet"
                elif now - s.started >= self.sync_max_s:
                    how = "timeout"
                if how is not None:
                    s.state = "live"
                    s.pending_eor.clear()
                    self._mark_scope(s.scope)
                    events.append(SyncEvent(s.key, "live", how, now - s.started))
            elif s.state == "down" and self.hold_s > 0 and s.down_since is not None:
                if now - s.down_since >= self.hold_s:
                    self._expire(s)
                    events.append(SyncEvent(s.key, "down", "hold-expired", now - s.down_since))
        return events

    # -- records ----------------------------------------------------------------------------
    def changes(self) -> list[Change]:
        """Apply the rule to every (link, prefix) touched since the last call."""
        out, self._expired = self._expired, []
        deferred = 0
        published, encode = self.published, self._encode
        for link, prefix in self._dirty:
            pub = published.get(link)
            old = pub.get(prefix) if pub is not None else None
            value = None
            for peer in self._contributors.get(link, ()):
                attrs = peer.routes.get(prefix)
                if attrs is not None:
                    value = encode(link, prefix, attrs, peer.address)
                    break
            if value is not None:
                h = hash(value)
                if old != h:
                    (pub if pub is not None else published.setdefault(link, {}))[prefix] = h
                    out.append(Change(link, prefix, value))
            elif pub is not None and old is not None:
                if self._authoritative(link):
                    del pub[prefix]
                    out.append(Change(link, prefix, None))
                else:
                    deferred += 1
        self._dirty.clear()
        self.deferred = deferred
        return out

    def routes(self) -> int:
        return sum(len(p.routes) for s in self.sessions.values() for p in s.peers.values())

    # -- internals --------------------------------------------------------------------------
    def _authoritative(self, link: LinkRef) -> bool:
        keys = self._scope_of.get(link)
        return bool(keys) and all(self.sessions[k].state == "live" for k in keys)  # type: ignore[union-attr]

    def _remove_peer(self, peer: PeerRib) -> None:
        contributors = self._contributors.get(peer.link)
        if contributors is not None and peer in contributors:
            contributors.remove(peer)
        self._dirty.update((peer.link, p) for p in peer.routes)

    def _drop_peers(self, s: RouterSession, mark: bool) -> None:
        for peer in s.peers.values():
            contributors = self._contributors.get(peer.link)
            if contributors is not None and peer in contributors:
                contributors.remove(peer)
            if mark:
                self._dirty.update((peer.link, p) for p in peer.routes)
        s.peers.clear()

    def _mark_scope(self, links: Iterable[LinkRef]) -> None:
        """Dirty what a sync end may change: published prefixes no peer holds any more (the
        deferred tombstones) and held prefixes not published. A route both held and published
        went through the rule when it last changed."""
        for link in links:
            contributors = self._contributors.get(link, ())
            published = self.published.get(link, {})
            self._dirty.update((link, p) for p in published if not any(p in peer.routes for peer in contributors))
            for peer in contributors:
                self._dirty.update((link, p) for p in peer.routes if p not in published)

    def _expire(self, s: RouterSession) -> None:
        """A session down for hold_s: nothing vouches for its links' routes any more."""
        del self.sessions[s.key]
        self._drop_peers(s, mark=False)
        self._index_scope()
        for link in s.scope:
            if self._scope_of.get(link):
                self._mark_scope([link])  # another session covers the link too: the rule decides
                continue
            for prefix in self.published.pop(link, {}):
                self._expired.append(Change(link, prefix, None))

    def _index_scope(self) -> None:
        scope_of: dict[LinkRef, set[str]] = {}
        for key, s in self.sessions.items():
            for link in s.scope:
                scope_of.setdefault(link, set()).add(key)
        self._scope_of = scope_of
