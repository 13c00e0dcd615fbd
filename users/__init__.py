"""users: registers users, checks their passwords and issues the JWTs the gateway verifies."""
import os

from flask import Flask

from common.app import build_app
from common.config import ConfigError, env, env_int, service_config
from users.models import db
from users.routes import blp

MIN_SECRET_BYTES = 32


def load_config() -> dict:
    return {
        **service_config("users"),
        "JWT_SECRET": env("JWT_SECRET"),
        # Must equal the consumer key in kong.yml: that is how the gateway finds the secret.
        "JWT_ISSUER": env("JWT_ISSUER", "shop-users"),
        # Must not exceed the jwt plugin's maximum_expiration in kong.yml.
        "JWT_TTL_SECONDS": env_int("JWT_TTL_SECONDS", 900),
    }


def create_app(test_config: dict | None = None) -> Flask:
    config = load_config() if test_config is None else test_config
    if len(config["JWT_SECRET"].encode()) < MIN_SECRET_BYTES:
        raise ConfigError(f"JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes")
    return build_app("users", config, db, [blp], os.path.dirname(__file__))
