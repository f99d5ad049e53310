"""The service contract: the same few series from every component, so one dashboard and one
set of alert rules serve them all.

Each component keeps its own metrics (``netpilot_<component>_*``, named for what they count).
On top of them it declares, once, which of them answer the four questions asked of any
running service, and :class:`ServiceView` exports the answers under fixed names with a
``component`` label:

====================================================  ==========================================
``netpilot_service_processed_total{item}``            work done, per kind of item (flows, messages)
``netpilot_service_errors_total{reason}``             items refused, dropped or failed, by reason
``netpilot_service_batch_duration_seconds``           time of one unit of batch work (histogram)
``netpilot_service_backlog``                          items waiting (queued datagrams, consumer lag)
``netpilot_service_lag_seconds``                      how far behind the wall clock the output is
``netpilot_service_kafka_client_recreations_total``   Kafka clients replaced by the watchdogs
====================================================  ==========================================

Every component exports the first two, and the last: its process's Kafka client
recreations by ``client`` and ``reason`` (netpilot/obs/client_recreations.py; 0 where it
has no such client). Batch duration, backlog and lag only where the component has such a
thing (the inventory publisher has no batches, only the streams worker has a watermark).

Why a view computed at scrape time rather than more counters to increment: the component's
own counters stay the one source of truth, the contract cannot drift from them, and no hot
path gains a single line. The cost is a few duplicated series per process.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from netpilot.obs import client_recreations

PROCESSED = "netpilot_service_processed_total"
ERRORS = "netpilot_service_errors_total"
DURATION = "netpilot_service_batch_duration_seconds"
BACKLOG = "netpilot_service_backlog"
LAG = "netpilot_service_lag_seconds"
CLIENT_RECREATIONS = "netpilot_service_kafka_client_recreations_total"

FAMILIES = (PROCESSED, ERRORS, DURATION, BACKLOG, LAG, CLIENT_RECREATIONS)
REQUIRED = (PROCESSED, ERRORS, CLIENT_RECREATIONS)


@dataclass(frozen=True)
class Errors:
    """One source of errors: a counter with a ``reason`` label (``reason=None``), or an
    unlabelled counter (or one labelled otherwise) counted under a fixed reason."""

    counter: Counter
    reason: str | None = None
    reasons: tuple[str, ...] = ()
    """Reasons shown at 0 before their first error (a series born at 1 shows no increase to
    rate() or an alert), for counters whose children are only created when it happens."""


@dataclass(frozen=True)
class ServiceView:
    """The contract's series for one component, read from its own metrics at scrape time."""

    component: str
    processed: Mapping[str, Counter]
    errors: Sequence[Errors]
    duration: Histogram | None = None
    backlog: Gauge | None = None
    """Summed over its labels (messages per topic add up)."""
    lag: Gauge | None = None
    """The maximum over its labels (the PoP furthest behind)."""
    _label: list[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.processed:
            raise ValueError(f"{self.component}: the service contract needs at least one processed counter")
        object.__setattr__(self, "_label", [self.component])

    def families(self) -> tuple[str, ...]:
        """The contract families this component exports."""
        optional = ((DURATION, self.duration), (BACKLOG, self.backlog), (LAG, self.lag))
        return (*REQUIRED, *(name for name, metric in optional if metric is not None))

    def metrics(self, with_samples: bool = True) -> Iterator[Metric]:
        """The contract's families for this component (``with_samples=False``: names only)."""
        processed = CounterMetricFamily(
            PROCESSED, "Items processed, by kind (the component's own counters summed)", labels=["component", "item"]
        )
        errors = CounterMetricFamily(
            ERRORS, "Items refused, dropped or failed, by reason", labels=["component", "reason"]
        )
        if with_samples:
            for item, counter in self.processed.items():
                processed.add_metric([self.component, item], _total(counter))
            for reason, value in sorted(_by_reason(self.errors).items()):
                errors.add_metric([self.component, reason], value)
        yield processed
        yield errors
        recreations = CounterMetricFamily(
            CLIENT_RECREATIONS,
            "Kafka clients this process replaced after a librdkafka fault they could not leave, by reason",
            labels=["component", "client", "reason"],
        )
        if with_samples:
            for (client, reason), n in sorted(client_recreations.snapshot().items()):
                recreations.add_metric([self.component, client, reason], n)
        yield recreations
        if self.duration is not None:
            duration = HistogramMetricFamily(DURATION, "Time of one unit of batch work", labels=["component"])
            if with_samples:
                buckets, total = _merged_buckets(self.duration)
                duration.add_metric(self._label, buckets, total)
            yield duration
        if self.backlog is not None:
            backlog = GaugeMetricFamily(BACKLOG, "Items waiting to be processed", labels=["component"])
            if with_samples:
                backlog.add_metric(self._label, sum(_values(self.backlog)))
            yield backlog
        if self.lag is not None:
            lag = GaugeMetricFamily(LAG, "Seconds the output is behind the wall clock", labels=["component"])
            if with_samples:
                lag.add_metric(self._label, max(_values(self.lag), default=0.0))
            yield lag


class _Contract(Collector):
    """Every view of one registry, merged into one family per name. A process normally
    serves one component, but tests and tools put several on one registry, and the text
    format allows each family name once."""

    def __init__(self) -> None:
        self._views: dict[str, ServiceView] = {}
        self._lock = threading.Lock()

    def add(self, view: ServiceView) -> None:
        with self._lock:
            if view.component in self._views:
                raise ValueError(f"{view.component}: its service view is already registered on this registry")
            self._views[view.component] = view

    def describe(self) -> Iterable[Metric]:
        # every name, so the registry refuses a component metric that would clash with one
        return [
            CounterMetricFamily(PROCESSED, ""),
            CounterMetricFamily(ERRORS, ""),
            CounterMetricFamily(CLIENT_RECREATIONS, ""),
            HistogramMetricFamily(DURATION, ""),
            GaugeMetricFamily(BACKLOG, ""),
            GaugeMetricFamily(LAG, ""),
        ]

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            views = list(self._views.values())
        merged: dict[str, Metric] = {}
        for view in views:
            for family in view.metrics():
                if family.name in merged:
                    merged[family.name].samples.extend(family.samples)
                else:
                    merged[family.name] = family
        return list(merged.values())


_CONTRACTS: weakref.WeakKeyDictionary[CollectorRegistry, _Contract] = weakref.WeakKeyDictionary()
_CONTRACTS_LOCK = threading.Lock()


def register(registry: CollectorRegistry, view: ServiceView) -> ServiceView:
    """Export ``view`` on ``registry``; a second view of the same component raises ValueError."""
    with _CONTRACTS_LOCK:
        contract = _CONTRACTS.get(registry)
        if contract is None:
            contract = _CONTRACTS[registry] = _Contract()
            contract.add(view)
            registry.register(contract)
            return view
    contract.add(view)
    return view


def _samples(metric: Counter | Gauge | Histogram, suffix: str) -> Iterator[tuple[dict[str, str], float]]:
    for family in metric.collect():
        for s in family.samples:
            if s.name.endswith(suffix):
                yield s.labels, s.value


def _total(counter: Counter) -> float:
    return sum(v for _labels, v in _samples(counter, "_total"))


def _values(gauge: Gauge) -> list[float]:
    return [v for _labels, v in _samples(gauge, "")]


def _by_reason(sources: Sequence[Errors]) -> dict[str, float]:
    out: dict[str, float] = {}
    for src in sources:
        for reason in (src.reason,) if src.reason is not None else src.reasons:
            out.setdefault(reason, 0.0)
        for labels, value in _samples(src.counter, "_total"):
            reason = src.reason if src.reason is not None else labels["reason"]
            out[reason] = out.get(reason, 0.0) + value
    return out


def _merged_buckets(hist: Histogram) -> tuple[list[tuple[str, float]], float]:
    """The histogram's buckets summed over its labels (same bucket bounds for every child)."""
    buckets: dict[str, float] = {}
    total = 0.0
    for labels, value in _samples(hist, "_bucket"):
        buckets[labels["le"]] = buckets.get(labels["le"], 0.0) + value
    for _labels, value in _samples(hist, "_sum"):
        total += value
    if not buckets:  # a labelled histogram with no child yet: an empty one, still valid
        buckets = {"+Inf": 0.0}
    return sorted(buckets.items(), key=lambda kv: float(kv[0])), total
