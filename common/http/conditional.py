"""Conditional updates (RFC 9110 §13.1.1): a change must name the version it was
made from, so that two clients editing one resource can't overwrite each other
without knowing (the lost update).

The ETag is a revision counter the resource keeps, quoted ("3"). A PATCH without
If-Match is 428 Precondition Required; one whose tags don't match the current
one is 412 Precondition Failed. If-Match compares strongly: a weak tag (W/"3")
never matches; `*` matches whatever is there.
"""

from flask import request
from flask_smorest import abort

IF_MATCH_DOC = {
    "parameters": [
        {
            "in": "header",
            "name": "If-Match",
            "required": True,
            "description": "The ETag of the version the change is made from (GET answers it).",
            "schema": {"type": "string"},
        }
    ],
    "responses": {
        "412": {"description": "The resource changed since that ETag: GET it again"},
        "428": {"description": "No If-Match header"},
    },
}


def etag(revision: int) -> str:
    return f'"{revision}"'


def require_match(current: str) -> None:
    """Go on only if the request's If-Match names `current`; else 428 or 412."""
    header = request.headers.get("If-Match")
    if header is None:
        abort(428, message="Send If-Match with the ETag of the version you are changing (GET answers it).")
    tags = [tag.strip() for tag in header.split(",")]
    if "*" not in tags and current not in tags:
        abort(412, message="It changed since that ETag; GET it again and make the change on the current version.")
