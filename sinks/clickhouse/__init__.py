"""ClickHouse sink: schema migrations and the exactly-once-effect Kafka -> ClickHouse writer."""
