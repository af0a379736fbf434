"""``save_to_kafka``: every batch's records sent to a topic, at-least-once.

The producer (aiokafka, the ``kafka`` extra) is started on the first batch and stopped
with the context. A batch's output finishes when the broker acknowledged every record
(``acks="all"``), so a batch that completed is in the topic. The producer is idempotent
(``enable_idempotence=True``): a send that is retried after a lost acknowledgement is
written once. That does not span a crash: a batch that ran but was not committed runs
again after a restart and sends its records again, so the topic may hold a record
twice (at-least-once; Kafka transactions, which Spark does not use for DStreams either,
would be needed for more). Consumers that need exactly-once dedupe on the key and the
batch time, or on content.

A broker that does not implement idempotent producers (the InitProducerId request
fails) gets a plain producer instead, with a warning in the log. An unreachable broker
or a failed send fails the batch, which stops the context with the operator named.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Final, cast

from ._kafka import KafkaRecord, check_options, import_aiokafka, servers_text
from .sinks import Output

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence

    from .batch import Batch

__all__: list[str] = []

logger = logging.getLogger("asyncstream")

#: What the engine sets on the producer itself.
OWNED_PRODUCER_OPTIONS: Final = ("bootstrap_servers",)


def _default_value(record: object) -> bytes | None:
    if isinstance(record, bytes):
        return record
    if isinstance(record, str):
        return record.encode()
    if isinstance(record, KafkaRecord):
        return record.value
    msg = (
        f"save_to_kafka: the record {record!r} ({type(record).__name__}) is neither bytes, "
        "str nor a KafkaRecord; pass value= a function that turns a record into bytes"
    )
    raise TypeError(msg)


def _default_key(record: object) -> bytes | None:
    return record.key if isinstance(record, KafkaRecord) else None


class SaveToKafka(Output):
    """Send every record of each batch to ``topic``; the batch ends when all are acked."""

    kind = "save_to_kafka"

    def __init__(
        self,
        topic: str,
        *,
        bootstrap_servers: str | Sequence[str],
        key: Callable[[Any], bytes | None] | None,
        value: Callable[[Any], bytes | None] | None,
        producer_options: Mapping[str, Any] | None,
    ) -> None:
        if not isinstance(cast("object", topic), str) or not topic:
            msg = f"save_to_kafka: topic must be a topic name, got {topic!r}"
            raise TypeError(msg)
        options = check_options(producer_options, OWNED_PRODUCER_OPTIONS, "producer_options")
        import_aiokafka()
        super().__init__(f"save_to_kafka({topic})")
        self.topic = topic
        self.servers = servers_text(bootstrap_servers)
        self._bootstrap = bootstrap_servers
        self._key = key or _default_key
        self._value = value or _default_value
        self.user_fns = tuple(f for f in (key, value) if f is not None)
        self._explicit_idempotence = "enable_idempotence" in options
        self._options = {"enable_idempotence": True, "acks": "all", **options}
        self._producer: Any = None
        self.sent = 0

    def run(self, batch: Batch[Any]) -> Awaitable[None]:
        """Send the batch's records; what is returned completes when all are acked."""
        return self._send(batch)

    async def _send(self, batch: Batch[Any]) -> None:
        producer = self._producer or await self._start()
        key, value, topic = self._key, self._value, self.topic
        pending = [await producer.send(topic, value(r), key=key(r)) for r in batch]
        if pending:
            await asyncio.gather(*pending)
        self.sent += len(pending)

    async def _start(self) -> Any:
        aiokafka = import_aiokafka()
        producer = aiokafka.AIOKafkaProducer(bootstrap_servers=self._bootstrap, **self._options)
        try:
            await producer.start()
        except aiokafka.errors.KafkaConnectionError as exc:
            await producer.stop()
            msg = (
                f"save_to_kafka: cannot reach the Kafka broker at {self.servers} ({exc}); check "
                "that it runs and that bootstrap_servers is right"
            )
            raise ConnectionError(msg) from exc
        except aiokafka.errors.KafkaError as exc:
            await producer.stop()
            if self._explicit_idempotence or not self._options["enable_idempotence"]:
                raise
            logger.warning(
                "save_to_kafka(%s): the broker at %s refused an idempotent producer (%r); "
                "sending without idempotence, so a retried send may write a record twice",
                self.topic,
                self.servers,
                exc,
            )
            self._options["enable_idempotence"] = False
            producer = aiokafka.AIOKafkaProducer(bootstrap_servers=self._bootstrap, **self._options)
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
        self._producer = producer
        return producer

    async def shutdown(self) -> None:
        """Flush and stop the producer (the context stops)."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()
