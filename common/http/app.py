"""The skeleton every service app is built on.

`build_app` does what the three factories would otherwise each repeat: config,
JSON logs, database (and its recovery from restarts), migrations, the
OpenAPI-documenting Api, the error envelope, readable, JSON-only request bodies,
request ids and metrics, and the operators' routes (/healthz, /readyz, /metrics).
The service's own create_app() supplies its config (from common.settings), its
database object and its blueprints.
"""

import json
import os

import flask_smorest
import marshmallow as ma
from flask import Flask, abort, current_app, request
from flask_migrate import Migrate
from flask_smorest import Api
from flask_sqlalchemy import SQLAlchemy
from gunicorn.http.errors import NoMoreData, ParseException
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import BadRequest, UnsupportedMediaType
from werkzeug.routing import IntegerConverter

from common.fields import MAX_ID
from common.http import errors, request_log, shedding
from common.http.probes import ops
from common.migrate import heads
from common.service_app import base_app


class IdConverter(IntegerConverter):
    """`<id:name>`: a positive BIGINT in ASCII digits. Anything else is simply no
    route (404), so an id like 99999999999999999999 never reaches the database.

    Werkzeug's own pattern, \\d+, is a Unicode class: /products/١٢ would be
    product 12 (int() reads Arabic-Indic digits)."""

    regex = r"[0-9]+"

    def __init__(self, map, **kwargs):
        super().__init__(map, min=1, max=MAX_ID, **kwargs)


class JSONParser(FlaskParser):
    """webargs' parser, strict about query strings, and turning every unreadable
    body into the 400 for bad JSON.

    json.loads raises more than JSONDecodeError: RecursionError for nesting deeper
    than Python's stack ([[[[…]]]] fits easily in 1 MB) and ValueError for integers
    longer than Python's 4300-digit limit. Unhandled, both would be 500s.
    """

    # Unknown query parameters are refused like unknown body fields (webargs would
    # drop them silently): a misspelt ?per_pag=5 is an error, not a default page.
    DEFAULT_UNKNOWN_BY_LOCATION = {
        **FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
        "query": ma.RAISE,
        "querystring": ma.RAISE,
    }

    def _raw_load_json(self, req):
        try:
            return super()._raw_load_json(req)
        except json.JSONDecodeError:
            raise
        except (RecursionError, ValueError) as exc:
            # A non-empty doc: webargs reads an empty one as "no body at all".
            raise json.JSONDecodeError(f"unreadable JSON ({type(exc).__name__})", "<body>", 0) from exc


class Blueprint(flask_smorest.Blueprint):
    """The services' blueprint: flask-smorest's, with the parser above."""

    ARGUMENTS_PARSER = JSONParser()

    def arguments(self, schema, *args, **kwargs):
        # Given a class, webargs builds a schema from it on every request (a deepcopy
        # of all its fields, on the hot path). One instance serves them all.
        return super().arguments(schema() if isinstance(schema, type) else schema, *args, **kwargs)


# For routes behind the gateway's jwt plugin: documents the bearer token (the
# gateway checks it; the service sees only X-User-Id) and the gateway's 401.
PROTECTED = {
    "security": [{"bearerAuth": []}],
    "responses": {"401": {"description": "No valid token (answered by the gateway)"}},
}


class ServiceApi(Api):
    """flask-smorest's Api, documenting the project's error envelope.

    The envelope itself comes from common.http.errors, registered after the Api so it
    replaces flask-smorest's own handler."""

    ERROR_SCHEMA = errors.ErrorSchema


def _read_body():
    # Read now, so that a body the server can't read is the client's 400 and not a
    # 500 from deep inside a view. Gunicorn parses a chunked body as it is read:
    # a malformed chunk or a trailer it refuses raises ParseException there, a
    # client gone mid-body NoMoreData. (Kong reads bodies whole and sends them on
    # with a Content-Length; this guards the service wherever it is reached.)
    try:
        request.get_data(cache=True)
    except (ParseException, NoMoreData) as error:
        raise BadRequest("The request body could not be read.") from error


def _require_json_bodies():
    # Without this, a form or text body is read as "no JSON" and the client gets a
    # confusing "missing field" 422 instead of being told what is wrong. A request
    # with no body at all (POST /orders/1/cancel) has nothing to refuse.
    if request.method in ("POST", "PUT", "PATCH") and request.get_data(cache=True) and not request.is_json:
        raise UnsupportedMediaType("Send the request body as JSON (Content-Type: application/json).")


def _one_listener_each(internal_blueprints: set[str]):
    """The internal listener (INTERNAL_BIND) serves the internal blueprints and
    nothing else, and they answer nowhere else: 404 otherwise. Whatever reaches the
    internal port (orders, by design) must not find the public API there, where
    X-User-Id comes from the caller and not from Kong."""

    def guard():
        port = current_app.config["SETTINGS"].internal_port
        on_internal_listener = port is not None and request.environ.get("SERVER_PORT") == str(port)
        if on_internal_listener != (request.blueprint in internal_blueprints):
            abort(404)

    return guard


def build_app(name: str, config: dict, db: SQLAlchemy, blueprints, package_dir: str, internal=(), pages=()) -> Flask:
    """`blueprints` are the service's API (documented, routed by the gateway);
    `internal` ones are for other services only (not documented); `pages` are
    routed by the gateway but are no API (the docs page)."""
    app = base_app(name, config, db)
    app.config.update(
        API_TITLE=f"{name} service",
        API_VERSION="1.0",
        OPENAPI_VERSION="3.0.3",
        # /openapi/users.json etc.: the same path on the service and through the gateway.
        OPENAPI_URL_PREFIX="/openapi",
        OPENAPI_JSON_PATH=f"{name}.json",
    )
    app.url_map.converters["id"] = IdConverter
    app.url_map.strict_slashes = False
    migrations = os.path.join(package_dir, "migrations")
    Migrate(app, db, directory=migrations)
    app.extensions["schema_heads"] = heads(migrations)  # what /readyz compares the database with

    api = ServiceApi(app)
    api.spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    errors.register_error_handlers(app)
    for blueprint in blueprints:
        api.register_blueprint(blueprint)
    for blueprint in (*internal, *pages):
        app.register_blueprint(blueprint)
    request_log.init_app(app)  # first: the request id must be set before anything can fail
    shedding.init_app(app)  # next: a read that waited too long costs nothing more
    app.before_request(_one_listener_each({blueprint.name for blueprint in internal}))
    app.before_request(_read_body)
    app.before_request(_require_json_bodies)
    app.register_blueprint(ops)
    return app
