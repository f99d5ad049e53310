"""netpilot strimzi."""
