"""``netpilot demo``: what `make demo` runs.

For now this is the foundation's smoke path (the full pipeline demo — simulator, collector,
streams, autopilot, sinks and a live view — is issue 8): start the local Kafka, create the
catalog's topics, produce one batch of flows, consume it back and print it.
"""

from __future__ import annotations

import time

import typer

app = typer.Typer(help="Run the demo.", invoke_without_command=True)


@app.callback()
def demo(flows_per_batch: int = typer.Option(5000, help="Flows in the demo batch."),
         keep_kafka: bool = typer.Option(True, help="Leave the broker running afterwards.")) -> None:
    """Smoke path: Kafka up, topics synced, one flow batch produced and consumed back."""
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from netpilot import catalog
    from netpilot.dev.kafka import LocalKafka
    from netpilot.kafka.admin import TopicAdmin
    from netpilot.kafka.consumer import BatchConsumer
    from netpilot.kafka.producer import KafkaProducer, ProducerOptions
    from netpilot.settings import KafkaSettings
    from netpilot.wire import flows

    console = Console()
    console.print("[bold]netpilot demo[/bold] (smoke path: the full pipeline demo lands with issue 8)")
    broker = LocalKafka()
    with console.status("starting Kafka 4.3.1 (the first run fetches it with Maven) ..."):
        info = broker.up()
    console.print(info.describe())
    kafka = KafkaSettings(bootstrap_servers=info.bootstrap)
    report = TopicAdmin(kafka).sync()
    console.print(f"topics: {len(report.created)} created, "
                  f"{len(catalog.ALL_TOPICS) - len(report.created)} already present")

    rng = np.random.default_rng(1)
    n = flows_per_batch
    now_ms = int(time.time() * 1000)
    rate = np.full(n, 1000, np.uint32)
    b = rng.integers(64, 1_500_000, n, dtype=np.uint64)
    p = np.maximum(1, b // 900).astype(np.uint64)
    table = flows.flow_table({
        "time_received": np.full(n, now_ms), "time_start": np.full(n, now_ms - 10_000), "time_end": np.full(n, now_ms),
        "flow_type": np.full(n, 3, np.uint8), "pop": "demo1", "router": "r1", "link_id": "demo1-r1:transit-1",
        "exporter": flows.ipv4_to_addr(np.full(n, 0xC0000201, np.uint32)),
        "dst_addr": flows.ipv4_to_addr(rng.integers(0xC6336400, 0xC63364FF, n, dtype=np.uint32)),
        "src_addr": flows.ipv4_to_addr(rng.integers(0xC0000200, 0xC00002FF, n, dtype=np.uint32)),
        "bytes": b, "packets": p, "sampling_rate": rate, "bytes_scaled": b * rate, "packets_scaled": p * rate,
        "ip_proto": np.full(n, 6, np.uint8), "dst_port": np.full(n, 443, np.uint16),
    })
    topic = kafka.topic(catalog.FLOWS)
    producer = KafkaProducer(kafka, ProducerOptions(compression="none"))
    value = flows.encode_flows(table)
    producer.produce(topic, value, key="demo1", headers=flows.headers())
    producer.flush()
    console.print(f"produced 1 batch of {n} flows ({len(value) / n:.1f} bytes/flow) to {topic}")

    consumer = BatchConsumer(kafka, f"netpilot-demo-{now_ms}", [topic])
    try:
        got = None
        deadline = time.time() + 30
        while got is None and time.time() < deadline:
            for m in consumer.poll_batch(100, 1.0):
                if m.key() == b"demo1" and m.value() == value:
                    got = m
        if got is None:
            raise typer.Exit(1)
        back = flows.decode_flows(got.value())
    finally:
        consumer.close()
    t = Table(title=f"consumed back from partition {got.partition()} offset {got.offset()}: first 5 of {back.num_rows} flows")
    for col in ("pop", "link_id", "src_addr", "dst_addr", "dst_port", "bytes", "sampling_rate", "bytes_scaled"):
        t.add_column(col)
    rows = back.slice(0, 5).to_pylist()
    for r in rows:
        t.add_row(r["pop"], r["link_id"], flows.addr_to_str(r["src_addr"]), flows.addr_to_str(r["dst_addr"]),
                  str(r["dst_port"]), str(r["bytes"]), str(r["sampling_rate"]), str(r["bytes_scaled"]))
    console.print(t)
    total = back.column("bytes_scaled").to_numpy().sum()
    console.print(f"batch total: {total * 8 / 10 / 1e9:.2f} Gbit/s over its 10 s window (sampling-corrected)")
    if not keep_kafka:
        broker.down()
        console.print("Kafka stopped")
    else:
        console.print("Kafka left running: `netpilot dev kafka status` / `netpilot dev kafka down`")
