"""What every event is, and how an event type is declared, built, read and evolved.

An event type (`EventType`) has its routing key (which is also its `type`), a
typed schema per `version`, and a constructor that checks the fields against
it, so no producer can send what its consumer would refuse. Every event is a JSON
object: event_id, type, version and occurred_at, then the fields of its type.
The shop's own event types are in common/events/contracts.py.

The schemas are msgspec Structs, not marshmallow schemas as the HTTP APIs use:
a worker decodes and checks every event it takes and builds every event it
announces, and msgspec does that in one pass in C, many times faster. Types are
strict: an id given as a string, a boolean or a float is refused.

How an event type evolves without breaking a consumer that is one release behind:
- Adding a field is compatible and keeps the version. Consumers ignore fields
  they don't know (Structs skip unknown keys), so an older consumer accepts the
  newer event; a newer consumer must give the field a default until every
  producer sends it.
- Anything else (removing, renaming or retyping a field, changing what one
  means) is a new version. Consumers are upgraded first: the new one accepts both
  versions (its EventType gets a Struct for each; `version` stays the old one,
  which producers write). Only then do producers switch (`version` moves on). An
  event of a version a consumer doesn't know is refused (dead-lettered, so
  `scripts/dlq requeue` can replay it once the consumer is upgraded), never
  guessed at.
"""

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated

import msgspec
from msgspec import Meta, Struct


class InvalidEvent(Exception):
    """The message can never be handled as it is: bad shape, unknown type or
    version, an order that doesn't exist. It goes to the dead-letter queue."""


class Event(Struct, kw_only=True, frozen=True):
    """What every event carries. Unknown fields are ignored (forward compatible)."""

    event_id: uuid.UUID
    type: str
    version: int
    occurred_at: Annotated[datetime, Meta(tz=True)]


class _Envelope(Struct):
    """Just enough of an event to know which schema reads the rest."""

    type: str = ""
    version: int = 0


@dataclass(frozen=True)
class EventType:
    routing_key: str
    version: int  # what producers write
    structs: dict[int, type[Event]] = field(repr=False, compare=False)  # every version consumers accept

    def new(self, **fields) -> Event:
        """A new event of this type with these fields, checked against its schema:
        a producer's mistake fails here, at its source, not in the consumer."""
        event = {
            "event_id": str(uuid.uuid4()),
            "type": self.routing_key,
            "version": self.version,
            "occurred_at": datetime.now(UTC),
            **fields,
        }
        try:
            return msgspec.convert(event, self.structs[self.version])
        except msgspec.ValidationError as exc:
            raise ValueError(f"not a valid {self.routing_key} event: {exc}") from None

    def decode(self, raw: bytes) -> Event:
        """A received message body as this type's schema reads it; InvalidEvent if it
        isn't one (not JSON, another type, a version not known, a field wrong)."""
        try:
            envelope = msgspec.json.decode(raw, type=_Envelope)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise InvalidEvent(f"not an event: {exc}") from None
        if envelope.type != self.routing_key:
            raise InvalidEvent(f"routed as {self.routing_key!r} but its type is {envelope.type!r}")
        struct = self.structs.get(envelope.version)
        if struct is None:
            raise InvalidEvent(f"{self.routing_key} version {envelope.version} is not one of {sorted(self.structs)}")
        try:
            return msgspec.json.decode(raw, type=struct)
        except msgspec.ValidationError as exc:
            raise InvalidEvent(str(exc)) from None


def payload(event: Event) -> dict:
    """The event as plain JSON data: what the outbox stores and the relay sends."""
    return msgspec.to_builtins(event)
