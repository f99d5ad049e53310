"""netpilot producers."""
