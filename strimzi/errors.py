"""Errors of the strimzi package.

NetpilotError
└── StrimziError
    ├── CrInvalidError        a CR breaks its CRD's schema or CEL rules (lists every problem)
    └── ApplyError            talking to the Kubernetes API failed
        ├── CrdsMissingError  the cluster does not serve the Strimzi CRDs
        ├── ForbiddenError    403: the credentials may not do this
        ├── ServerInvalidError 422: the API server rejected a CR (its message included)
        └── NotReadyError     --wait timed out before every CR was Ready
"""

from __future__ import annotations

from netpilot.errors import NetpilotError


class StrimziError(NetpilotError):
    pass


class CrInvalidError(StrimziError):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class ApplyError(StrimziError):
    pass


class CrdsMissingError(ApplyError):
    pass


class ForbiddenError(ApplyError):
    pass


class ServerInvalidError(ApplyError):
    pass


class NotReadyError(ApplyError):
    pass
