"""The autopilot worker as a netpilot Service (faust on its own thread, like the streams worker)."""

from __future__ import annotations

from streams.autopilot.metrics import AutopilotMetrics
from streams.autopilot.settings import AutopilotSettings
from streams.autopilot.worker import AutopilotApp, Pilot, create_app, register
from streams.internal_topics import ensure_internal_topics
from streams.service import StreamsService


class AutopilotService(StreamsService):
    name = "autopilot"

    def __init__(self, settings: AutopilotSettings, metrics: AutopilotMetrics) -> None:
        super().__init__(settings, metrics)  # type: ignore[arg-type]
        self.pilot: Pilot | None = None

    def _build(self) -> AutopilotApp:  # type: ignore[override]
        s: AutopilotSettings = self.settings  # type: ignore[assignment]
        s.data_dir.mkdir(parents=True, exist_ok=True)
        aa = create_app(s)
        self.pilot = Pilot(aa, s, self.metrics)  # type: ignore[arg-type]
        register(aa, self.pilot, s.policy.cycle_s, self.tasks)
        aa.app.finalize()
        ensure_internal_topics(aa.app, s.kafka, s.changelog_replication, extra=[aa.ticks])
        return aa

    def health(self) -> tuple[bool, str]:
        ok, why = super().health()
        if ok and self.pilot is not None:
            return self.pilot.health()
        return ok, why
