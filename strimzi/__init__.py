"""netpilot on Kubernetes with Strimzi (see docs/strimzi.md).

- :mod:`strimzi.render`: Kafka, node pools, KafkaTopics, KafkaUsers from the catalog;
  :mod:`strimzi.acls` the least-privilege ACLs; :mod:`strimzi.deploy` the Helm chart's
  per-workload facts (deploy/helm/netpilot, see docs/deploy.md).
- :mod:`strimzi.validate`: offline validation against the Strimzi 1.2.0 CRDs
  (:mod:`strimzi.schema` strict OpenAPI, :mod:`strimzi.cel` CEL rules, :mod:`strimzi.crds`).
- :mod:`strimzi.apply`: server-side apply with the kubernetes client, dry run, wait for Ready.
"""
