"""netpilot grafana."""
