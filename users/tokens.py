"""Issuing access tokens. Verifying them is the gateway's job, never a service's."""

from datetime import UTC, datetime, timedelta

import jwt

ALGORITHM = "HS256"


def issue(user_id: int, *, secret: str, issuer: str, ttl_seconds: int) -> dict:
    now = datetime.now(UTC)
    claims = {
        "sub": str(user_id),
        "iss": issuer,
        "iat": now,
        "exp": now + timedelta(seconds=ttl_seconds),
    }
    return {
        "access_token": jwt.encode(claims, secret, algorithm=ALGORITHM),
        "token_type": "bearer",
        "expires_in": ttl_seconds,
    }
