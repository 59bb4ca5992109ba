"""Where ``aurora_setup --dir DIR`` puts each file, and which accounts exist.

One directory per consumer, so that a container mounts only its own (compose.yaml mounts
``DIR/bridge`` into the bridge, ``DIR/mosquitto`` into the broker, and so on)::

    DIR/ca/ca.key ca.crt                       the CA; its key never leaves this directory
    DIR/mosquitto/mosquitto.conf acl passwd    what the broker reads (0640 root:mosquitto)
                 ca.crt server.crt server.key
                 healthcheck/mosquitto_sub     options for the broker's healthcheck client
    DIR/<account>/password ca.crt              one per MQTT account
    DIR/web/ui-password                        the web AID tool's login password
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

# Every MQTT user in mosquitto/acl. Tools and services connect with client ids "<user>-<random>".
MQTT_ACCOUNTS: Final = ("bridge", "fetch", "web", "homeassistant", "admin", "healthcheck")
# Accounts used by the suite's own containers: their directories go to the service user.
SERVICE_ACCOUNTS: Final = ("bridge", "fetch", "web")
WEB_UI_SECRET: Final = "ui-password"

# The paths the repository's mosquitto.conf names (inside the broker container).
CONTAINER_BROKER_DIR: Final = "/etc/aurora/mosquitto"
CONTAINER_DATA_DIR: Final = "/mosquitto/data"


@dataclass(frozen=True, slots=True)
class Layout:
    """The paths below one setup directory."""

    root: Path

    @property
    def ca_dir(self) -> Path:
        return self.root / "ca"

    @property
    def ca_key(self) -> Path:
        return self.ca_dir / "ca.key"

    @property
    def ca_cert(self) -> Path:
        return self.ca_dir / "ca.crt"

    @property
    def broker_dir(self) -> Path:
        return self.root / "mosquitto"

    @property
    def broker_conf(self) -> Path:
        return self.broker_dir / "mosquitto.conf"

    @property
    def acl(self) -> Path:
        return self.broker_dir / "acl"

    @property
    def password_file(self) -> Path:
        """mosquitto's password file (hashes), not a secret of one account."""
        return self.broker_dir / "passwd"

    @property
    def server_cert(self) -> Path:
        return self.broker_dir / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.broker_dir / "server.key"

    @property
    def healthcheck_dir(self) -> Path:
        """``XDG_CONFIG_HOME`` for the broker healthcheck's ``mosquitto_sub``."""
        return self.broker_dir / "healthcheck"

    def account_dir(self, account: str) -> Path:
        return self.root / account

    def password(self, account: str) -> Path:
        """The file holding the account's clear-text MQTT password."""
        return self.account_dir(account) / "password"

    def account_ca(self, account: str) -> Path:
        return self.account_dir(account) / "ca.crt"

    @property
    def web_ui_password(self) -> Path:
        return self.account_dir("web") / WEB_UI_SECRET
