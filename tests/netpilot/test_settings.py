"""One loader: YAML, then shared env, then component env; unknown keys are errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from netpilot.errors import ConfigError
from netpilot.settings import ComponentSettings, KafkaSettings, load_settings


class DemoSettings(ComponentSettings):
    COMPONENT = "demo-part"
    batch_size: int = 10


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "netpilot.yaml"
    p.write_text(text)
    return p


def test_defaults_validate() -> None:
    s = load_settings(DemoSettings)
    assert s.batch_size == 10 and s.kafka.bootstrap_servers == "127.0.0.1:9092"


def test_yaml_then_env_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = write(
        tmp_path,
        "kafka:\n  bootstrap_servers: k1:9092\n  client_id: shared\n"
        "demo-part:\n  batch_size: 20\n  kafka:\n    client_id: mine\n"
        "other-component:\n  whatever: 1\n",
    )
    s = load_settings(DemoSettings, cfg)
    assert (s.kafka.bootstrap_servers, s.kafka.client_id, s.batch_size) == ("k1:9092", "mine", 20)
    monkeypatch.setenv("NETPILOT_KAFKA__BOOTSTRAP_SERVERS", "k2:9092")
    monkeypatch.setenv("NETPILOT_DEMO_PART__BATCH_SIZE", "30")
    s = load_settings(DemoSettings, cfg)
    assert (s.kafka.bootstrap_servers, s.batch_size) == ("k2:9092", 30)
    assert s.kafka.client_id == "mine"  # untouched nested key survives an env override


def test_unknown_key_and_bad_value_are_reported_with_paths(tmp_path: Path) -> None:
    cfg = write(tmp_path, "demo-part:\n  batch_sise: 20\n  kafka:\n    security_protocol: TLS\n")
    with pytest.raises(ConfigError) as err:
        load_settings(DemoSettings, cfg)
    text = str(err.value)
    assert str(cfg) in text
    assert "batch_sise: unknown key" in text
    assert "kafka.security_protocol" in text and "'TLS'" in text


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    cfg = write(tmp_path, "demo-part:\n  batch_size: [1,\n")
    with pytest.raises(ConfigError, match=r"netpilot.yaml:\d+:\d+: not valid YAML"):
        load_settings(DemoSettings, cfg)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(DemoSettings, tmp_path / "nope.yaml")


def test_sasl_scram_and_tls_settings_reach_librdkafka() -> None:
    k = KafkaSettings(
        bootstrap_servers="kafka:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="collector",
        sasl_password="s3cret",
        ssl_ca_location="/etc/ca.crt",
    )
    cfg = k.client_config()
    assert cfg["sasl.mechanism"] == "SCRAM-SHA-512" and cfg["sasl.password"] == "s3cret"
    assert cfg["ssl.ca.location"] == "/etc/ca.crt"
    assert "s3cret" not in str(k.model_dump(mode="json"))  # dumps mask secrets
    with pytest.raises(ConfigError, match="sasl_mechanism"):
        KafkaSettings(security_protocol="SASL_SSL").client_config()


def test_yaml_is_read_with_the_safe_loader_only(tmp_path: Path) -> None:
    """libyaml's loader when available (fast), and still the safe subset: no Python objects."""
    import yaml

    from netpilot import settings as ns

    assert ns._SAFE_LOADER is getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    path = tmp_path / "evil.yaml"
    path.write_text("a: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        ns.read_yaml(path)
    path.write_text("a: {b: [1, 2.5, x]}\n")
    assert ns.read_yaml(path) == {"a": {"b": [1, 2.5, "x"]}}
