"""netpilot shared package: contracts (topic catalog, wire schemas) and plumbing (settings,
Kafka clients, observability, service lifecycle), plus development tooling kept apart from
them in ``netpilot.dev`` (local Kafka, BIRD routers, the pipeline runner, the demo's view)
and ``netpilot.demo`` (``netpilot demo``).

No module here imports ``producers``, ``streams`` or ``sinks``: components depend on it, not
the other way round. The only links back are by name: ``netpilot/cli.py`` mounts each
component's sub-command lazily from its module path, and the dev tooling runs the
components as ``netpilot`` child processes.
"""

__version__ = "0.1.0"
