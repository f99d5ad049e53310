"""Decoder errors and the drop reasons they are counted under.

A malformed datagram is expected input, not a crash: each protocol decoder raises a
:class:`DecodeError` (with the protocol context) and the front door counts it under its
``reason`` and moves on. Reasons are a small fixed set, so they are safe metric labels.
"""

from __future__ import annotations

from netpilot.errors import NetpilotError


class Reason:
    """Drop reasons (metric label values). Units: see each comment."""

    UNKNOWN_VERSION = "unknown_version"  # datagram: not NetFlow v5/v9, IPFIX or sFlow v5
    TRUNCATED = "truncated"  # datagram or set shorter than its header says
    BAD_LENGTH = "bad_length"  # a length field that cannot be right (0, too big)
    BAD_COUNT = "bad_count"  # v5 record count out of range
    COUNT_MISMATCH = "count_mismatch"  # v5 records the header count and the length disagree on (record)
    TEMPLATE_EMPTY = "template_empty"  # template with 0 fields or 0-byte records
    TEMPLATE_TOO_LARGE = "template_too_large"  # more fields than any real exporter sends
    TEMPLATE_EVICTED = "template_evicted"  # bounded template cache pushed one out
    NO_TEMPLATE = "no_template"  # data set whose template never came, or not before the capture ended (set)
    PENDING_OVERFLOW = "pending_overflow"  # held data set pushed out of the bounded buffer
    BAD_RECORD = "bad_record"  # variable-length record running past its set
    BAD_SAMPLE = "bad_sample"  # sFlow sample/record with inconsistent lengths
    UNSUPPORTED = "unsupported"  # valid but not decoded (sFlow record formats ...)
    DECODE_FAILED = "decode_failed"  # records lost to a decoder bug (logged with the error)


ALL_REASONS: tuple[str, ...] = tuple(v for k, v in vars(Reason).items() if not k.startswith("_"))


class DecodeError(NetpilotError):
    """A datagram (or part of it) could not be decoded.

    Carries the context goflow2's ``FlowError`` carries, so a log line says which exporter,
    protocol version, observation domain and template were involved.
    """

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        version: int | None = None,
        domain: int | None = None,
        template_id: int | None = None,
        offset: int | None = None,
    ) -> None:
        self.reason = reason
        self.version = version
        self.domain = domain
        self.template_id = template_id
        self.offset = offset
        """Byte offset in the datagram where the bad part starts, when known (``--explain``)."""
        ctx = [
            f"{k}={v}"
            for k, v in (("version", version), ("domain", domain), ("template", template_id))
            if v is not None
        ]
        super().__init__(f"{message} [{reason}{', ' if ctx else ''}{', '.join(ctx)}]")
