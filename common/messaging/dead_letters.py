"""Inspect and requeue dead-lettered messages.

    python -m common.messaging.dead_letters list                 # each: id, type, order, from where, why, body
    python -m common.messaging.dead_letters requeue [--id ID …]  # send back to where it came from (all, or these ids)

(scripts/dlq runs this against the stack, natively or in docker compose.)
A dead-lettered message keeps RabbitMQ's x-death header: the queue it died in,
why (rejected: undecodable or invalid; delivery_limit: failed too often), and
the exchange and routing key it was first published with. Requeueing republishes
it there with confirms, then removes it from the dead-letter queue, so a message
is never in neither place.
"""

import argparse
import json
import sys

from kombu import Connection

from common.messaging import topology
from common.settings import Settings


def _origin(message) -> tuple[str, str, str, str]:
    """(queue, reason, exchange, routing key) from the newest x-death entry."""
    deaths = message.headers.get("x-death") or [{}]
    death = deaths[0]
    routing_keys = death.get("routing-keys") or [message.delivery_info.get("routing_key", "")]
    return death.get("queue", "?"), death.get("reason", "?"), death.get("exchange", ""), routing_keys[0]


def _concerns(body: str) -> tuple[str, object]:
    """(event type, order id) as the body says them, for the operator who must
    decide what to do with the order; ("?", None) where it can't be read."""
    try:
        event = json.loads(body)
    except ValueError:  # undecodable: the body below is all there is
        return "?", None
    if not isinstance(event, dict):
        return "?", None
    return str(event.get("type", "?")), event.get("order_id")


def _describe(message) -> tuple[str, object]:
    """The message in two lines, and the order it concerns (None if it names none)."""
    queue, reason, _, routing_key = _origin(message)
    body = message.body if isinstance(message.body, str) else message.body.decode("utf-8", "replace")
    ident = message.properties.get("message_id") or "(no id)"
    event_type, order_id = _concerns(body)
    return (
        f"{ident}  {event_type}  order={order_id if order_id is not None else '?'}  queue={queue}  "
        f"reason={reason}  routing_key={routing_key}\n    {body[:300]}"
    ), order_id


def _take_all(channel):
    """Every message now in the dead-letter queue, unacked (so still owned by it)."""
    queue = topology.DEAD_LETTER_QUEUE(channel)
    queue.declare()
    messages = []
    while (message := queue.get(no_ack=False)) is not None:
        messages.append(message)
    return messages


def list_messages(connection: Connection) -> int:
    with connection.channel() as channel:
        messages = _take_all(channel)
        orders = []
        for message in messages:
            text, order_id = _describe(message)
            print(text)
            if order_id is not None and order_id not in orders:
                orders.append(order_id)
        print(f"{len(messages)} dead-lettered message(s)")
        if orders:
            print(f"orders they concern: {', '.join(map(str, orders))}")
        # Closing the channel without acking returns them all to the queue.
    return 0


def requeue(connection: Connection, ids: set[str]) -> int:
    done = 0
    with connection.channel() as channel:
        producer = connection.Producer(channel=channel)
        for message in _take_all(channel):
            if ids and message.properties.get("message_id") not in ids:
                continue
            _, _, exchange, routing_key = _origin(message)
            # A requeued message starts a new count of retries (common/messaging/consumer.py).
            headers = {k: v for k, v in message.headers.items() if k not in ("x-death", topology.RETRIES_HEADER)}
            producer.publish(
                message.body,
                exchange=exchange,
                routing_key=routing_key,
                content_type=message.content_type,
                content_encoding=message.content_encoding,
                headers={**headers, "x-requeued": int(headers.get("x-requeued", 0)) + 1},
                message_id=message.properties.get("message_id"),
                type=message.properties.get("type"),
                delivery_mode="persistent",
            )
            message.ack()  # only after the broker confirmed the republish
            done += 1
            print(
                f"requeued {message.properties.get('message_id') or '(no id)'} "
                f"to {exchange or '(default)'}/{routing_key}"
            )
    print(f"{done} message(s) requeued")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m common.messaging.dead_letters", description=__doc__.splitlines()[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="show every dead-lettered message")
    requeue_parser = commands.add_parser("requeue", help="send messages back where they came from")
    requeue_parser.add_argument("--id", action="append", default=[], help="only this message id (repeatable)")
    args = parser.parse_args(argv)
    # Any service's settings: they share the broker.
    url = Settings.from_env("products").amqp_url
    with Connection(url, transport_options={"confirm_publish": True}) as connection:
        if args.command == "list":
            return list_messages(connection)
        return requeue(connection, set(args.id))


if __name__ == "__main__":
    sys.exit(main())
