"""Sampling rates: where v9/IPFIX exporters put them, and the per-exporter default.

Order of precedence per flow (most specific first):
  1. a rate in the data record itself (IEs 34, 50, 305/306, 309/310),
  2. the sampler the record names (IE 48 samplerId / 302 selectorId) from options data,
  3. an exporter/domain-wide rate from options data without a sampler id,
  4. the configured default for the exporter, and the flow is flagged SAMPLING_UNKNOWN.
Options data only updates the state; flows use the state at the end of a decode pass.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from producers.collector.decode.compiler import IE, CompiledTemplate
from producers.collector.decode.templates import DomainKey


def rate_from_fields(values: Mapping[int, int]) -> int:
    """The 1-in-N rate an options/data record states, 0 when it states none."""
    interval = values.get(IE.SAMPLING_PACKET_INTERVAL)
    space = values.get(IE.SAMPLING_PACKET_SPACE)
    if interval and space is not None:
        return (interval + space) // interval
    size, population = values.get(IE.SAMPLING_SIZE), values.get(IE.SAMPLING_POPULATION)
    if size and population:
        return population // size
    for ie in (IE.SAMPLER_RANDOM_INTERVAL, IE.SAMPLING_INTERVAL):
        v = values.get(ie)
        if v:
            return v
    return 0


@dataclass
class DomainSampling:
    default_rate: int = 0
    samplers: dict[int, int] = field(default_factory=dict)
    system_init_ms: int = 0


class SamplingState:
    """Rates learned from options data, bounded in domains and samplers."""

    MAX_SAMPLERS = 256

    def __init__(self, max_domains: int = 4096) -> None:
        self.max_domains = max_domains
        self._domains: OrderedDict[DomainKey, DomainSampling] = OrderedDict()

    def domain(self, key: DomainKey) -> DomainSampling:
        d = self._domains.get(key)
        if d is None:
            if len(self._domains) >= self.max_domains:
                self._domains.popitem(last=False)
            d = self._domains[key] = DomainSampling()
        else:
            self._domains.move_to_end(key)
        return d

    def peek(self, key: DomainKey) -> DomainSampling | None:
        return self._domains.get(key)

    def learn(self, key: DomainKey, values: Mapping[int, int]) -> None:
        """Apply one options data record (IE -> value)."""
        init = values.get(IE.SYSTEM_INIT_MS)
        rate = rate_from_fields(values)
        if not rate and not init:
            return
        d = self.domain(key)
        if init:
            d.system_init_ms = init
        if rate:
            sampler = values.get(IE.SAMPLER_ID, values.get(IE.SELECTOR_ID))
            if sampler is None:
                d.default_rate = rate
            elif sampler in d.samplers or len(d.samplers) < self.MAX_SAMPLERS:
                d.samplers[sampler] = rate

    def rates(self, key: DomainKey, tpl: CompiledTemplate, recs: np.ndarray) -> np.ndarray:
        """Per-record rate from the record, its sampler or the domain; 0 = unknown."""
        n = len(recs)
        rate = np.zeros(n, np.uint64)
        interval = tpl.uint(recs, IE.SAMPLING_PACKET_INTERVAL)
        space = tpl.uint(recs, IE.SAMPLING_PACKET_SPACE)
        if interval is not None and space is not None:
            ok = interval > 0
            rate[ok] = (interval[ok] + space[ok]) // interval[ok]
        for ie in (IE.SAMPLER_RANDOM_INTERVAL, IE.SAMPLING_INTERVAL):
            v = tpl.uint(recs, ie)
            if v is not None:
                rate = np.where(rate == 0, v, rate)
        d = self._domains.get(key)
        if d is None:
            return rate
        sampler = tpl.uint(recs, IE.SAMPLER_ID)
        if sampler is None:
            sampler = tpl.uint(recs, IE.SELECTOR_ID)
        if sampler is not None and d.samplers:
            ids, inverse = np.unique(sampler, return_inverse=True)
            table = np.array([d.samplers.get(int(i), 0) for i in ids], np.uint64)
            rate = np.where(rate == 0, table[inverse], rate)
        if d.default_rate:
            rate[rate == 0] = d.default_rate
        return rate
