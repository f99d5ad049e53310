"""Root of netpilot's exception tree.

    NetpilotError
    ├── ConfigError            bad configuration (exit code 2)
    ├── WireError              a message that cannot be decoded
    │   ├── WireVersionError   a schema or version this code does not know
    │   │   └── WireSchemaMismatch   the ``schema`` header names another schema than the topic's
    │   └── WireImplausibleTime     a timestamp too far in the future or too old to be true
    └── KafkaSetupError        the local/dev broker or topic sync failed

Each package adds its own subclasses in its ``errors.py``.
"""


class NetpilotError(Exception):
    """Base class of every error netpilot raises on purpose."""


class ConfigError(NetpilotError):
    """The configuration is invalid; the message says where and how to fix it."""


class WireError(NetpilotError):
    """A Kafka message value could not be decoded into its schema."""


class WireVersionError(WireError):
    """The message carries a schema name or version this code cannot read."""


class WireSchemaMismatch(WireVersionError):
    """The message's ``schema`` header names another schema (or major) than its topic's."""


class WireImplausibleTime(WireError):
    """A timestamp of the message is further in the future, or older, than the consumer's
    limits allow (``wire:`` settings): a broken clock or a hostile producer."""


class KafkaSetupError(NetpilotError):
    """Starting the dev broker, or reconciling topics, failed."""
