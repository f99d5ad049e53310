"""netpilot streams."""
