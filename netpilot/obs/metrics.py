"""Metric naming: every metric is ``netpilot_<component>_<name>`` on an injected registry.

Components build their metrics once with :func:`metrics_for` (never at import time, never
on the global registry unless asked), and update them per batch, not per flow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary

from netpilot.obs.service import Errors, ServiceView, register


@dataclass(frozen=True)
class MetricFactory:
    component: str
    registry: CollectorRegistry

    @property
    def prefix(self) -> str:
        return "netpilot_" + self.component.replace("-", "_")

    def counter(self, name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
        return Counter(f"{self.prefix}_{name}", doc, list(labels), registry=self.registry)

    def gauge(self, name: str, doc: str, labels: Sequence[str] = ()) -> Gauge:
        return Gauge(f"{self.prefix}_{name}", doc, list(labels), registry=self.registry)

    def histogram(
        self,
        name: str,
        doc: str,
        labels: Sequence[str] = (),
        buckets: Sequence[float] = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    ) -> Histogram:
        return Histogram(f"{self.prefix}_{name}", doc, list(labels), registry=self.registry, buckets=buckets)

    def summary(self, name: str, doc: str, labels: Sequence[str] = ()) -> Summary:
        return Summary(f"{self.prefix}_{name}", doc, list(labels), registry=self.registry)

    def service(
        self,
        processed: Mapping[str, Counter],
        errors: Sequence[Errors],
        duration: Histogram | None = None,
        backlog: Gauge | None = None,
        lag: Gauge | None = None,
    ) -> ServiceView:
        """Declare which of this component's metrics answer the service contract
        (netpilot/obs/service.py) and export it, labelled ``component=<component>``."""
        view = ServiceView(self.component, processed, errors, duration, backlog, lag)
        return register(self.registry, view)


def metrics_for(component: str, registry: CollectorRegistry | None = None) -> MetricFactory:
    return MetricFactory(component, registry if registry is not None else CollectorRegistry())


def sample_value(registry: CollectorRegistry, name: str, labels: dict[str, str] | None = None) -> float:
    """Current value of one sample (tests and the demo read metrics this way)."""
    v = registry.get_sample_value(name, labels or {})
    return 0.0 if v is None else v
