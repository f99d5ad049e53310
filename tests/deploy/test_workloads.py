"""The chart's inputs that need no helm: the workload facts are a fresh render of the
catalog and agree with the components' settings; a PoP values file stays small."""

from __future__ import annotations

from strimzi.deploy import GENERATED_DIR, WORKLOADS, render_chart_files
from tests.deploy.helm import EXAMPLES


def test_workload_facts_equal_a_fresh_render() -> None:
    for name, text in render_chart_files().items():
        path = GENERATED_DIR / name
        assert path.read_text() == text, f"{path} is stale: run `netpilot strimzi render`"


def test_collector_ports_are_the_collectors_defaults() -> None:
    from producers.collector.settings import CollectorSettings

    collector = next(w for w in WORKLOADS if w.key == "collector")
    defaults = CollectorSettings()
    assert dict(collector.udp_ports) == {"netflow": defaults.netflow_port, "sflow": defaults.sflow_port}


def test_a_pop_values_file_is_at_most_ten_lines() -> None:
    for path in (EXAMPLES / "pop-ams1.yaml", EXAMPLES / "pop-fra1.yaml"):
        assert len(path.read_text().splitlines()) <= 10, path


def test_every_workload_command_is_a_netpilot_command() -> None:
    """The Deployment's args name a runnable netpilot command, not a group (whose usage
    message would end the pod and restart it forever)."""
    import typer

    from netpilot.cli import app

    def is_group(cmd: object) -> bool:  # typer vendors click: test the interface, not a class
        return hasattr(cmd, "list_commands")

    for w in WORKLOADS:
        cmd = typer.main.get_command(app)
        ctx = typer.Context(cmd)
        for word in w.command:
            assert is_group(cmd), (w.key, w.command, f"{cmd.name} has no sub-command {word}")
            sub = cmd.get_command(ctx, word)  # type: ignore[attr-defined]
            assert sub is not None, (w.key, w.command, word)
            cmd, ctx = sub, typer.Context(sub, parent=ctx)
        assert not is_group(cmd), (w.key, w.command, "is a group: add its sub-command")


def test_bmp_listens_on_the_port_its_service_exposes(monkeypatch) -> None:
    """In a pod the BMP collector must listen beyond loopback, on the Service's port."""
    from netpilot.settings import load_settings
    from producers.routes.bmp.settings import BmpSettings
    from strimzi.deploy import workload_facts
    from strimzi.render import RenderOptions

    bmp = next(w for w in WORKLOADS if w.key == "bmp")
    for e in workload_facts(bmp, RenderOptions())["env"]:
        monkeypatch.setenv(e["name"], e["value"])
    listen = load_settings(BmpSettings).listen
    host, _, port = listen.rpartition(":")
    assert host == "0.0.0.0" and int(port) == dict(bmp.tcp_ports)["bmp"]
