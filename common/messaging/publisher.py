"""Publishing events to RabbitMQ a batch at a time, with publisher confirms.

A batch is sent in one go and its confirms are awaited once (the broker acks
several deliveries at a time), instead of one round trip per message: the
relay's cost per event falls with the batch. Messages are persistent JSON, so
a confirmed message survives a broker restart.
"""

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import msgspec
from amqp.exceptions import AMQPError
from kombu import Connection, Queue
from kombu.exceptions import KombuError

from common.messaging import topology

log = logging.getLogger(__name__)

# Everything that means "the broker is away or refused": the batch is kept for later.
BROKER_ERRORS = (KombuError, AMQPError, OSError)


class PublishFailed(Exception):
    """Not every message of the batch was confirmed; none may be taken as sent."""


@dataclass(frozen=True)
class Outgoing:
    event: dict
    routing_key: str
    headers: dict = field(default_factory=dict)


class Publisher:
    """One connection and channel in confirm mode, opened on first use (a socket
    must not be shared across a fork) and reopened after a failure. For one loop
    at a time: not thread-safe."""

    def __init__(self, amqp_url: str, declare: Sequence[Queue], confirm_timeout: float = 10.0):
        """`declare`: the queues to declare on connecting, every consumer's among
        them, so that no event meets an exchange without bindings (the shop's:
        common.events.queues.DECLARED)."""
        self.amqp_url = amqp_url
        self.declare = declare
        self.confirm_timeout = confirm_timeout
        self._connection: Connection | None = None
        self._channel = None
        self._published = 0  # the channel's delivery tags so far: 1, 2, ...
        self._unconfirmed: set[int] = set()
        self._refused = False

    def publish(self, messages: Sequence[Outgoing]) -> None:
        """Send every message, then wait until the broker confirmed them all.
        Raises PublishFailed (or a broker error) otherwise; the connection is then
        dropped and the next call starts afresh."""
        if not messages:
            return
        try:
            self._publish(messages)
        except BaseException:
            self.close()
            raise

    def _publish(self, messages: Sequence[Outgoing]) -> None:
        channel = self._open()
        for message in messages:
            event = message.event
            channel.basic_publish(
                channel.prepare_message(
                    msgspec.json.encode(event),
                    content_type="application/json",
                    content_encoding="utf-8",
                    headers=message.headers,
                    properties={"delivery_mode": 2, "message_id": event["event_id"], "type": event["type"]},
                ),
                exchange=topology.EVENTS.name,
                routing_key=message.routing_key,
            )
            self._published += 1
            self._unconfirmed.add(self._published)
        deadline = time.monotonic() + self.confirm_timeout
        while self._unconfirmed and not self._refused:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PublishFailed(f"no confirm within {self.confirm_timeout:.0f}s")
            try:
                self._connection.drain_events(timeout=remaining)
            except TimeoutError:
                continue
        if self._refused:
            raise PublishFailed("the broker refused (nacked) a message")

    def _open(self):
        if self._channel is None:
            self._connection = Connection(self.amqp_url, connect_timeout=5, heartbeat=0)
            self._connection.ensure_connection(max_retries=1)
            channel = self._connection.channel()
            # The queues first, so that no event meets an exchange without bindings.
            for queue in self.declare:
                queue(channel).declare()
            channel.confirm_select()
            channel.events["basic_ack"].add(self._on_ack)
            channel.events["basic_nack"].add(self._on_nack)
            self._channel, self._published, self._unconfirmed, self._refused = channel, 0, set(), False
        return self._channel

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        # One ack may confirm every tag up to its own; acks need not come in order.
        if multiple:
            self._unconfirmed = {tag for tag in self._unconfirmed if tag > delivery_tag}
        else:
            self._unconfirmed.discard(delivery_tag)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._refused = True

    def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            try:
                connection.release()
            except BROKER_ERRORS:  # already broken: nothing left to close
                pass
