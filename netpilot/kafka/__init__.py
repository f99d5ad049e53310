"""confluent-kafka wrappers: connection settings live in netpilot.settings.KafkaSettings."""
