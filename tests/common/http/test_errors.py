"""The one error shape, from the skeleton every service is built on (common/http/app.py,
errors.py): every failure a client can cause, and the ones it can't, in JSON."""

import json
import logging
import os

import marshmallow as ma
import pytest
from flask_smorest import Blueprint
from sqlalchemy.exc import OperationalError

import products
from common.database import make_db
from common.http.app import build_app
from common.logs import JsonFormatter
from tests.support import config_for

pytestmark = pytest.mark.integration

things = Blueprint("things", __name__)


@things.get("/boom")
def boom():
    raise RuntimeError("kaboom")


@things.get("/database-gone")
def database_gone():
    raise OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))


class ThingSchema(ma.Schema):
    name = ma.fields.String(required=True)


@things.post("/things")
@things.arguments(ThingSchema)
def post_thing(thing):
    return thing


@pytest.fixture(scope="module")
def client(pg_url, amqp_url):
    app = build_app(
        "things", config_for("products", pg_url, amqp_url), make_db(), [things], os.path.dirname(products.__file__)
    )
    return app.test_client()


def test_an_unexpected_error_gives_the_client_the_id_and_the_log_the_trace(client, caplog):
    response = client.get("/boom", headers={"X-Request-ID": "trace-42"})

    assert response.status_code == 500
    assert "trace-42" in response.get_json()["message"] and "kaboom" not in response.get_data(as_text=True)
    [record] = [r for r in caplog.records if r.exc_info]
    assert "kaboom" in str(record.exc_info[1])
    assert json.loads(JsonFormatter("things").format(record)).get("error", "").endswith("RuntimeError: kaboom")


def test_a_lost_database_is_503_with_retry_after(client, caplog):
    caplog.set_level(logging.WARNING)
    response = client.get("/database-gone")

    assert response.status_code == 503
    assert response.get_json() == {"message": "The database is unavailable; try again shortly."}
    assert response.headers["Retry-After"] == "2"
    assert not [r for r in caplog.records if r.exc_info]  # an outage, not a bug: no trace


@pytest.mark.parametrize(
    "method, path, kwargs, status, message",
    [
        ("GET", "/nowhere", {}, 404, "Not found."),
        ("DELETE", "/things", {}, 405, "Method not allowed."),
        (
            "POST",
            "/things",
            {"data": "{", "content_type": "application/json"},
            400,
            "The request body is not valid JSON.",
        ),
        (
            "POST",
            "/things",
            {"data": "a=b", "content_type": "application/x-www-form-urlencoded"},
            415,
            "Send the request body as JSON (Content-Type: application/json).",
        ),
    ],
    ids=["no-route", "wrong-method", "broken-json", "not-json"],
)
def test_client_errors_have_the_one_shape(client, method, path, kwargs, status, message):
    response = client.open(path, method=method, **kwargs)

    assert response.status_code == status
    body = response.get_json()
    assert body["message"] == message and set(body) <= {"message", "errors"}
    assert response.headers["X-Request-ID"]


def test_invalid_fields_are_422_with_each_fields_complaint(client):
    response = client.post("/things", json={"colour": "red"})

    assert response.status_code == 422
    assert response.get_json() == {
        "message": "The request has invalid fields.",
        "errors": {"name": ["Missing data for required field."], "colour": ["Unknown field."]},
    }
