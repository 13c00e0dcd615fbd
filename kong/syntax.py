"""Writing HAProxy 2.6 configuration syntax: sections, conditions, quoting, JSON replies.

Everything that puts text into the generated config goes through these, so that
no value can break out of its word or its quotes.
"""

import json
import re

from kong.errors import ConfigError

JSON = "application/json; charset=utf-8"
# Kong's WWW-Authenticate: a bare challenge when there is no token, else this.
INVALID_TOKEN = 'Bearer error="invalid_token"'


def section(title: str, lines: list[str]) -> str:
    return "\n".join([title, *(f"    {line}" if line else "" for line in lines)])


def unauthorized(body: str | dict, *conditions: str, challenge: str = INVALID_TOKEN) -> str:
    """Kong's jwt plugin refusing: 401, a JSON body (a string is its "message")."""
    text = message(body) if isinstance(body, str) else json.dumps(body, separators=(",", ":"))
    return (
        f"http-request return status 401 content-type {quoted(JSON)} "
        f"hdr WWW-Authenticate {quoted(challenge)} string {quoted(text)} if {' '.join(conditions)}"
    )


def reply(status: int, text: str, *conditions: str) -> str:
    """An answer of HAProxy's own: `status` with {"message": text}, if all `conditions` hold."""
    rule = f"http-request return status {status} content-type {quoted(JSON)} string {quoted(message(text))}"
    return f"{rule} if {' '.join(conditions)}" if conditions else rule


def message(text: str) -> str:
    return json.dumps({"message": text}, separators=(",", ":"))  # as compact as Kong's cjson


def is_(test: str) -> str:
    return f"{{ {test} }}"


def not_(test: str) -> str:
    return f"!{{ {test} }}"


def words(items) -> str:
    return " ".join(items)


def quoted(text: str) -> str:
    """`text` as one double-quoted HAProxy word, backslashes and quotes escaped.

    HAProxy expands $NAME inside double quotes: no text of ours has a $.
    """
    if not re.fullmatch(r"[\x20-\x7e]*", text) or "$" in text:
        raise ConfigError(f"{text!r} can't be double-quoted for HAProxy")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def log_format(text: str) -> str:
    """Literal `text` as a log-format argument (set-header's value): % doubled."""
    return quoted(text.replace("%", "%%"))


def literal(text: str) -> str:
    """`text` as one single-quoted HAProxy word: taken as is, no escapes, no $ expansion."""
    if not re.fullmatch(r"[\x20-\x26\x28-\x7e]+", text):
        raise ConfigError(f"{text!r} can't be quoted for HAProxy: use printable ASCII without '")
    return f"'{text}'"
