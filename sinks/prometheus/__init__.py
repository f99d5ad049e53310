"""Prometheus exporter of link utilisation, capacity, coverage and autopilot activity."""
