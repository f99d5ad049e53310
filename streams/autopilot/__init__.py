"""The egress autopilot: a pure planner (planner.py) plus its offline CLI.

See shared/design/autopilot.md for the specification and docs/autopilot-scenarios.md for
the scenario format of ``netpilot autopilot plan``.
"""
