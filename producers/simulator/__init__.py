"""`netpilot simulate`: a seeded, deterministic network that emits what real routers emit."""
