"""Template state: a bounded template cache and a bounded buffer for early data.

Keys are ``(exporter, version, domain, template_id)``: templates are per exporter address
*and* source id / observation domain, as RFC 7011 and RFC 3954 say. Both structures are
bounded in entries and bytes, so a flood of template ids or of data without templates
costs a fixed amount of memory and shows up as counted evictions instead.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from producers.collector.decode.compiler import CompiledTemplate

TemplateKey = tuple[bytes, int, int, int]  # exporter, version, domain, template id


class TemplateStore(Protocol):
    """What the v9/IPFIX decoders need from template storage (goflow2's TemplateSystem)."""

    def get(self, key: TemplateKey) -> CompiledTemplate | None: ...

    def put(self, key: TemplateKey, tpl: CompiledTemplate) -> tuple[bool, int]:
        """Store; returns (changed, evicted count). ``changed`` is False for a refresh."""
        ...

    def withdraw(self, key: TemplateKey) -> bool: ...

    def withdraw_domain(self, exporter: bytes, version: int, domain: int, kind: str | None) -> list[TemplateKey]: ...

    def __len__(self) -> int: ...


class BoundedTemplateStore:
    """LRU template cache with a global and a per-(exporter, domain) cap."""

    def __init__(self, max_templates: int = 8192, max_per_domain: int = 1024) -> None:
        self.max_templates = max_templates
        self.max_per_domain = max_per_domain
        self._items: OrderedDict[TemplateKey, CompiledTemplate] = OrderedDict()
        self._per_domain: dict[tuple[bytes, int, int], int] = {}

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
        dom = key[:3]
        if self._per_domain.get(dom, 0) >= self.max_per_domain:
            # evict this domain's least recently used template, not another exporter's
            victim = next(k for k in self._items if k[:3] == dom)
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
        dom = key[:3]
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

    def withdraw_domain(self, exporter: bytes, version: int, domain: int, kind: str | None) -> list[TemplateKey]:
        keys = [
            k
            for k, t in self._items.items()
            if k[:3] == (exporter, version, domain) and (kind is None or t.kind == kind)
        ]
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

    def expire(self, now_ms: int) -> int:
        """Drop sets held longer than ``max_age_ms``; returns how many."""
        n = 0
        while self._items:
            k, held = next(iter(self._items.items()))
            if now_ms - held.received_ms <= self.max_age_ms:
                break
            del self._items[k]
            self._forget(k[0], held)
            n += 1
        return n
