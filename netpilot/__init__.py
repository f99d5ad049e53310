"""netpilot shared package: contracts (topic catalog, wire schemas) and plumbing.

It never imports ``producers``, ``streams`` or ``sinks``: components depend on it, not
the other way round.
"""

__version__ = "0.1.0"
