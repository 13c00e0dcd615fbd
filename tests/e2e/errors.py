"""Asserting on error answers through the gateway."""


def assert_error(response, status: int, message: str) -> None:
    """A JSON error with this status and message.

    Only the message is compared: Kong's own error bodies (kong.response.error:
    no route, request-size-limiting, rate-limiting, nginx's errors) also carry a
    request_id, which the services' don't. Takes a requests
    Response or a tests.rawhttp.RawResponse."""
    code = getattr(response, "status_code", None) or response.status
    assert code == status, str(getattr(response, "text", response))
    content_type = (
        response.headers["Content-Type"] if hasattr(response, "status_code") else response.header("Content-Type")
    )
    assert content_type.startswith("application/json"), content_type
    assert response.json()["message"] == message
