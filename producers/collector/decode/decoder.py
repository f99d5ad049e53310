"""The front door: a stateful decoder for a mix of NetFlow v5/v9, IPFIX and sFlow v5.

Usage::

    dec = Decoder(DecoderOptions(default_sampling_rate=1))
    result = dec.decode([(exporter16, datagram_bytes, received_ms, source_port), ...])
    table = result.table()          # flows/1 columns; enrich fills pop/router/link ...
    last = dec.flush()              # end of a capture: data still waiting for a template

One call is one decode pass: data of the same template across all datagrams of the pass
is decoded with one ``np.frombuffer``. Nothing raises for bad input; everything dropped is
in ``result.drops`` by reason, including flows outside ``DecoderOptions.bounds`` (see
bounds.py).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from producers.collector.decode import bounds as plausible
from producers.collector.decode import ipfix, netflow_v5, netflow_v9, sflow
from producers.collector.decode.compiler import MAX_FIELDS
from producers.collector.decode.errors import DecodeError, Reason
from producers.collector.decode.flowsets import TemplateDecoder
from producers.collector.decode.result import ChunkBuilder, DecodeResult, TemplateEvent
from producers.collector.decode.sampling import SamplingState
from producers.collector.decode.templates import BoundedTemplateStore, PendingData

Datagram = tuple[bytes, bytes, int] | tuple[bytes, bytes, int, int]
"""(exporter as 16-byte IPv4-mapped/IPv6 address, datagram, received at in Unix ms[, the
exporter's UDP source port]). Without a port, templates are scoped by address."""


@dataclass(frozen=True)
class DecoderOptions:
    default_sampling_rate: int = 1
    """Rate applied (and flagged SAMPLING_UNKNOWN) when an exporter states none."""
    sampling_rate_by_exporter: Mapping[bytes, int] = field(default_factory=dict)
    """Per-exporter override of the default, keyed by the 16-byte exporter address."""
    max_templates: int = 8192
    max_templates_per_domain: int = 1024
    max_fields: int = MAX_FIELDS
    pending_sets: int = 1024
    pending_bytes: int = 4 << 20
    pending_age_ms: int = 10_000
    template_scope: Literal["session", "exporter"] = "session"
    """"session": templates (and options data) belong to the exporter's address *and* UDP
    source port, as RFC 7011 §8 says; "exporter": to the address alone, for exporters that
    change their source port but not their templates."""
    provenance: bool = False
    """Add the PROVENANCE_FIELDS columns (``netpilot decode``: frame, template, sequence, order)."""
    explain: bool = False
    """Record every drop with its datagram and offset in ``result.explained``."""
    bounds: plausible.FlowBounds | None = None
    """Plausibility bounds applied to every decoded flow (None: none, e.g. for pcap replays
    whose receive times are not the capture's)."""


class Decoder:
    def __init__(self, options: DecoderOptions = DecoderOptions(), store: BoundedTemplateStore | None = None) -> None:
        self.options = options
        self.store = store or BoundedTemplateStore(options.max_templates, options.max_templates_per_domain)
        self.pending = PendingData(options.pending_sets, options.pending_bytes, options.pending_age_ms)
        self.sampling = SamplingState()
        default, by_exporter = options.default_sampling_rate, dict(options.sampling_rate_by_exporter)
        self._default_rate = lambda exporter: by_exporter.get(exporter, default)
        self._templates = TemplateDecoder(
            self.store, self.pending, self.sampling, self._default_rate, options.max_fields
        )
        self._by_port = options.template_scope == "session"
        self.datagrams_seen = 0
        self._sflow_buf = bytearray()
        """sFlow's copy buffer, reused pass after pass (see sflow.SFlowBatch.buf)."""
        """Datagrams decoded so far: the ``datagram`` provenance column counts from here."""

    def _builder(self) -> ChunkBuilder:
        return ChunkBuilder(provenance=self.options.provenance, explain=self.options.explain)

    def decode(
        self, datagrams: Iterable[Datagram], now_ms: int | None = None, learned: Sequence[TemplateEvent] = ()
    ) -> DecodeResult:
        """Decode one pass. ``learned``: templates (and withdrawals) another collector learned,
        installed first, so data held for them decodes in this pass; they make no template
        events (they are on the topic already)."""
        out = self._builder()
        if learned:
            for event in learned:
                self._learn_stored(out, event)
            out.result.template_events.clear()
        v5 = netflow_v5.V5Batch()
        sf = sflow.SFlowBatch(buf=self._sflow_buf)
        last_ms = 0
        by_port, seen = self._by_port, self.datagrams_seen
        for item in datagrams:
            exporter, raw, received_ms = item[0], item[1], item[2]
            port = item[3] if by_port and len(item) > 3 else 0
            out.datagram = seen
            seen += 1
            last_ms = received_ms
            data = memoryview(raw)
            try:
                if len(data) < 4:
                    raise DecodeError(Reason.TRUNCATED, f"datagram of {len(data)} bytes", offset=0)
                version = (data[0] << 8) | data[1]
                if version == 5:
                    netflow_v5.collect(v5, out, exporter, data, received_ms)
                elif version == 9:
                    netflow_v9.decode(self._templates, out, exporter, port, data, received_ms)
                elif version == 10:
                    ipfix.decode(self._templates, out, exporter, port, data, received_ms)
                elif version == 0 and struct.unpack_from(">I", data, 0)[0] == 5:
                    sflow.collect(sf, out, exporter, data, received_ms)
                else:
                    raise DecodeError(Reason.UNKNOWN_VERSION, f"unknown export version {version}", offset=0)
            except DecodeError as exc:
                out.drop(exc.reason, 1, str(exc), exc.offset)
            except (struct.error, IndexError, ValueError) as exc:
                # a length we did not check; still bad input, never a crash
                out.drop(Reason.TRUNCATED, 1, f"{type(exc).__name__}: {exc}")
        self.datagrams_seen = seen
        self._sflow_buf = sf.buf if len(sf.buf) <= sflow.KEEP_BUFFER else bytearray()
        finishers: tuple[tuple[str, Callable[..., None], object], ...] = (
            ("netflow5", netflow_v5.finish, v5),
            ("sflow5", sflow.finish, sf),
        )
        for name, finish, batch in finishers:
            try:
                finish(batch, out, self._default_rate)
            except Exception as exc:  # noqa: BLE001 - a decoder bug must cost records, not the process
                out.drop(Reason.DECODE_FAILED, 1, f"{name}: {type(exc).__name__}: {exc}")
        self._templates.finish(out, now_ms if now_ms is not None else last_ms)
        result = out.finish()
        if self.options.bounds is not None and result.n:
            verdict = plausible.check(result.columns, self.options.bounds)
            result.keep(verdict.keep)
            result.drops.update(verdict.counts)
            result.refused.update(verdict.examples)
        return result

    def flush(self) -> DecodeResult:
        """The end of a capture: data still waiting for its template is dropped and counted
        (``no_template``), since no template can come any more."""
        out = self._builder()
        self._templates.finish(out, None, flush=True)
        return out.finish()

    def load_template(
        self, exporter: bytes, version: int, domain: int, kind: str, definition: bytes, source_port: int = 0
    ) -> bool:
        """Install a template persisted earlier (templates topic), as if just received.

        ``source_port`` is the port of the Transport Session it came in (0: unknown, as
        persisted before templates carried their port); scoped by exporter address, every port is 0.
        Returns False when the definition is a withdrawal. At start nothing waits for it yet
        (templates learned while running come through ``decode(learned=...)``).
        """
        return self._install(ChunkBuilder(), exporter, version, domain, kind, definition, source_port)

    def _install(
        self, out: ChunkBuilder, exporter: bytes, version: int, domain: int, kind: str, definition: bytes, port: int
    ) -> bool:
        """Parse and learn one stored template record; data held for it decodes into ``out``."""
        module = netflow_v9 if version == 9 else ipfix
        tid, fields, scope, _ = module.parse_template_record(
            memoryview(definition), 0, kind, self.options.max_fields, domain
        )
        if fields is None:
            return False
        key = (exporter, port if self._by_port else 0, version, domain)
        self._templates.learn(out, key, tid, kind, fields, definition, scope)
        return True

    def _learn_stored(self, out: ChunkBuilder, e: TemplateEvent) -> None:
        if e.definition is None:
            port = e.source_port if self._by_port else 0
            self._templates.withdraw(out, (e.exporter, port, e.version, e.domain, e.template_id))
            return
        try:
            self._install(out, e.exporter, e.version, e.domain, e.kind, e.definition, e.source_port)
        except DecodeError as exc:  # only a record written to the topic by hand gets here
            out.drop(exc.reason, 1, f"stored template: {exc}")
        except (struct.error, IndexError, ValueError) as exc:
            out.drop(Reason.TRUNCATED, 1, f"stored template: {type(exc).__name__}: {exc}")

    def template_count(self) -> int:
        return len(self.store)
