"""The egress autopilot: a pure planner (planner.py) plus its offline CLI.

See docs/autopilot-design.md for the design and docs/autopilot-scenarios.md for
the scenario format of ``netpilot autopilot plan``.
"""
