"""Schema fields the services share.

Numbers are JSON numbers. A price or a quantity sent as a string is refused, not
converted: Python's int() and Decimal() take "1_000", " 5 " and digits of other
scripts ("١٢"), so a string that looks like one number to a client's validator
can be another to ours. Query parameters, which can only be strings, are held
to plain ASCII digits for the same reason.

This module sits at the top of common/, not in common/http/, because the event
contracts (common/events/contracts.py) hold ids to the same MAX_ID.
"""

import re
import unicodedata
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

import marshmallow as ma

CENT = Decimal("0.01")
# Largest value a NUMERIC(12, 2) column holds; anything above is refused at the door.
MAX_MONEY = Decimal("9999999999.99")
# Database ids are BIGINT identities.
MAX_ID = 2**63 - 1


class Money(ma.fields.Decimal):
    """An exact amount with at most two decimals.

    Stored as NUMERIC, loaded as Decimal (never through binary floating point), and
    written to JSON as a number with two decimals at most (249.99, not "249.99" or
    249.98999). The float conversion on the way out is exact for every amount below
    MAX_MONEY: each has a shortest repr with at most two decimals.
    """

    default_error_messages = {
        "places": "Must have at most two decimal places.",
        "range": "Must be between 0.01 and {max}.",
    }

    def __init__(self, **kwargs):
        super().__init__(allow_nan=False, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        # A JSON number arrives as int or float; a string is refused (see the module's docstring).
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.make_error("invalid")
        amount = super()._deserialize(value, attr, data, **kwargs)
        try:
            exact = amount.quantize(CENT)
        except InvalidOperation:
            raise self.make_error("range", max=MAX_MONEY) from None
        if exact != amount:
            raise self.make_error("places")
        if not CENT <= exact <= MAX_MONEY:
            raise self.make_error("range", max=MAX_MONEY)
        return exact

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        return float(Decimal(value).quantize(CENT, rounding=ROUND_HALF_EVEN))


class StrictInteger(ma.fields.Integer):
    """An integer that refuses true/false and 1.0, which plain Integer would accept."""

    def __init__(self, **kwargs):
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class QueryInteger(ma.fields.Integer):
    """A whole number in a query string: 1 to 19 ASCII digits and nothing else.

    Query parameters are always strings, so this is where the digits are checked
    that int() would otherwise read generously (see the module's docstring).
    Nineteen digits hold every BIGINT; no parameter here needs more.
    """

    DIGITS = re.compile(r"[0-9]{1,19}")

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or not self.DIGITS.fullmatch(value):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class Text(ma.fields.String):
    """A string a database column and a log line can hold.

    Refuses what JSON allows but PostgreSQL or UTF-8 can't take (NUL, lone
    surrogates from "\\ud800" escapes) and control characters, which have no
    place in a name or an email and are how log lines get forged. Surrounding
    white space is trimmed, and a blank value is refused when a minimum length is set.
    """

    default_error_messages = {"characters": "Must not contain control characters or unpaired surrogates."}

    def __init__(self, *, trim: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.trim = trim

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise self.make_error("characters") from None
        if any(unicodedata.category(char) == "Cc" for char in text):
            raise self.make_error("characters")
        return text.strip() if self.trim else text
