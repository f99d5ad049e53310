"""The KafkaUser ACLs enforced by a real Kafka 4.3.1 (KRaft, StandardAuthorizer, SCRAM):
each component can do exactly its catalog work with netpilot's own idempotent producer, and
is refused outside it.

The broker is the project's LocalKafka with an extra SASL_PLAINTEXT/SCRAM-SHA-512 listener
and the authorizer on. The test does what Strimzi's User Operator does with users.yaml:
a SCRAM credential per KafkaUser and its ACLs for principal ``User:<name>``. (mTLS users get
the principal ``User:CN=<name>`` from Strimzi with the same ACLs; here every user logs in
with SCRAM, which changes only the principal string.)
"""

from __future__ import annotations

import secrets
import socket
import uuid
from collections.abc import Iterator

import pytest
import yaml
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from netpilot import catalog
from netpilot.catalog import Component
from netpilot.dev.kafka import LocalKafka
from netpilot.kafka.producer import DeliveryError, KafkaProducer, ProducerOptions
from netpilot.settings import KafkaSettings
from strimzi.acls import FAUST_COMPONENTS, faust_prefix
from strimzi.render import MANIFESTS_DIR, user_name


class SecuredKafka(LocalKafka):
    """LocalKafka + a SCRAM listener on ``sasl_port`` + StandardAuthorizer. The PLAINTEXT
    listener (health checks, admin, controller) is the super user ``User:ANONYMOUS``."""

    sasl_port: int

    def _write_config(self) -> None:
        super()._write_config()
        path = self.state_dir / "server.properties"
        props = dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
        props["listeners"] += f",SASL_PLAINTEXT://127.0.0.1:{self.sasl_port}"
        props["advertised.listeners"] += f",SASL_PLAINTEXT://127.0.0.1:{self.sasl_port}"
        props["listener.security.protocol.map"] += ",SASL_PLAINTEXT:SASL_PLAINTEXT"
        props.update(
            {
                "sasl.enabled.mechanisms": "SCRAM-SHA-512",
                "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule required;",  # noqa: E501
                "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                "super.users": "User:ANONYMOUS",
                "allow.everyone.if.no.acl.found": "false",
            }
        )
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))


pytestmark = pytest.mark.kafka  # a broker of its own, with SASL and ACLs


def _free_port_run(n: int) -> int:
    """A port p with p..p+n-1 all free (LocalKafka uses port and port+1)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + n < 65535 and all(_free(base + i) for i in range(n)):
            return base
    raise RuntimeError("no free port range")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


_ACL_OPS = {
    "Read": AclOperation.READ,
    "Write": AclOperation.WRITE,
    "Describe": AclOperation.DESCRIBE,
    "Create": AclOperation.CREATE,
}
_RES = {"topic": ResourceType.TOPIC, "group": ResourceType.GROUP, "transactionalId": ResourceType.TRANSACTIONAL_ID}
_PATTERN = {"literal": ResourcePatternType.LITERAL, "prefix": ResourcePatternType.PREFIXED}


def bindings(user: dict) -> list[AclBinding]:
    """users.yaml ACLs as Kafka AclBindings, as Strimzi's User Operator creates them."""
    principal = f"User:{user['metadata']['name']}"
    out = []
    for acl in user["spec"]["authorization"]["acls"]:
        res = acl["resource"]
        for op in acl["operations"]:
            out.append(
                AclBinding(
                    _RES[res["type"]],
                    res["name"],
                    _PATTERN[res["patternType"]],
                    principal,
                    "*",
                    _ACL_OPS[op],
                    AclPermissionType.ALLOW,
                )
            )
    return out


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    port = _free_port_run(3)
    broker = SecuredKafka(tmp_path_factory.mktemp("secured-kafka"), port=port)
    broker.sasl_port = port + 2
    broker.up()
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        topics = [NewTopic(t.name, 1, 1) for t in catalog.ALL_TOPICS]
        for fut in admin.create_topics(topics).values():
            fut.result(timeout=30)
        users = [d for d in yaml.safe_load_all((MANIFESTS_DIR / "users.yaml").read_text()) if d]
        passwords = {u["metadata"]["name"]: secrets.token_urlsafe(16) for u in users}
        upserts = [
            UserScramCredentialUpsertion(name, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), pw.encode())
            for name, pw in passwords.items()
        ]
        for fut in admin.alter_user_scram_credentials(upserts).values():
            fut.result(timeout=30)
        for fut in admin.create_acls([b for u in users for b in bindings(u)]).values():
            fut.result(timeout=30)
        yield {"broker": broker, "admin": admin, "passwords": passwords}
    finally:
        broker.down(wipe=True)


def settings_for(secured: dict, component: Component) -> KafkaSettings:
    name = user_name(component)
    return KafkaSettings(
        bootstrap_servers=f"127.0.0.1:{secured['broker'].sasl_port}",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username=name,
        sasl_password=secured["passwords"][name],
        client_id=name,
        librdkafka={"log_level": "0"},
    )


def produce_one(kafka: KafkaSettings, topic: str, **options: object) -> None:
    producer = KafkaProducer(kafka, ProducerOptions(linger_ms=0, **options))
    try:
        producer.produce(topic, b"acl-test", key="pop1")
        producer.flush(timeout=20)
    finally:
        producer.close(timeout=5)


def read_and_commit(kafka: KafkaSettings, topic: str, group: str) -> None:
    consumer = Consumer(
        {**kafka.client_config(), "group.id": group, "enable.auto.commit": "false", "auto.offset.reset": "earliest"}
    )
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        msg = consumer.poll(15)
        assert msg is not None, f"nothing read from {topic}"
        if msg.error():
            raise KafkaException(msg.error())
        consumer.commit(message=msg, asynchronous=False)
    finally:
        consumer.close()


def seed(secured: dict, topic: str) -> None:
    """One message on the topic, written by the super user."""
    produce_one(KafkaSettings(bootstrap_servers=secured["broker"].bootstrap, librdkafka={"log_level": "0"}), topic)


@pytest.mark.parametrize("component", list(Component), ids=lambda c: c.value)
def test_component_can_do_its_catalog_work(secured: dict, component: Component) -> None:
    kafka = settings_for(secured, component)
    for topic in catalog.topics_produced_by(component):
        produce_one(kafka, topic.name)  # idempotent, acks=all: no IdempotentWrite needed
    for topic in catalog.topics_consumed_by(component):
        seed(secured, topic.name)
        read_and_commit(kafka, topic.name, catalog.consumer_group(component))


@pytest.mark.parametrize("component", list(Component), ids=lambda c: c.value)
def test_component_is_refused_outside_its_catalog_work(secured: dict, component: Component) -> None:
    kafka = settings_for(secured, component)
    produced = {t.name for t in catalog.topics_produced_by(component)}
    other = next(t for t in catalog.ALL_TOPICS if t.name not in produced)
    with pytest.raises(DeliveryError, match="TOPIC_AUTHORIZATION_FAILED"):
        produce_one(kafka, other.name)
    consumed = catalog.topics_consumed_by(component)
    if consumed:
        # OffsetFetch for a group that is not its own (what a consumer does at start-up)
        request = ConsumerGroupTopicPartitions("netpilot-someone-else", [TopicPartition(consumed[0].name, 0)])
        admin = AdminClient(kafka.client_config())
        future = admin.list_consumer_group_offsets([request])["netpilot-someone-else"]
        with pytest.raises(KafkaException, match="GROUP_AUTHORIZATION_FAILED"):
            future.result(timeout=30)


@pytest.mark.parametrize("component", sorted(FAUST_COMPONENTS), ids=lambda c: c.value)
def test_faust_app_can_create_internal_topics_and_use_transactions(secured: dict, component: Component) -> None:
    kafka = settings_for(secured, component)
    prefix = faust_prefix(component)
    admin = AdminClient(kafka.client_config())
    changelog = f"{prefix}windows-{uuid.uuid4().hex[:6]}-changelog"
    admin.create_topics([NewTopic(changelog, 1, 1)])[changelog].result(timeout=30)
    produce_one(kafka, changelog)
    outside = f"netpilot-other-{uuid.uuid4().hex[:6]}-changelog"
    with pytest.raises(KafkaException, match="TOPIC_AUTHORIZATION_FAILED"):
        admin.create_topics([NewTopic(outside, 1, 1)])[outside].result(timeout=30)
    # faust's exactly-once transactional ids: "<app id>-<group>-<partition>"
    group = catalog.consumer_group(component)
    allowed = Producer({**kafka.client_config(), "transactional.id": f"{prefix}{group}-0"})
    allowed.init_transactions(20)
    allowed.begin_transaction()
    allowed.produce(changelog, b"in-a-transaction")
    allowed.commit_transaction(20)
    refused = Producer({**kafka.client_config(), "transactional.id": "netpilot-other-0"})
    with pytest.raises(KafkaException, match="TRANSACTIONAL_ID_AUTHORIZATION_FAILED"):
        refused.init_transactions(20)
