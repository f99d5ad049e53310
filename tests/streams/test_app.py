"""Settings, the faust app's names (internal topics for ACLs) and the CLI entry."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from netpilot import catalog
from netpilot.errors import ConfigError
from netpilot.settings import KafkaSettings, load_settings
from streams.app import TABLES, app_id, broker_credentials, broker_urls, internal_topic_prefix
from streams.settings import StreamsSettings


def test_defaults_validate_and_env_overrides_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    assert StreamsSettings().window_sizes_s == (10, 60)
    monkeypatch.setenv("NETPILOT_STREAMS__WINDOW_SIZES_S", "[300, 30]")
    monkeypatch.setenv("NETPILOT_STREAMS__ALLOWED_LATENESS_S", "2.5")
    s = load_settings(StreamsSettings)
    assert s.window_sizes_s == (30, 300) and s.allowed_lateness_s == 2.5


@pytest.mark.parametrize(
    "bad", [{"window_sizes_s": [10, 10]}, {"window_sizes_s": [-1]}, {"allowed_lateness_s": -1}, {"windows": [10]}]
)
def test_bad_settings_name_the_key(bad: dict) -> None:
    with pytest.raises(ConfigError, match=next(iter(bad))):
        load_settings(StreamsSettings, overrides=bad)


def test_internal_topics_share_the_app_id_prefix() -> None:
    s = StreamsSettings(kafka=KafkaSettings(topic_prefix="test."))
    assert app_id(s) == "test.netpilot-streams"
    assert app_id(StreamsSettings()) == catalog.consumer_group(catalog.Component.STREAMS)
    prefix = internal_topic_prefix(app_id(s))
    assert prefix == "test.netpilot-streams-"
    # faust names changelogs <app id>-<table>-changelog; none may clash with catalog names
    changelogs = [f"{app_id(s)}-{t}-changelog" for t in TABLES]
    assert all(c.startswith(prefix) for c in changelogs)
    assert not {c for c in changelogs} & {t.name for t in catalog.ALL_TOPICS}


def test_broker_urls_and_credentials() -> None:
    k = KafkaSettings(bootstrap_servers="k1:9092, k2:9093")
    assert broker_urls(k) == ["kafka://k1:9092", "kafka://k2:9093"]
    assert broker_credentials(k) is None
    sasl = KafkaSettings(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="streams",
        sasl_password="s3cret",
    )
    creds = broker_credentials(sasl)
    assert creds.username == "streams" and creds.mechanism.value == "SCRAM-SHA-512"
    with pytest.raises(ConfigError, match="sasl_username"):
        broker_credentials(KafkaSettings(security_protocol="SASL_PLAINTEXT"))


def _netpilot(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("netpilot")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=60, env=env)


def test_cli_check_dump_and_bad_config_exit_code(tmp_path: Path) -> None:
    assert _netpilot("streams", "run", "--check").returncode == 0
    dumped = _netpilot("streams", "run", "--dump")
    assert dumped.returncode == 0 and '"window_sizes_s"' in dumped.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("streams:\n  window_sizes_s: [10, 10]\n")
    failed = _netpilot("streams", "run", "--check", "--config", str(bad))
    assert failed.returncode == 2 and "window_sizes_s" in failed.stderr


def test_group_instance_id_reaches_aiokafka_and_empty_means_dynamic(tmp_path: Path) -> None:
    """The setting is faust's consumer_group_instance_id, which faust passes to aiokafka's
    group_instance_id (None: dynamic membership, as before the setting)."""
    from streams.app import new_faust_app

    kafka = KafkaSettings()
    static = new_faust_app(
        "t-static", kafka, client="t", store="memory://", data_dir=tmp_path, group_instance_id="pod-0"
    )
    dynamic = new_faust_app("t-dynamic", kafka, client="t", store="memory://", data_dir=tmp_path)
    assert static.conf.consumer_group_instance_id == "pod-0"
    assert dynamic.conf.consumer_group_instance_id is None
    with pytest.raises(ConfigError, match="group_instance_id"):
        load_settings(StreamsSettings, overrides={"group_instance_id": "no spaces"})
