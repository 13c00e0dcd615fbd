"""users: registers users, checks their passwords and issues the JWTs the gateway verifies."""
import os

from flask import Flask

from common.app import build_app
from common.config import ConfigError, env, env_int, service_config
from users.models import db
from users.routes import blp

MIN_SECRET_BYTES = 32
# Values people paste from examples; a secret anyone can guess signs anyone's token.
KNOWN_WEAK_SECRETS = {"secret", "changeme", "change-me", "jwt-secret", "your-secret-key", "supersecret", "dev-secret"}


def load_config() -> dict:
    return {
        **service_config("users"),
        "JWT_SECRET": env("JWT_SECRET"),
        # Must equal the consumer key in kong.yml: that is how the gateway finds the secret.
        "JWT_ISSUER": env("JWT_ISSUER", "shop-users"),
        # Must not exceed the jwt plugin's maximum_expiration in kong.yml.
        "JWT_TTL_SECONDS": env_int("JWT_TTL_SECONDS", 900),
        # An explicit, loud opt-out for throwaway local setups; never in production.
        "ALLOW_WEAK_JWT_SECRET": env("ALLOW_WEAK_JWT_SECRET", "0") == "1",
    }


def check_secret(secret: str, allow_weak: bool) -> None:
    """Refuse to sign tokens with a secret that can be guessed or brute-forced."""
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
    config = load_config() if test_config is None else test_config
    check_secret(config["JWT_SECRET"], config.get("ALLOW_WEAK_JWT_SECRET", False))
    return build_app("users", config, db, [blp], os.path.dirname(__file__))
