"""Pure flow decoders: exporter datagrams in, numpy columns (flows/1 names) out.

Nothing here imports Kafka, Prometheus or logging: drops are *returned* as counts by
reason and the service wraps them into metrics (goflow2's decoders/ vs metrics/ split).
The front door is :class:`~producers.collector.decode.decoder.Decoder`.
"""
