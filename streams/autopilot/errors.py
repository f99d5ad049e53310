"""Errors of the autopilot package (see netpilot.errors for the root of the tree)."""

from netpilot.errors import ConfigError, NetpilotError


class AutopilotError(NetpilotError):
    """Base of the autopilot's own errors."""


class ScenarioError(AutopilotError, ConfigError):
    """A scenario file, policy or snapshot input is invalid; the message names the field and
    the fix. A ConfigError too, so the CLI exits with status 2 (bad input), not 1."""
