"""netpilot sinks."""
