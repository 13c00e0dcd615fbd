"""Password hashing: Argon2id (argon2-cffi), memory-hard, with its recommended defaults.

Each hash (and each check) takes 64 MiB for its few tens of milliseconds. A
process does at most PASSWORD_HASHES_AT_ONCE of them at a time (its slots, made
by users.create_app), so its memory is bounded whatever the burst of sign-ups
and logins; a request that can't get a slot in time is told to come back (Busy).
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app

_hasher = PasswordHasher()

# Verified when the email is unknown, so a miss costs as much time as a wrong
# password and response times don't tell which emails are registered.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


class Busy(Exception):
    """Every hashing slot of this process stayed taken for the whole wait."""


def slots(hashes_at_once: int) -> threading.BoundedSemaphore:
    """The hashing slots of one app (app.extensions["password_slots"])."""
    return threading.BoundedSemaphore(hashes_at_once)


@contextmanager
def _slot() -> Iterator[None]:
    wait = current_app.config["SETTINGS"].password_hash_wait_seconds
    taken = current_app.extensions["password_slots"]
    if not taken.acquire(timeout=wait):
        raise Busy()
    try:
        yield
    finally:
        taken.release()


def hash_password(password: str) -> str:
    with _slot():
        return _hasher.hash(password)


def verify(stored_hash: str | None, password: str) -> bool:
    """True if `password` matches; always does the full work, even without a hash."""
    with _slot():
        try:
            return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
        except (VerificationError, InvalidHashError):  # a wrong password, or a hash we can't read
            return False


def needs_rehash(stored_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's."""
    return _hasher.check_needs_rehash(stored_hash)
