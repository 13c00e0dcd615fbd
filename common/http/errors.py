"""The one JSON error shape every service answers with.

    {"message": "human readable", "errors": {"field": ["what is wrong"]}}

`errors` appears only when there are field-level details. Clients never see an
HTML page or a stack trace: unexpected exceptions are logged and become a plain 500.
The errors Kong answers itself (no route, a body too large, a service down,
nginx's 400s) have the same `message` and also a `request_id`, Kong's own.
"""

import logging

import marshmallow as ma
from flask import Flask, request
from werkzeug.exceptions import HTTPException

from common import context
from common.database import DATABASE_UNAVAILABLE

log = logging.getLogger(__name__)


class ErrorSchema(ma.Schema):
    """Documents the envelope in the OpenAPI spec (responses are built by hand below)."""

    message = ma.fields.String(required=True)
    errors = ma.fields.Dict(keys=ma.fields.String())
    # Never set by the services: documented because clients meet it in the errors
    # Kong answers in front of them (kong.response.error, kong/error_handlers.lua).
    request_id = ma.fields.String(metadata={"description": "Kong's request id, on the gateway's own errors"})


def error_body(message: str, errors: dict | None = None) -> dict:
    body = {"message": message}
    if errors:
        body["errors"] = errors
    return body


def _string_keys(errors):
    """marshmallow keys list items' errors by index (0, 1, …) next to "_schema":
    JSON object keys are strings, and mixed keys can't even be sorted."""
    if isinstance(errors, dict):
        return {str(key): _string_keys(value) for key, value in errors.items()}
    return errors


def _field_errors(data: dict) -> dict | None:
    """webargs nests errors under the location they came from ({"json": {...}});
    clients care about the fields, so lift them out of the location level."""
    messages = data.get("errors") or data.get("messages")
    if not messages:
        return None
    fields: dict = {}
    for location, errors in messages.items():
        if isinstance(errors, dict):
            fields.update(errors)
        else:
            # A whole-body problem ("Invalid JSON body.") belongs to the location itself.
            fields[location] = errors
    return _string_keys(fields)


# Shorter than werkzeug's stock descriptions, which are written for browsers.
_MESSAGES = {
    400: "The request body is not valid JSON.",
    404: "Not found.",
    405: "Method not allowed.",
    422: "The request has invalid fields.",
}


def _message(error: HTTPException, data: dict) -> str:
    if data.get("message"):
        return data["message"]
    if error.description != type(error).description:  # a view said something specific
        return error.description
    return _MESSAGES.get(error.code, error.description)


def handle_http_exception(error: HTTPException):
    data = getattr(error, "data", None) or {}
    message = _message(error, data)
    headers = data.get("headers") or {}
    if error.code == 405 and error.valid_methods:
        headers = {**headers, "Allow": ", ".join(error.valid_methods)}
    return error_body(message, _field_errors(data)), error.code, headers


def handle_database_unavailable(error: Exception):
    # The connection broke (PostgreSQL restarting, a network blip): the transaction
    # is gone with it, so nothing was half-written, and the next try reconnects.
    log.warning("database unavailable on %s %s: %s", request.method, request.path, getattr(error, "orig", error))
    return error_body("The database is unavailable; try again shortly."), 503, {"Retry-After": "2"}


def handle_unexpected(error: Exception):
    # The trace goes to the log, under the request id; the client gets the id, not the trace.
    log.exception("unhandled error on %s %s", request.method, request.path)
    return error_body(f"An unexpected error occurred. Quote request id {context.request_id()} when reporting it."), 500


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(HTTPException, handle_http_exception)
    for error in DATABASE_UNAVAILABLE:
        app.register_error_handler(error, handle_database_unavailable)
    app.register_error_handler(Exception, handle_unexpected)
