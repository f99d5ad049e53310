"""One poll at a time against snmpd: ifName resolution, v3 authPriv, wrong credentials, CLI."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from netpilot.errors import ConfigError
from netpilot.wire.links import LinkInventory
from producers.inventory.load import load_inventory
from producers.linkstats.router import RouterPoller
from producers.linkstats.service import SnmpPollerService
from producers.linkstats.settings import SnmpPollerSettings
from producers.linkstats.snmp import AgentError, Credentials, SnmpClient
from tests.producers.linkstats.netlab import V3_AUTH, V3_PRIV, V3_USER, NetLab

REPO = Path(__file__).resolve().parents[3]
V3 = Credentials("3", user=V3_USER, auth_protocol="sha256", auth_key=V3_AUTH, priv_protocol="aes", priv_key=V3_PRIV)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):
    lab = NetLab(tmp_path_factory.mktemp("lab")).open()
    try:
        lab.start_snmpd(1161)
        yield lab
    finally:
        lab.close()


def _link(**kw: object) -> LinkInventory:
    return LinkInventory(pop="lab1", router="r1", capacity_bps=10e9, **kw)  # type: ignore[arg-type]


def _poll(lab: NetLab, creds: Credentials, links: tuple[LinkInventory, ...]):
    async def go():
        client = SnmpClient(lab.agent_addr, 1161, creds, timeout=1.0)
        try:
            return await RouterPoller("lab1", "r1", links, client).poll()
        finally:
            client.close()

    return asyncio.run(go())


def _kernel_ifindex(lab: NetLab, dev: str) -> int:
    out = subprocess.run(
        ["ip", "-n", lab.router_ns, "-o", "link", "show", dev], capture_output=True, text=True, check=True
    ).stdout
    return int(out.split(":", 1)[0])


def test_v3_authpriv_resolves_ifname_to_the_kernel_ifindex(lab: NetLab) -> None:
    result = _poll(
        lab,
        V3,
        (_link(link_id="up", if_name=lab.data_if), _link(link_id="mgmt", if_index=_kernel_ifindex(lab, "mgmt0"))),
    )
    up, mgmt = result.stats
    assert (up.link_id, up.if_name, up.if_index) == ("up", lab.data_if, _kernel_ifindex(lab, lab.data_if))
    assert (mgmt.if_name, mgmt.oper_up, mgmt.speed_bps) == ("mgmt0", True, 10e9)
    assert up.out_bps is None and up.interval_s is None  # first poll: no rate yet
    assert mgmt.in_octets and mgmt.in_octets > 0 and mgmt.in_errors == 0
    assert result.unresolved == []


def test_wrong_v3_key_is_an_auth_failure(lab: NetLab) -> None:
    bad = Credentials("3", user=V3_USER, auth_key="not-the-key", priv_key=V3_PRIV)
    with pytest.raises(AgentError) as exc:
        _poll(lab, bad, (_link(link_id="up", if_name=lab.data_if),))
    assert exc.value.reason == "auth"


def test_unknown_v3_user_is_an_auth_failure(lab: NetLab) -> None:
    bad = Credentials("3", user="intruder", auth_key=V3_AUTH, priv_key=V3_PRIV)
    with pytest.raises(AgentError) as exc:
        _poll(lab, bad, (_link(link_id="up", if_name=lab.data_if),))
    assert exc.value.reason == "auth"


def test_wrong_community_times_out(lab: NetLab) -> None:
    # snmpd drops requests with an unknown community silently: all a poller sees is silence
    with pytest.raises(AgentError) as exc:
        _poll(lab, Credentials("2c", community="wrong"), (_link(link_id="up", if_name=lab.data_if),))
    assert exc.value.reason == "timeout"


def test_missing_credentials_reference_is_a_config_error(tmp_path: Path) -> None:
    settings = SnmpPollerSettings(
        inventory=REPO / "examples" / "inventory.yaml", credentials={"lab-ro": {"community": "public"}}
    )
    svc = SnmpPollerService(settings, inventory=load_inventory(settings.inventory))
    with pytest.raises(ConfigError) as exc:
        svc.start()
    assert str(exc.value) == (
        "router 'fra1-edge2': snmp credentials 'lab-v3' are not in the "
        "poller's settings (snmp.credentials; known: lab-ro)"
    )


def test_cli_poll_once(lab: NetLab, tmp_path: Path) -> None:
    inv = tmp_path / "inv.yaml"
    inv.write_text(
        yaml.safe_dump(
            {
                "pops": {
                    "lab1": {
                        "routers": {
                            "r1": {
                                "snmp": {"target": f"{lab.agent_addr}:1161", "version": "3", "credentials": "v3"},
                                "links": {
                                    "up": {"if_name": lab.data_if, "capacity": "10G"},
                                    "ghost": {"if_name": "nosuch0", "capacity": "1G"},
                                },
                            }
                        }
                    }
                }
            }
        )
    )
    config = tmp_path / "netpilot.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "snmp": {
                    "inventory": str(inv),
                    "credentials": {"v3": {"user": V3_USER, "auth_key": V3_AUTH, "priv_key": V3_PRIV}},
                }
            }
        )
    )
    out = subprocess.run(
        [sys.executable, "-m", "netpilot.cli", "snmp", "poll", "--once", "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"lab1 r1 up ifIndex={_kernel_ifindex(lab, lab.data_if)} {lab.data_if} up=True")
    assert lines[1] == "lab1 r1 ghost: interface not found on the agent"


def test_credentials_from_env_resolve_a_hyphenated_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    from netpilot.settings import load_settings
    from producers.linkstats.service import credentials_for

    monkeypatch.setenv("NETPILOT_SNMP__CREDENTIALS__LAB_RO__COMMUNITY", "from-env")
    settings = load_settings(SnmpPollerSettings)
    assert credentials_for(settings, "lab-ro", "2c", "r1") == Credentials("2c", community="from-env")
    with pytest.raises(ConfigError, match="need user, auth_key and priv_key"):
        credentials_for(settings, "lab-ro", "3", "r1")


def test_v3_polling_recovers_after_the_agent_restarts(lab: NetLab) -> None:
    # pysnmp keeps the agent's discovered engine state; with it, every request after a
    # restart timed out. The client drops its engine after a failure and rediscovers.
    lab.start_snmpd(1163)
    link = _link(link_id="up", if_name=lab.data_if)

    async def go() -> list[str]:
        client = SnmpClient(lab.agent_addr, 1163, V3, timeout=1.0)
        poller = RouterPoller("lab1", "r1", (link,), client)
        seen = []
        try:
            # let the agent live a few seconds, so its restart shows as sysUpTime going back
            # by more than the 2 s the rate rules tolerate as clock jitter
            await asyncio.sleep(3)
            await poller.poll()
            lab.kill_snmpd(1163)
            with pytest.raises(AgentError):
                await poller.poll()
            await asyncio.to_thread(lab.start_snmpd, 1163)
            result = await poller.poll()  # the first request after the restart
            seen.append(f"reset={result.stats[0].counter_reset}")
            await asyncio.sleep(1.1)
            result = await poller.poll()
            seen.append(f"rate={result.stats[0].out_bps is not None}")
        finally:
            client.close()
        return seen

    assert asyncio.run(go()) == ["reset=True", "rate=True"]
