"""Settings of ``netpilot snmp poll`` (YAML section ``snmp:``, env NETPILOT_SNMP__*).

SNMP secrets live here, not in the inventory (which is published to Kafka); the inventory's
``snmp.credentials`` names an entry of ``credentials``. Example::

    snmp:
      inventory: examples/inventory.yaml
      credentials:
        lab-ro: {community: public}
        lab-v3: {user: netpilot, auth_protocol: sha256, auth_key: "...", priv_protocol: aes, priv_key: "..."}

or per variable: ``NETPILOT_SNMP__CREDENTIALS__LAB_RO__COMMUNITY=public`` (the name arrives
lowercased as ``lab_ro``; an inventory reference ``lab-ro`` finds it too).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from netpilot.settings import ComponentSettings


class CredentialSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    community: SecretStr | None = Field(None, description="SNMPv2c community")
    user: str | None = Field(None, description="SNMPv3 user (authPriv)")
    auth_protocol: Literal["md5", "sha", "sha224", "sha256", "sha384", "sha512"] = "sha256"
    auth_key: SecretStr | None = None
    priv_protocol: Literal["des", "aes", "aes192", "aes256"] = "aes"
    priv_key: SecretStr | None = None

    @model_validator(mode="after")
    def _complete(self) -> CredentialSettings:
        if self.user is not None and not (self.auth_key and self.priv_key):
            raise ValueError("an SNMPv3 user needs auth_key and priv_key (authPriv only)")
        if self.user is None and self.community is None:
            raise ValueError("set community (v2c) or user/auth_key/priv_key (v3)")
        return self


class SnmpPollerSettings(ComponentSettings):
    COMPONENT: ClassVar[str] = "snmp"

    inventory: Path = Field(Path("inventory.yaml"), description="the inventory YAML (routers, links)")
    interval_s: float = Field(10.0, gt=0, description="poll period per router")
    inventory_check_s: float = Field(
        10.0, gt=0, description="how often the inventory file is checked for changes (then reloaded)"
    )
    timeout_s: float = Field(2.0, gt=0, description="one SNMP request's timeout")
    backoff_initial_s: float = Field(1.0, gt=0, description="first retry delay after a failure")
    backoff_max_s: float = Field(60.0, gt=0, description="retry delay cap while an agent stays down")
    max_oids_per_request: int = Field(40, ge=1, le=200)
    rate_slack: float = Field(1.5, gt=1, description="a delta above speed x slack is a reset")
    credentials: dict[str, CredentialSettings] = Field(default_factory=dict)
