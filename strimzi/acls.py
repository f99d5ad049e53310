"""Least-privilege Kafka ACLs per component, derived from the topic catalog.

What each rule is for (Kafka 4.x authorization, operations per API):

- produce to a topic: ``Write`` + ``Describe`` on that topic (literal). Idempotent
  producers (netpilot's ``KafkaProducer`` is idempotent, acks=all) need no cluster ACL:
  since Kafka 3.0 (KIP-679) ``InitProducerId`` without a transactional id is allowed to
  a principal that has ``Write`` on any topic; ``IdempotentWrite`` on the cluster is
  deprecated and not granted.
- consume a topic: ``Read`` + ``Describe`` on the topic and ``Read`` + ``Describe`` on the
  component's consumer group (:func:`netpilot.catalog.consumer_group`), literal.
  ``Read`` on the group covers Join/Sync/Heartbeat/OffsetCommit; ``Describe`` covers
  FindCoordinator/OffsetFetch (Read implies Describe in Kafka; it is listed so the ACL
  list reads like the catalog).
- Faust apps (streams, autopilot): the Faust app id is the component's consumer group,
  so everything Faust names itself starts with ``<group>-``:
  changelog topics ``<app id>-<table>-changelog``, repartition and agent channel topics
  ``<app id>-<agent>``, the leader topic ``<app id>-__assignor-__leader`` and, with
  exactly-once processing, transactional ids ``<app id>-<group>-<partition>``
  (faust/transport/consumer.py). One *prefix* ACL per resource type covers them:
  topics ``Create, Describe, Read, Write`` (Faust creates its internal topics itself),
  transactional ids ``Write, Describe``. :data:`FAUST_COMPONENTS` is the list; the
  streams/autopilot code must use ``consumer_group(component)`` as the Faust app id.
- Nothing else: no ``*`` resource, no cluster ACL, no prefix ACL on catalog topics.
"""

from __future__ import annotations

from dataclasses import dataclass

from netpilot import catalog
from netpilot.catalog import Component

FAUST_COMPONENTS: frozenset[Component] = frozenset({Component.STREAMS, Component.AUTOPILOT})
"""Components that run as Faust apps and need internal-topic and transactional-id ACLs."""

PRODUCE_OPS = ("Write", "Describe")
CONSUME_OPS = ("Read", "Describe")
GROUP_OPS = ("Read", "Describe")
INTERNAL_TOPIC_OPS = ("Create", "Describe", "Read", "Write")
TRANSACTIONAL_ID_OPS = ("Write", "Describe")


@dataclass(frozen=True, order=True)
class Acl:
    """One allow rule as Strimzi's ``KafkaUser.spec.authorization.acls[]`` spells it."""

    resource_type: str  # topic | group | transactionalId | cluster
    name: str
    pattern_type: str  # literal | prefix
    operations: tuple[str, ...]

    def to_cr(self) -> dict:
        return {
            "resource": {"type": self.resource_type, "name": self.name, "patternType": self.pattern_type},
            "operations": list(self.operations),
        }


def faust_prefix(component: Component) -> str:
    """The name prefix of every topic and transactional id the component's Faust app owns."""
    return f"{catalog.consumer_group(component)}-"


def acls_for(component: Component, topic_prefix: str = "") -> tuple[Acl, ...]:
    """Exactly what ``component`` needs according to the catalog, sorted and de-duplicated."""
    acls: list[Acl] = []
    for topic in catalog.topics_produced_by(component):
        acls.append(Acl("topic", topic_prefix + topic.name, "literal", PRODUCE_OPS))
    consumed = catalog.topics_consumed_by(component)
    for topic in consumed:
        acls.append(Acl("topic", topic_prefix + topic.name, "literal", CONSUME_OPS))
    if consumed or component in FAUST_COMPONENTS:
        acls.append(Acl("group", catalog.consumer_group(component), "literal", GROUP_OPS))
    if component in FAUST_COMPONENTS:
        prefix = faust_prefix(component)
        acls.append(Acl("topic", prefix, "prefix", INTERNAL_TOPIC_OPS))
        acls.append(Acl("transactionalId", prefix, "prefix", TRANSACTIONAL_ID_OPS))
    return tuple(sorted(_merge(acls)))


def _merge(acls: list[Acl]) -> list[Acl]:
    """One rule per resource: a component that produces and consumes the same topic
    (the collector and its template topic) gets Write+Read+Describe in a single entry."""
    merged: dict[tuple[str, str, str], list[str]] = {}
    for acl in acls:
        ops = merged.setdefault((acl.resource_type, acl.name, acl.pattern_type), [])
        ops.extend(op for op in acl.operations if op not in ops)
    order = ("Create", "Read", "Write", "Describe")
    return [Acl(t, n, p, tuple(sorted(ops, key=order.index))) for (t, n, p), ops in merged.items()]
