"""Observability: structured logs, Prometheus metrics with component prefixes, /metrics + /healthz."""
