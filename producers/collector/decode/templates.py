"""Template state: a bounded template cache and a bounded buffer for early data.

Keys are ``(exporter, source_port, version, domain, template_id)``. RFC 7011 §8 scopes a
template to its Transport Session (for UDP: the exporter's address and source port) and
observation domain, and RFC 3954 to the source id of an exporter; so two export processes
behind one address (line cards, cluster members, an exporter restarted on a new port) keep
apart templates that share an id. With ``template_scope="exporter"`` the decoder puts 0
in the port, which scopes templates by address alone, for exporters that change their
source port while keeping their templates. Both structures are bounded in entries and
bytes, so a flood of template ids or of data without templates costs a fixed amount of
memory and shows up as counted evictions instead.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from producers.collector.decode.compiler import CompiledTemplate

TemplateKey = tuple[bytes, int, int, int, int]  # exporter, source port, version, domain, template id
DomainKey = tuple[bytes, int, int, int]  # exporter, source port, version, domain: one session's domain


def cap_key(key: TemplateKey) -> tuple[bytes, int, int]:
    """What the per-domain cap counts by: the address, not the port, so an exporter that
    hops source ports cannot escape the cap and evict other exporters' templates."""
    return key[0], key[2], key[3]


class TemplateStore(Protocol):
    """What the v9/IPFIX decoders need from template storage (goflow2's TemplateSystem)."""

    def get(self, key: TemplateKey) -> CompiledTemplate | None: ...

    def put(self, key: TemplateKey, tpl: CompiledTemplate) -> tuple[bool, int]:
        """Store; returns (changed, evicted count). ``changed`` is False for a refresh."""
        ...

    def withdraw(self, key: TemplateKey) -> bool: ...

    def withdraw_domain(self, domain: DomainKey, kind: str | None) -> list[TemplateKey]: ...

    def __len__(self) -> int: ...


class BoundedTemplateStore:
    """LRU template cache with a global and a per-(exporter, domain) cap."""

    def __init__(self, max_templates: int = 8192, max_per_domain: int = 1024) -> None:
        self.max_templates = max_templates
        self.max_per_domain = max_per_domain
        self._items: OrderedDict[TemplateKey, CompiledTemplate] = OrderedDict()
        self._per_domain: dict[tuple[bytes, int, int], int] = {}  # cap_key -> templates

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[tuple[TemplateKey, CompiledTemplate]]:
        return iter(list(self._items.items()))

    def get(self, key: TemplateKey) -> CompiledTemplate | None:
        tpl = self._items.get(key)
        if tpl is not None:
            self._items.move_to_end(key)
        return tpl

    def put(self, key: TemplateKey, tpl: CompiledTemplate) -> tuple[bool, int]:
        old = self._items.get(key)
        if old is not None:
            self._items[key] = tpl
            self._items.move_to_end(key)
            return old.definition != tpl.definition or old.kind != tpl.kind, 0
        evicted = 0
        dom = cap_key(key)
        if self._per_domain.get(dom, 0) >= self.max_per_domain:
            # evict this domain's least recently used template (an old session's first), not
            # another exporter's
            victim = next(k for k in self._items if cap_key(k) == dom)
            self._remove(victim)
            evicted += 1
        while len(self._items) >= self.max_templates:
            self._remove(next(iter(self._items)))
            evicted += 1
        self._items[key] = tpl
        self._per_domain[dom] = self._per_domain.get(dom, 0) + 1
        return True, evicted

    def _remove(self, key: TemplateKey) -> None:
        del self._items[key]
        dom = cap_key(key)
        left = self._per_domain[dom] - 1
        if left:
            self._per_domain[dom] = left
        else:
            del self._per_domain[dom]

    def withdraw(self, key: TemplateKey) -> bool:
        if key in self._items:
            self._remove(key)
            return True
        return False

    def withdraw_domain(self, domain: DomainKey, kind: str | None) -> list[TemplateKey]:
        keys = [k for k, t in self._items.items() if k[:4] == domain and (kind is None or t.kind == kind)]
        for k in keys:
            self._remove(k)
        return keys


@dataclass
class HeldSet:
    """A data set that arrived before its template, with what decoding it needs later."""

    body: bytes
    export_ms: int
    uptime_ms: int
    received_ms: int
    datagram: int = 0
    """The decoder-wide index of the datagram it came in (``netpilot decode`` maps it to a frame)."""
    sequence: int = 0
    offset: int = 0
    """Where the set's body starts in its datagram (capture order for ``netpilot decode``)."""


class PendingData:
    """Data sets waiting for their template: bounded by sets, bytes and age."""

    def __init__(self, max_sets: int = 1024, max_bytes: int = 4 << 20, max_age_ms: int = 10_000) -> None:
        self.max_sets = max_sets
        self.max_bytes = max_bytes
        self.max_age_ms = max_age_ms
        self._items: OrderedDict[tuple[TemplateKey, int], HeldSet] = OrderedDict()
        self._seq = 0
        self._per_key: dict[TemplateKey, int] = {}  # so release() is O(1) when nothing waits
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def hold(self, key: TemplateKey, held: HeldSet) -> int:
        """Hold one set; returns how many older sets were pushed out to make room."""
        if len(held.body) > self.max_bytes:
            return 1
        pushed = 0
        while self._items and (len(self._items) >= self.max_sets or self.bytes + len(held.body) > self.max_bytes):
            (old_key, _), old = self._items.popitem(last=False)
            self._forget(old_key, old)
            pushed += 1
        self._seq += 1
        self._items[(key, self._seq)] = held
        self._per_key[key] = self._per_key.get(key, 0) + 1
        self.bytes += len(held.body)
        return pushed

    def _forget(self, key: TemplateKey, held: HeldSet) -> None:
        self.bytes -= len(held.body)
        left = self._per_key.get(key, 1) - 1
        if left:
            self._per_key[key] = left
        else:
            self._per_key.pop(key, None)

    def release(self, key: TemplateKey) -> list[HeldSet]:
        """Take every held set for ``key`` (its template just arrived)."""
        if key not in self._per_key:
            return []
        keys = [k for k in self._items if k[0] == key]
        out = []
        for k in keys:
            held = self._items.pop(k)
            self._forget(key, held)
            out.append(held)
        return out

    def expire(self, now_ms: int | None) -> list[tuple[TemplateKey, HeldSet]]:
        """Drop sets held longer than ``max_age_ms`` (all of them for ``None``: end of a
        capture); returns them, so the caller can count and explain each."""
        gone = []
        while self._items:
            k, held = next(iter(self._items.items()))
            if now_ms is not None and now_ms - held.received_ms <= self.max_age_ms:
                break
            del self._items[k]
            self._forget(k[0], held)
            gone.append((k[0], held))
        return gone
