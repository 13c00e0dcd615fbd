"""users: registers users, checks their passwords and issues the JWTs the gateway verifies."""

import os

from flask import Flask

from common.http.app import build_app
from common.http.docs import docs_blueprint
from common.settings import ConfigError, Settings
from users import passwords
from users.models import db
from users.routes import blp

MIN_SECRET_BYTES = 32
# Values people paste from examples; a secret anyone can guess signs anyone's token.
KNOWN_WEAK_SECRETS = {"secret", "changeme", "change-me", "jwt-secret", "your-secret-key", "supersecret", "dev-secret"}


def check_secret(secret: str, allow_weak: bool) -> None:
    """Refuse to sign tokens with a secret that is missing or can be guessed or brute-forced."""
    if not secret:
        raise ConfigError("environment variable JWT_SECRET must be set")
    if allow_weak:
        return
    if secret.lower() in KNOWN_WEAK_SECRETS or len(set(secret)) < 8:
        raise ConfigError("JWT_SECRET is a well-known or trivial value; generate one (scripts/stack does)")
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes "
            "(or set ALLOW_WEAK_JWT_SECRET=1, for local experiments only)"
        )


def create_app(test_config: dict | None = None) -> Flask:
    config = Settings.from_env("users").flask_config() if test_config is None else test_config
    settings = config["SETTINGS"]
    check_secret(settings.jwt_secret, settings.allow_weak_jwt_secret)
    # The API docs page of all three services lives here: the front door's.
    app = build_app("users", config, db, [blp], os.path.dirname(__file__), pages=[docs_blueprint()])
    app.extensions["password_slots"] = passwords.slots(settings.password_hashes_at_once)
    return app
