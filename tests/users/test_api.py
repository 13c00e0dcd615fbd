import dataclasses

import jwt
import pytest
from sqlalchemy import func

from common.settings import ConfigError
from tests.support import TEST_SECRET, config_for
from users import create_app
from users.models import User, db

pytestmark = pytest.mark.integration

PASSWORD = "a-strong-password-123"


def test_register_returns_the_user_without_secrets(register):
    response = register("ann@example.com")
    assert response.status_code == 201
    body = response.get_json()
    assert body["email"] == "ann@example.com"
    assert isinstance(body["id"], int)
    assert "password" not in body and "password_hash" not in body


def test_register_normalises_the_email(register):
    assert register("  Ann@Example.COM ").get_json()["email"] == "ann@example.com"
    assert register("ann@example.com").status_code == 409


def test_duplicate_email_is_409_and_stores_nothing(register, users_app):
    register("ann@example.com")
    response = register("ann@example.com")
    assert response.status_code == 409
    assert response.get_json() == {"message": "An account with this email already exists."}
    with users_app.app_context():
        assert db.session.scalar(db.select(func.count()).select_from(User)) == 1


def test_password_is_stored_as_an_argon2id_hash(register, users_app):
    register("ann@example.com")
    with users_app.app_context():
        stored = db.session.scalars(db.select(User.password_hash)).one()
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


def test_login_with_control_characters_is_422_not_500(client):
    response = client.post("/token", json={"email": "ann\u0000@example.com", "password": PASSWORD})
    assert response.status_code == 422
    assert "email" in response.get_json()["errors"]


@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000 + "]" * 100_000,  # deeper than Python's recursion limit
        '{"email": ' + "1" * 5000 + "}",  # more digits than Python converts
        "\xff\xfe not utf-8",
    ],
)
def test_unreadable_json_is_400_not_500(client, body):
    response = client.post("/register", data=body.encode("latin-1"), content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["message"] == "The request body is not valid JSON."


@pytest.mark.parametrize(
    "body, field",
    [
        ({"password": PASSWORD}, "email"),
        ({"email": "ann@example.com"}, "password"),
        ({"email": "not-an-email", "password": PASSWORD}, "email"),
        ({"email": "ann@example.com", "password": "short"}, "password"),
        ({"email": "ann@example.com", "password": PASSWORD, "role": "admin"}, "role"),
        ({"email": 42, "password": PASSWORD}, "email"),
        ({"email": "ann@example.com", "password": "x" * 257}, "password"),
        ({"email": "ann\u0000@example.com", "password": PASSWORD}, "email"),
        ({"email": "ann@example.com", "password": "nul\u0000password"}, "password"),
        ({"email": "ann@example.com", "password": "lone \ud800 surrogate"}, "password"),
        ({"email": "a" * 250 + "@example.com", "password": PASSWORD}, "email"),
    ],
)
def test_register_validation_errors_name_the_field(client, body, field):
    response = client.post("/register", json=body)
    assert response.status_code == 422
    assert field in response.get_json()["errors"]


def test_malformed_json_is_400(client):
    response = client.post("/register", data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["message"] == "The request body is not valid JSON."


def test_non_json_body_is_415(client):
    response = client.post("/register", data="email=a@b.c", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert "application/json" in response.get_json()["message"]


def test_login_issues_a_token_for_the_gateway(register, client):
    user_id = register("ann@example.com").get_json()["id"]
    response = client.post("/token", json={"email": "ANN@example.com", "password": PASSWORD})
    assert response.status_code == 200
    body = response.get_json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 900
    claims = jwt.decode(body["access_token"], TEST_SECRET, algorithms=["HS256"], issuer="shop-users")
    assert claims["sub"] == str(user_id)
    assert claims["exp"] - claims["iat"] == 900
    assert jwt.get_unverified_header(body["access_token"])["alg"] == "HS256"


def test_wrong_password_and_unknown_email_get_the_same_answer(register, client):
    register("ann@example.com")
    wrong_password = client.post("/token", json={"email": "ann@example.com", "password": "wrong-password"})
    unknown_email = client.post("/token", json={"email": "bob@example.com", "password": PASSWORD})
    assert wrong_password.status_code == unknown_email.status_code == 401
    assert wrong_password.get_json() == unknown_email.get_json() == {"message": "Wrong email or password."}


def test_me_is_the_user_the_gateway_names(register, client):
    user = register("ann@example.com").get_json()
    response = client.get("/users/me", headers={"X-User-Id": str(user["id"])})
    assert response.status_code == 200
    assert response.get_json()["email"] == "ann@example.com"


@pytest.mark.parametrize("header", [None, "", "abc", "-1", "0", "١٢", str(2**64)])
def test_me_without_a_usable_identity_is_401(client, header):
    headers = {} if header is None else {"X-User-Id": header}
    response = client.get("/users/me", headers=headers)
    assert response.status_code == 401
    assert response.get_json() == {"message": "Authentication required."}


def test_unknown_route_and_method_are_json(client):
    missing = client.get("/nowhere")
    assert missing.status_code == 404 and missing.get_json() == {"message": "Not found."}
    wrong_method = client.delete("/register")
    assert wrong_method.status_code == 405 and wrong_method.get_json() == {"message": "Method not allowed."}


@pytest.mark.parametrize(
    "secret, complaint",
    [
        ("short-but-varied-0123", "at least 32 bytes"),
        ("changeme", "well-known"),
        ("a" * 64, "trivial"),
        ("", "must be set"),
    ],
)
def test_a_weak_secret_refuses_to_start(amqp_url, secret, complaint):
    with pytest.raises(ConfigError, match=complaint):
        create_app(config_for("users", "postgresql://unused/db", amqp_url, jwt_secret=secret))


def test_a_weak_secret_starts_only_when_explicitly_allowed(amqp_url):
    app = create_app(
        config_for("users", "postgresql://unused/db", amqp_url, jwt_secret="changeme", allow_weak_jwt_secret=True)
    )
    assert app.config["SETTINGS"].jwt_secret == "changeme"


def test_openapi_document_is_served(client):
    spec = client.get("/openapi/users.json").get_json()
    assert {"/register", "/token", "/users/me"} <= set(spec["paths"])
    assert spec["paths"]["/users/me"]["get"]["security"] == [{"bearerAuth": []}]
    assert "security" not in spec["paths"]["/token"]["post"]


@pytest.fixture
def slots_taken(users_app):
    """Every hashing slot of the app held (as by concurrent sign-ups), with a short wait."""
    settings = users_app.config["SETTINGS"]
    users_app.config["SETTINGS"] = dataclasses.replace(settings, password_hash_wait_seconds=0.2)
    slots = users_app.extensions["password_slots"]
    held = 0
    while slots.acquire(blocking=False):
        held += 1
    try:
        yield held
    finally:
        for _ in range(held):
            slots.release()
        users_app.config["SETTINGS"] = settings


def test_a_process_hashes_at_most_its_slots_at_once_and_a_busy_one_says_come_back(
    register, client, slots_taken, users_app
):
    # Argon2id takes 64 MiB a hash: unbounded, a burst of sign-ups or logins took
    # one process past its container's memory limit (269 MiB for four at once).
    assert slots_taken == users_app.config["SETTINGS"].password_hashes_at_once == 2

    busy_register = register(email="later@example.com")
    busy_login = client.post("/token", json={"email": "later@example.com", "password": "a-strong-password-123"})

    for response in (busy_register, busy_login):
        assert response.status_code == 503, response.get_json()
        assert response.headers["Retry-After"] == "1"
        assert response.get_json() == {"message": "Too many sign-ups and logins at once; try again shortly."}


def test_a_freed_slot_serves_the_retry(register, slots_taken, users_app):
    users_app.extensions["password_slots"].release()  # one sign-up finished
    try:
        assert register(email="retry@example.com").status_code == 201
    finally:
        users_app.extensions["password_slots"].acquire()
