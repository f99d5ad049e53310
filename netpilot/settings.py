"""Configuration: one loader, one frozen model per component.

Precedence (highest first):
  1. ``NETPILOT_<COMPONENT>__<FIELD>[__<SUBFIELD>]`` environment variables,
  2. ``NETPILOT_<FIELD>[__<SUBFIELD>]`` (shared by all components, e.g. ``NETPILOT_KAFKA__BOOTSTRAP_SERVERS``),
  3. the YAML file: top-level shared keys (``kafka:``, ``log:``, ``metrics:``, ``wire:``) overlaid by the
     component's own section (``collector:`` ...),
  4. the model's defaults.

Unknown keys are errors (a typo must not be silently ignored), and every error names the
file or variable, the path and what is wrong. This is the only module that reads
``os.environ`` for configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from netpilot.catalog import ALL_TOPICS, Topic
from netpilot.errors import ConfigError

SHARED_SECTIONS = ("kafka", "log", "metrics", "wire")


class KafkaSettings(BaseModel):
    """How to reach Kafka. Secrets are ``SecretStr`` so dumps mask them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bootstrap_servers: str = Field("127.0.0.1:9092", description="host:port[,host:port]")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: Path | None = Field(None, description="CA bundle (Strimzi: cluster CA cert)")
    ssl_certificate_location: Path | None = Field(None, description="client cert for mTLS")
    ssl_key_location: Path | None = None
    ssl_key_password: SecretStr | None = None
    client_id: str = "netpilot"
    topic_prefix: str = Field("", description="prepended to every catalog topic name")
    librdkafka: dict[str, str] = Field(default_factory=dict, description="raw librdkafka overrides (last word)")

    def client_config(self) -> dict[str, str]:
        """librdkafka configuration for confluent-kafka clients."""
        cfg: dict[str, str] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
            "client.id": self.client_id,
        }
        if self.security_protocol.startswith("SASL"):
            if not (self.sasl_mechanism and self.sasl_username and self.sasl_password):
                raise ConfigError(
                    f"kafka.security_protocol={self.security_protocol} needs kafka.sasl_mechanism, "
                    "kafka.sasl_username and kafka.sasl_password"
                )
            cfg["sasl.mechanism"] = self.sasl_mechanism
            cfg["sasl.username"] = self.sasl_username
            cfg["sasl.password"] = self.sasl_password.get_secret_value()
        if self.ssl_ca_location:
            cfg["ssl.ca.location"] = str(self.ssl_ca_location)
        if self.ssl_certificate_location:
            cfg["ssl.certificate.location"] = str(self.ssl_certificate_location)
        if self.ssl_key_location:
            cfg["ssl.key.location"] = str(self.ssl_key_location)
        if self.ssl_key_password:
            cfg["ssl.key.password"] = self.ssl_key_password.get_secret_value()
        cfg.update(self.librdkafka)
        return cfg

    def topic(self, topic: Topic) -> str:
        """The real topic name for a catalog entry (with ``topic_prefix``)."""
        return f"{self.topic_prefix}{topic.name}"


class LogSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = Field(
        "auto", description="auto = console on a terminal, JSON otherwise"
    )
    rate_limit_burst: int = Field(
        20,
        ge=0,
        description="identical records (same logger, level and message template) let through per "
        "interval; the rest are counted into one 'suppressed N similar messages' line. 0: no limit",
    )
    rate_limit_interval_s: float = Field(60.0, gt=0, description="the interval of rate_limit_burst")


class SchemaTimeLimits(BaseModel):
    """Per-schema override of :class:`WireSettings`' time limits (None: the wire-wide value)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_future_s: float | None = Field(None, ge=0)
    max_age_s: float | None = Field(None, gt=0)


KAFKA_SEGMENT_S = 7 * 86_400.0
"""Kafka's default ``segment.ms`` (``log.roll.hours`` = 168): a record of a delete topic can
outlive ``retention.ms`` by up to one segment, since whole segments are deleted."""


class WireSettings(BaseModel):
    """What a consumer accepts from Kafka beyond the body's own schema (docs/wire-format.md).

    Timestamps are checked against the consumer's clock when it decodes a message: a value
    dated far ahead (a producer with a broken clock, or a hostile one) would otherwise look
    like the newest reading for the rest of the run, and one older than its topic can hold
    is not a reading of this network. Such messages are dead-lettered (``implausible-time``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_future_s: float = Field(
        300.0, ge=0, description="a message dated more than this past the consumer's clock is refused"
    )
    max_age_s: float | None = Field(
        None,
        gt=0,
        description="a message of a time-series topic dated more than this before the consumer's clock "
        "is refused; None: the topic's retention plus one Kafka segment (7 days), older than the "
        "topic could hold it. Compacted topics (inventory, routes, recommendations ...) have no age limit",
    )
    max_horizon_s: float = Field(
        7 * 86_400.0,
        gt=0,
        description="a deadline a message sets (a recommendation's valid_until, hold_until) further "
        "than this past the consumer's clock is refused",
    )
    schemas: dict[str, SchemaTimeLimits] = Field(
        default_factory=dict, description="per schema name (e.g. link-stats): overrides of the limits above"
    )

    def limits(self, schema_name: str) -> tuple[float, float | None]:
        """(max_future_s, max_age_s or None for no age limit) of one schema name."""
        o = self.schemas.get(schema_name, SchemaTimeLimits())
        future = o.max_future_s if o.max_future_s is not None else self.max_future_s
        topic = _topic_of_schema(schema_name)
        if topic is None or topic.retention_ms is None:  # compacted: the latest state, however old
            return future, None
        if o.max_age_s is not None:
            return future, o.max_age_s
        if self.max_age_s is not None:
            return future, self.max_age_s
        return future, topic.retention_ms / 1000 + KAFKA_SEGMENT_S

    @field_validator("schemas")
    @classmethod
    def _known_schemas(cls, v: dict[str, SchemaTimeLimits]) -> dict[str, SchemaTimeLimits]:
        unknown = sorted(k for k in v if _topic_of_schema(k) is None)
        if unknown:
            known = sorted(t.value_schema.split("/", 1)[0] for t in ALL_TOPICS)
            raise ValueError(f"unknown schema names {unknown}; known: {known}")
        return v


def _topic_of_schema(schema_name: str) -> Topic | None:
    return next((t for t in ALL_TOPICS if t.value_schema.split("/", 1)[0] == schema_name), None)


class MetricsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    listen: str = Field("127.0.0.1:0", description="host:port of /metrics and /healthz; port 0 = any free")
    enabled: bool = True


class ComponentSettings(BaseSettings):
    """Base of every component's settings. Subclasses set ``COMPONENT``."""

    model_config = SettingsConfigDict(extra="forbid", frozen=True, env_nested_delimiter="__", case_sensitive=False)
    COMPONENT: ClassVar[str] = "component"
    """Name used for the YAML section and the env prefix; subclasses override it."""

    kafka: KafkaSettings = KafkaSettings()
    log: LogSettings = LogSettings()
    metrics: MetricsSettings = MetricsSettings()
    wire: WireSettings = WireSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        component = settings_cls.COMPONENT.upper().replace("-", "_")  # type: ignore[attr-defined]
        per_component = EnvSettingsSource(
            settings_cls, env_prefix=f"NETPILOT_{component}__", env_nested_delimiter="__", case_sensitive=False
        )
        shared = EnvSettingsSource(
            settings_cls, env_prefix="NETPILOT_", env_nested_delimiter="__", case_sensitive=False
        )
        # init_settings carries the YAML (see load_settings); env overrides it.
        return (per_component, shared, init_settings)

    def dump(self) -> dict[str, Any]:
        """The effective configuration with secrets masked (``--dump``)."""
        return self.model_dump(mode="json")


S = TypeVar("S", bound=ComponentSettings)


_SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration: {exc.strerror}") from exc
    try:
        # libyaml's loader when pyyaml has it (about 10x faster: a 100k-prefix scenario for
        # `netpilot autopilot plan` spent minutes in the pure-Python one); same safe subset.
        data = yaml.load(text, Loader=_SAFE_LOADER) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, not {type(data).__name__}")
    return data


def load_settings(cls: type[S], config_file: Path | str | None = None, overrides: dict[str, Any] | None = None) -> S:
    """Load a component's settings from YAML + environment, or raise a readable ConfigError."""
    component = cls.COMPONENT
    data: dict[str, Any] = {}
    source = "defaults"
    if config_file is not None:
        path = Path(config_file)
        source = str(path)
        raw = read_yaml(path)
        data = {k: v for k, v in raw.items() if k in SHARED_SECTIONS}
        section = raw.get(component, {})
        if not isinstance(section, dict):
            raise ConfigError(f"{path}: '{component}' must be a mapping")
        data = _merge(data, section)
        # Sections of other components may share the file; they are not ours to check.
    if overrides:
        data = _merge(data, overrides)
    try:
        return cls(**data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source, component)) from exc


def format_validation_error(exc: ValidationError, source: str, component: str) -> str:
    lines = [f"invalid {component} configuration ({source}, env NETPILOT_{component.upper().replace('-', '_')}__*):"]
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"]) or "<root>"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key (typo? see `--dump` for the valid keys)"
        got = err.get("input")
        shown = "" if err["type"] in ("missing", "extra_forbidden") else f" (got {got!r})"
        lines.append(f"  {path}: {msg}{shown}")
    return "\n".join(lines)


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in top.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def settings_to_run(cls: type[S], config_file: Path | str | None, *, check: bool, dump: bool) -> S | None:
    """What every ``run`` command starts with: load the settings (a ConfigError names the bad
    key), print them masked with ``--dump``, and return None when ``--check``/``--dump``
    asked only for that."""
    settings = load_settings(cls, config_file)
    if dump:
        import json

        print(json.dumps(settings.dump(), indent=2, default=str), flush=True)
    return None if check or dump else settings
