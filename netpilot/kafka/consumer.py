"""A batch consumer that commits only what the caller says it has processed.

Auto-commit and auto offset store are off: offsets move only through :meth:`commit`, which
the caller invokes after its side effect (insert, produce) succeeded. A crash between the
two replays the batch, so the side effect must be idempotent (the ClickHouse sink uses
insert deduplication tokens; the streams use Kafka transactions or idempotent upserts).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from netpilot.errors import NetpilotError
from netpilot.obs import client_recreations
from netpilot.obs.logging import get_logger, librdkafka_logger
from netpilot.settings import KafkaSettings

log = get_logger("netpilot.kafka.consumer")


class ConsumeError(NetpilotError):
    """A non-retriable consumer error."""


class DuplicateInstanceId(ConsumeError):
    """A static member was fenced too often: another live consumer uses its
    ``group.instance.id``, and recreating the client would only fence that one in turn."""


# Errors that no wait fixes: the process must stop and a person must look.
_FATAL_CODES = frozenset(
    {
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.SASL_AUTHENTICATION_FAILED,
        KafkaError._AUTHENTICATION,
        KafkaError.INVALID_GROUP_ID,
        KafkaError.INVALID_COMMIT_OFFSET_SIZE,
        KafkaError._INVALID_ARG,
    }
)


def is_retriable(exc: BaseException) -> bool:
    """Whether a Kafka call that raised ``exc`` may succeed if tried again later.

    A broker restart shows as coordinator, transport and time-out errors (``_WAIT_COORD``,
    ``NOT_COORDINATOR``, ``_TRANSPORT``, ``_TIMED_OUT`` ...), a rebalance as generation or
    membership errors: all pass with time. Only fatal errors and authorisation or
    configuration errors do not."""
    if not isinstance(exc, KafkaException) or not exc.args or not isinstance(exc.args[0], KafkaError):
        return False
    err: KafkaError = exc.args[0]
    return not err.fatal() and err.code() not in _FATAL_CODES


def is_fenced(err: KafkaError) -> bool:
    """Whether ``err`` says this static member was fenced: the broker gave its
    ``group.instance.id`` to a newer member. librdkafka turns that into a fatal error (code
    ``_FATAL`` with the broker's FENCED_INSTANCE_ID text; on a consumed error event
    ``fatal()`` even reads False) after which the client is unusable: only a new client can
    rejoin. Any other fatal error is not matched here and stays fatal."""
    if err.code() == KafkaError.FENCED_INSTANCE_ID:
        return True
    text = (err.str() or "").lower()
    return (err.fatal() or err.code() == KafkaError._FATAL) and ("fenced" in text or "fenced_instance_id" in text)


def fenced_exception(exc: BaseException) -> bool:
    """:func:`is_fenced` for an exception raised by a librdkafka call."""
    if not isinstance(exc, KafkaException) or not exc.args or not isinstance(exc.args[0], KafkaError):
        return False
    return is_fenced(exc.args[0])


def position(msg: Message) -> tuple[str, int, int]:
    """(topic, partition, offset) of a consumed record (librdkafka sets all three on every
    message that is not an error event)."""
    topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
    if topic is None or partition is None or offset is None:
        raise ConsumeError(f"message without a position: {topic}/{partition}@{offset}")
    return topic, partition, offset


@dataclass(frozen=True)
class ConsumerOptions:
    """Group membership is tuned for recovery (docs/recovery.md): a member that died
    silently (SIGKILL, a lost host) gives its partitions up after ``session_timeout_ms``;
    one stopped cleanly leaves the group in ``close()`` and its partitions move at once.
    6 s is the broker's default minimum (``group.min.session.timeout.ms``); heartbeats every
    second come from librdkafka's own thread, so a busy Python thread does not miss them, and
    a false expiry only costs a rebalance (the sink replays its open batches from the
    committed intents). The assignor is ``range``, not ``cooperative-sticky``: a consumer of
    several topics (the ClickHouse sink reads eight) scales out only if every member gets its
    share of *each* topic, which ``range`` does per topic, while ``cooperative-sticky``
    balances the total count and can hand one member every flows partition. All of these
    can be overridden through ``kafka.librdkafka``.

    ``group_instance_id`` (empty: dynamic membership) makes the consumer a static member: a
    process restarted with the same id takes its partitions back at once instead of after the
    dead one's session timeout. A static member fenced by the broker (seen after a broker
    restart) recreates its client; one fenced more than ``fence_limit`` times within
    ``fence_window_s`` stops with :class:`DuplicateInstanceId`, since two live processes
    with one id fence each other for ever. A fence within ``outage_grace_s`` of a broker
    error (transport, all brokers down ...) is not counted: after an outage librdkafka
    fences itself (a commit still carrying the member id its own rejoin replaced), seen
    twice in six broker restarts, and a rolling restart of the brokers must not look like
    a duplicate id. All fences, explained or not, are bounded by ``fence_limit_all`` in the
    same window (a broker that stays unreachable keeps reporting errors).

    A consumer out of its group (no member id: after a session time-out, until a rejoin
    succeeds) for longer than ``rejoin_timeout_s`` is recreated. librdkafka (seen with 2.16.0
    from confluent-kafka 2.16.1) can be left knowing no broker at all after a broker
    restart: a Metadata response answered by a broker fenced in its controlled shutdown
    lists no broker, so the last one is decommissioned, while the re-bootstrap its
    disconnection scheduled is cancelled and never tried again (librdkafka #5628). Such a
    client never reconnects; only a new one does. A new client costs a rejoin, as the
    session time-out already did; during a long outage it is recreated every
    ``rejoin_timeout_s``, which is harmless. 0: never.

    A subscribed topic that does not exist (a first install, before ``netpilot topics
    sync`` or the Strimzi Topic Operator made it: topics are never auto-created) is waited
    for ``missing_topic_wait_s``, with a WARNING every 30 s naming it and the fix; the
    consumer reads the topics that exist meanwhile and librdkafka picks the new one up
    within seconds of its creation. Past the wait it stops with :class:`ConsumeError`,
    so a typo or a forgotten sync still ends in a clear error rather than in silence.
    0: stop at once."""

    auto_offset_reset: str = "earliest"
    max_poll_interval_ms: int = 300_000
    session_timeout_ms: int = 6_000
    heartbeat_interval_ms: int = 1_000
    assignment_strategy: str = "range"
    fetch_max_bytes: int = 64 * 1024 * 1024
    max_partition_fetch_bytes: int = 16 * 1024 * 1024
    isolation_level: str = "read_committed"
    group_instance_id: str = ""
    fence_limit: int = 3
    fence_window_s: float = 300.0
    outage_grace_s: float = 60.0
    fence_limit_all: int = 12
    rejoin_timeout_s: float = 30.0
    missing_topic_wait_s: float = 300.0


MISSING_TOPIC_FIX = "create the catalog's topics: `netpilot topics sync`, or the Strimzi KafkaTopic CRs"


class BatchConsumer:
    def __init__(
        self,
        kafka: KafkaSettings,
        group_id: str,
        topics: Sequence[str],
        options: ConsumerOptions = ConsumerOptions(),
        on_assign: Callable[[Consumer, list[TopicPartition]], None] | None = None,
        on_revoke: Callable[[Consumer, list[TopicPartition]], None] | None = None,
    ) -> None:
        cfg = kafka.client_config()
        cfg.update(
            {
                "group.id": group_id,
                "enable.auto.commit": "false",
                "enable.auto.offset.store": "false",
                "auto.offset.reset": options.auto_offset_reset,
                "max.poll.interval.ms": str(options.max_poll_interval_ms),
                "session.timeout.ms": str(options.session_timeout_ms),
                "heartbeat.interval.ms": str(options.heartbeat_interval_ms),
                "partition.assignment.strategy": options.assignment_strategy,
                "fetch.max.bytes": str(options.fetch_max_bytes),
                "max.partition.fetch.bytes": str(options.max_partition_fetch_bytes),
                "isolation.level": options.isolation_level,
            }
        )
        if options.group_instance_id:
            cfg["group.instance.id"] = options.group_instance_id
        cfg.update(kafka.librdkafka)
        self.group_id = group_id
        self.topics = list(topics)
        self.instance_id: str = str(cfg.get("group.instance.id") or "")
        """Empty for a dynamic member."""
        self._options = options
        # librdkafka's own log lines go through the rate-limited stdlib logging, not raw stderr
        self._cfg = {**cfg, "logger": librdkafka_logger()}
        self._paused = 0  # nesting depth of pause()
        self._reapply_pause = False
        self._caller_on_assign = on_assign
        self._caller_on_revoke = on_revoke
        self._assigned: dict[tuple[str, int], TopicPartition] = {}
        """What the client was last given, so a recreation can revoke it on the caller's side."""
        self._fences: deque[float] = deque()
        """When counted fences happened (those not explained by a broker outage)."""
        self._all_fences: deque[float] = deque()
        self._trouble_at = float("-inf")
        """When the live client last reported a broker error (monotonic)."""
        self._generation = 0  # of the client, so a replaced one's late errors are ignored
        self.recreations = 0
        """How often the client was recreated after a fence (a gauge for tests and logs)."""
        self.stall_recreations = 0
        """How often the client was recreated after ``rejoin_timeout_s`` out of its group."""
        self._out_since: float | None = None
        """Since when polls have found the live client without a member id (None: not yet)."""
        self.missing_topics: list[str] = []
        """Subscribed topics the broker does not have, while they are waited for."""
        self._missing_since: float | None = None
        self._missing_checked = float("-inf")
        self._missing_logged = float("-inf")
        self._missing_seen = float("-inf")
        """When the broker last confirmed a subscribed topic missing (monotonic)."""
        self._consumer = self._new_client()
        self._live: Consumer | None = self._consumer
        """The client whose rebalance callbacks count (not one being closed after a fence)."""

    def _new_client(self) -> Consumer:
        self._generation += 1
        generation = self._generation
        consumer = Consumer({**self._cfg, "error_cb": lambda err: self._on_error(err, generation)})
        # Rebalance hooks let a batching caller drop what it buffered for partitions it loses.
        consumer.subscribe(self.topics, on_assign=self._on_assign, on_revoke=self._on_revoke)
        return consumer

    def _on_error(self, err: KafkaError, generation: int) -> None:
        """librdkafka's error callback (served by polls): notes when the broker was last in
        trouble, which explains a fence that follows (see ConsumerOptions)."""
        if generation == self._generation and not err.fatal() and err.code() != KafkaError._FATAL:
            self._trouble_at = time.monotonic()

    def recover_if_fenced(self, exc: BaseException) -> bool:
        """After an exception from a call on :attr:`raw`: if it says this static member was
        fenced, recreate the client (see :meth:`recreate_fenced`) and return True; the
        caller's partitions were revoked meanwhile (``on_revoke``)."""
        if not self.instance_id or not fenced_exception(exc):
            return False
        self.recreate_fenced(str(exc.args[0].str()))
        return True

    def recreate_fenced(self, reason: str) -> None:
        """Close the fenced client and subscribe with a new one under the same
        ``group.instance.id``: it rejoins and gets the member's partitions back.

        The caller's ``on_revoke`` is called first with everything the old client held
        (librdkafka does not call it for a fenced client): what the caller buffered is
        dropped and replayed from the committed offsets and intents, as after any
        revocation. Fenced more than ``fence_limit`` times within ``fence_window_s``, not
        counting fences that follow a broker error: another live process has the same id
        (each join of one fences the other), so :class:`DuplicateInstanceId` is raised
        instead of fencing it back for ever."""
        now = time.monotonic()
        after_outage = now - self._trouble_at <= self._options.outage_grace_s
        if not after_outage:
            self._fences.append(now)
        self._all_fences.append(now)
        for times in (self._fences, self._all_fences):
            while times and now - times[0] > self._options.fence_window_s:
                times.popleft()
        if len(self._fences) > self._options.fence_limit or len(self._all_fences) > self._options.fence_limit_all:
            raise DuplicateInstanceId(
                f"consumer {self.group_id}: static member group.instance.id={self.instance_id!r} was fenced "
                f"{len(self._all_fences)} times within {self._options.fence_window_s:.0f} s "
                f"({len(self._fences)} with no broker error before): another live consumer "
                f"uses the same group.instance.id; give each instance its own (last error: {reason})"
            )
        log.warning(
            "static member fenced; recreating the consumer",
            group=self.group_id,
            group_instance_id=self.instance_id,
            after_broker_error=after_outage,
            fences_in_window=len(self._fences),
            limit=self._options.fence_limit,
            error=reason[:300],
        )
        self._replace_client()
        self.recreations += 1
        client_recreations.count("consumer", "fenced")  # on every service's /metrics

    def _check_membership(self) -> bool:
        """Recreate the client once it has been out of its group for ``rejoin_timeout_s``
        (see ConsumerOptions): librdkafka may never rejoin on its own. Whether it did."""
        limit = self._options.rejoin_timeout_s
        if limit <= 0:
            return False
        if time.monotonic() - self._missing_seen < 10.0:
            # with none of its topics there, librdkafka does not join the group at all: no
            # member id is then no stall, and a new client would not change it. Only while
            # the broker itself says so: a client that cannot reach one stays watched.
            self._out_since = None
            return False
        now = time.monotonic()
        if self._consumer.memberid():
            self._out_since = None
        elif self._out_since is None:
            self._out_since = now
        elif now - self._out_since > limit:
            log.warning(
                "consumer out of its group too long; recreating it",
                group=self.group_id,
                out_for_s=round(now - self._out_since, 1),
                limit_s=limit,
            )
            self._replace_client()
            self.stall_recreations += 1
            client_recreations.count("consumer", "out_of_group")
            return True
        return False

    def _replace_client(self) -> None:
        """Close the live client and subscribe with a new one; the caller's ``on_revoke``
        gets what the old one held first."""
        old = self._consumer
        self._live = None
        lost = list(self._assigned.values())
        self._assigned.clear()
        if lost and self._caller_on_revoke is not None:
            self._caller_on_revoke(old, lost)
        try:
            old.close()  # a fenced client sends no LeaveGroup or commit, a stalled one has no member id
        except KafkaException as exc:
            log.info("closing the replaced consumer", error=str(exc)[:300])
        self._consumer = self._live = self._new_client()
        self._out_since = None
        self._reapply_pause = True

    def poll_batch(self, max_messages: int = 500, timeout: float = 1.0) -> list[Message]:
        """Up to ``max_messages`` messages; transport hiccups are skipped, fatal errors raise."""
        if self._reapply_pause:
            self._reapply_pause = False
            assigned = self._consumer.assignment()
            if assigned:
                (self._consumer.pause if self._paused else self._consumer.resume)(assigned)
        try:
            msgs = self._consumer.consume(num_messages=max_messages, timeout=timeout)
        except KafkaException as exc:
            if self.recover_if_fenced(exc):
                return []
            raise
        if self._check_membership():
            return []  # as after a fence: what the old client polled belongs to its revoked assignment
        self._check_missing_topics()
        out: list[Message] = []
        for m in msgs:
            err = m.error()
            if err is None:
                out.append(m)
            elif err.code() == KafkaError._PARTITION_EOF:
                continue
            elif self.instance_id and is_fenced(err):
                # The messages polled with it belong to the revoked assignment: none is returned.
                self.recreate_fenced(str(err.str()))
                return []
            elif err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART and self._options.missing_topic_wait_s > 0:
                if self._missing_since is None:
                    self._missing_since = time.monotonic()
                    self._missing_checked = float("-inf")  # which ones: asked at the next poll
                continue
            elif (
                err.fatal()
                or err.code() == KafkaError._FATAL
                or err.code()
                in (
                    KafkaError.UNKNOWN_TOPIC_OR_PART,
                    KafkaError.TOPIC_AUTHORIZATION_FAILED,
                    KafkaError.GROUP_AUTHORIZATION_FAILED,
                )
            ):
                hint = ""
                if err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    # Topics are never auto-created: the catalog's settings come only from a sync.
                    hint = f" ({MISSING_TOPIC_FIX})"
                raise ConsumeError(f"consumer {self.group_id}: {err.name()}: {err.str()}{hint}")
        return out

    def _check_missing_topics(self) -> None:
        """While a subscribed topic is missing: which ones (every 2 s), a WARNING every 30 s,
        and ConsumeError once ``missing_topic_wait_s`` has passed (see ConsumerOptions)."""
        if self._missing_since is None:
            return
        now = time.monotonic()
        if now - self._missing_checked < 2.0:
            return
        self._missing_checked = now
        try:
            topics = self._consumer.list_topics(timeout=5).topics
        except KafkaException:
            return  # the broker is away: the wait goes on, polls report the outage
        self.missing_topics = sorted(t for t in self.topics if t not in topics or topics[t].error is not None)
        waited = now - self._missing_since
        if self.missing_topics:
            self._missing_seen = now
        else:
            log.info("subscribed topics exist now", group=self.group_id, waited_s=round(waited, 1))
            self._missing_since = None
            self._missing_logged = self._missing_seen = float("-inf")
            return
        limit = self._options.missing_topic_wait_s
        if waited > limit:
            raise ConsumeError(
                f"consumer {self.group_id}: UNKNOWN_TOPIC_OR_PART: subscribed topics missing for "
                f"{waited:.0f} s: {', '.join(self.missing_topics)} ({MISSING_TOPIC_FIX})"
            )
        if now - self._missing_logged >= 30.0:
            self._missing_logged = now
            log.warning(
                "subscribed topics missing; waiting for them",
                group=self.group_id,
                topics=self.missing_topics,
                waited_s=round(waited, 1),
                limit_s=limit,
                fix=MISSING_TOPIC_FIX,
            )

    def commit(self, messages: Iterable[Message]) -> None:
        """Synchronously commit the offsets after the given messages (per partition max+1)."""
        offsets: dict[tuple[str, int], int] = {}
        for m in messages:
            topic, partition, offset = position(m)
            k = (topic, partition)
            offsets[k] = max(offsets.get(k, -1), offset + 1)
        if not offsets:
            return
        tps = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        try:
            self._consumer.commit(offsets=tps, asynchronous=False)
        except KafkaException as exc:
            err = exc.args[0]
            if getattr(err, "code", lambda: None)() == KafkaError._NO_OFFSET:
                return
            if self.recover_if_fenced(exc):
                return  # as after a revocation: the next owner goes on from the last commit
            raise

    def assignment(self) -> list[TopicPartition]:
        return self._consumer.assignment()

    def pause(self) -> None:
        """Stop fetching (the caller waits on a side effect) while staying in the group.
        Nests: consumption resumes with the last matching :meth:`resume`."""
        self._paused += 1
        self._consumer.pause(self._consumer.assignment())

    def resume(self) -> None:
        self._paused = max(0, self._paused - 1)
        if not self._paused:
            self._consumer.resume(self._consumer.assignment())

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if consumer is not self._live:
            return  # a late callback of a client already replaced
        for tp in partitions:
            self._assigned[(tp.topic, tp.partition)] = TopicPartition(tp.topic, tp.partition)
        # A partition keeps librdkafka's pause flag across a revoke and a new assignment:
        # one lost while paused (the session expired in a broker outage) would come back
        # paused for good. The next poll, once the client has applied the assignment, makes
        # every assigned partition follow this consumer's state.
        self._reapply_pause = True
        if self._caller_on_assign is not None:
            self._caller_on_assign(consumer, partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if consumer is not self._live:
            return
        for tp in partitions:
            self._assigned.pop((tp.topic, tp.partition), None)
        if self._caller_on_revoke is not None:
            self._caller_on_revoke(consumer, partitions)

    def lag(self) -> dict[tuple[str, int], int]:
        """Messages between the committed offset and the end, per assigned partition."""
        out: dict[tuple[str, int], int] = {}
        assigned = self._consumer.assignment()
        if not assigned:
            return out
        for tp in self._consumer.committed(assigned, timeout=10):
            lo, hi = self._consumer.get_watermark_offsets(tp, timeout=10, cached=False)
            pos = tp.offset if tp.offset >= 0 else lo
            out[(tp.topic, tp.partition)] = max(0, hi - pos)
        return out

    def close(self) -> None:
        self._consumer.close()

    @property
    def raw(self) -> Consumer:
        return self._consumer
