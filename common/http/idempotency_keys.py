"""Safe retries: the Idempotency-Key request header (IETF httpapi draft
"The Idempotency-Key HTTP Header Field"), on every POST that isn't idempotent by
itself: those that create something, and adding stock.

    @blp.post("/orders")
    @idempotent(db, IdempotencyKey)      # above flask-smorest's decorators
    @blp.arguments(NewOrderSchema)
    @blp.response(201, OrderSchema)
    def place_order(new_order): ...      # adds rows; never commits

The decorated view never commits: this does, once, after the view has answered
(common/http/unit_of_work.py's rule), so the view's rows, and with a key the
key's record and the answer, are one transaction. What follows from that:

- The same key from the same user with the same request (method, path and body
  byte for byte) gets the first answer again, status and body, marked
  `Idempotent-Replayed: true`; nothing is done twice.
- A duplicate that arrives while the first is still running waits for it: its
  INSERT of the key queues behind the first's uncommitted one on the primary key,
  then finds the committed answer and replays it. If the first fails (any
  error rolls everything back, its key included), the duplicate runs as a new
  request. A wait longer than IDEMPOTENCY_WAIT_SECONDS answers 409 with Retry-After.
- The same key with another request is refused: 422.
- Only answers that created something (2xx) are kept; an error leaves nothing
  behind, so a retry after a 409 or a 503 is tried anew.
- Keys belong to a user (another user's identical key is another key) and
  expire after IDEMPOTENCY_KEY_TTL_SECONDS (24 h): a user's expired keys are
  deleted when that user next sends one, and everyone's by the relay's pruning
  (common/retention.py).
- Without the header the view runs as it always did, committed the same way.
"""

import hashlib
from datetime import datetime
from functools import wraps

from flask import Response, current_app, make_response, request
from flask_smorest import Blueprint, abort
from sqlalchemy import BigInteger, DateTime, Integer, String, Text, delete, func, select, update
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Mapped, mapped_column

from common.http.identity import current_user_id
from common.http.unit_of_work import finish

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
MAX_LENGTH = 255
# Answer headers that are part of the answer, and so replayed with it.
KEPT_HEADERS = ("ETag", "Location")
LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's lock_timeout expired
RETRY_SOON = {"Retry-After": "1"}

DOC = {
    "parameters": [
        {
            "in": "header",
            "name": HEADER,
            "required": False,
            "description": "Makes a retry safe: the same key with the same request answers the first answer "
            "again (with Idempotent-Replayed: true) instead of doing it twice. Up to 255 visible ASCII "
            'characters, optionally in double quotes ("…"). Per user; kept 24 hours.',
            "schema": {"type": "string", "minLength": 1, "maxLength": MAX_LENGTH + 2},
        }
    ],
    "responses": {
        "400": {"description": "A malformed Idempotency-Key"},
        "409": {"description": "A request with this Idempotency-Key is still running"},
        "422": {"description": "Invalid fields, or an Idempotency-Key used before for another request"},
    },
}


class IdempotencyKeyMixin:
    """Columns of a service's idempotency_keys table (`class IdempotencyKey(IdempotencyKeyMixin, db.Model)`)."""

    __tablename__ = "idempotency_keys"

    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    key: Mapped[str] = mapped_column(String(MAX_LENGTH), primary_key=True)
    # sha256 of method, path and body: what "the same request" means.
    fingerprint: Mapped[str] = mapped_column(String(64))
    # The answer, filled in by the transaction that inserted the row, before it
    # commits: a committed row always has one.
    status: Mapped[int | None] = mapped_column(Integer)
    body: Mapped[str | None] = mapped_column(Text)
    headers: Mapped[dict] = mapped_column(JSONB, default=dict)
    # Indexed for the pruning (common/retention.py).
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), index=True)


def _key() -> str | None:
    raw = request.headers.get(HEADER)
    if raw is None:
        return None
    # The draft's form is a structured-field string ("…"); a bare key is taken too.
    key = raw[1:-1] if len(raw) >= 2 and raw[0] == raw[-1] == '"' else raw
    if not 1 <= len(key) <= MAX_LENGTH or not all("\x21" <= char <= "\x7e" and char not in '"\\' for char in key):
        abort(400, message=f"{HEADER} must be 1 to {MAX_LENGTH} visible ASCII characters, without quotes inside.")
    return key


def _fingerprint() -> str:
    digest = hashlib.sha256(f"{request.method} {request.path}\n".encode())
    digest.update(request.get_data(cache=True))
    return digest.hexdigest()


def _claim(session, model, user_id: int, key: str, fingerprint: str, settings) -> bool:
    """True if this transaction is the first to hold the key; False if a committed
    request holds it (its answer is there to replay). Waits for one that is running."""
    table = model.__table__
    expired = func.now() - func.make_interval(0, 0, 0, 0, 0, 0, settings.idempotency_key_ttl_seconds)
    # How long to wait for a running duplicate: for this transaction only (is_local),
    # so it bounds the view's own lock waits too, which are short anyway.
    wait = f"{int(settings.idempotency_wait_seconds * 1000)}ms"
    session.execute(select(func.set_config("lock_timeout", wait, True)))
    session.execute(delete(table).where(table.c.user_id == user_id, table.c.created_at < expired))
    try:
        inserted = session.execute(
            insert(table)
            .values(user_id=user_id, key=key, fingerprint=fingerprint, headers={})
            .on_conflict_do_nothing()
            .returning(table.c.key)
        ).first()
    except OperationalError as error:
        if getattr(error.orig, "pgcode", None) != LOCK_NOT_AVAILABLE:
            raise  # the database is away: the usual 503
        session.rollback()
        abort(409, message=f"A request with this {HEADER} is still running; retry shortly.", headers=RETRY_SOON)
    return inserted is not None


def _replay(session, model, user_id: int, key: str, fingerprint: str) -> Response:
    table = model.__table__
    stored = session.execute(
        select(table.c.fingerprint, table.c.status, table.c.body, table.c.headers).where(
            table.c.user_id == user_id, table.c.key == key
        )
    ).one()
    session.rollback()
    if stored.fingerprint != fingerprint:
        abort(422, message=f"This {HEADER} was used for another request; use a new key for a new request.")
    response = Response(stored.body, status=stored.status, mimetype="application/json")
    response.headers.update(stored.headers)
    response.headers[REPLAYED] = "true"
    return response


def idempotent(db, model):
    """Decorate a creating POST view: commit its work, and honour Idempotency-Key."""

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            key = _key()
            session = db.session
            if key is None:
                response = make_response(view(*args, **kwargs))
                finish(session, response)
                return response
            user_id, fingerprint = current_user_id(), _fingerprint()
            settings = current_app.config["SETTINGS"]
            if not _claim(session, model, user_id, key, fingerprint, settings):
                return _replay(session, model, user_id, key, fingerprint)
            response = make_response(view(*args, **kwargs))
            if response.status_code >= 300:
                session.rollback()  # the key goes too: the next try runs anew
                return response
            table = model.__table__
            session.execute(
                update(table)
                .where(table.c.user_id == user_id, table.c.key == key)
                .values(
                    status=response.status_code,
                    body=response.get_data(as_text=True),
                    headers={name: response.headers[name] for name in KEPT_HEADERS if name in response.headers},
                )
            )
            session.commit()
            return response

        return Blueprint.doc(**DOC)(wrapper)

    return decorator
