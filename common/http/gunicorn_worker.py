"""Gunicorn's worker with its own error pages in the project's JSON shape.

Gunicorn answers requests it can't parse itself, before any app code runs: a
header line over its limit (431), a control character in a header value or two
Content-Type headers (400), an Expect it doesn't know (417). Its pages are HTML,
and Kong passes a service's answer on as it is, so a client would see them.
This worker keeps Gunicorn's decision (the status, the log line) and replaces
only the page.
"""

import json

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker

from common import context

# Said in the project's words; any other status gets its reason phrase.
MESSAGES = {
    400: "The request could not be read.",
    414: "The request line is too long.",
    417: "The expectation in the Expect header can't be met.",
    431: "A request header is too large.",
    501: "The request's Transfer-Encoding is not supported.",
}


class JsonErrorsThreadWorker(ThreadWorker):
    def handle_error(self, req, client, addr, exc):
        page = _Page()
        # Gunicorn decides the status and logs the error; its page goes to `page`.
        super().handle_error(req, page, addr, exc)
        if page.status is None:  # it wrote nothing (it couldn't format one)
            return
        body = json.dumps({"message": MESSAGES.get(page.status, f"{page.reason}.")}).encode()
        head = (
            f"HTTP/1.1 {page.status} {page.reason}\r\n"
            "Connection: close\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
            f"{context.HEADER}: {_request_id(req or getattr(exc, 'req', None))}\r\n"
            "\r\n"
        )
        try:
            util.write_nonblock(client, head.encode("latin-1") + body)
        except OSError:  # the client has gone: nothing left to tell it
            self.log.debug("Failed to send error message.")


class _Page:
    """Stands in for the client's socket while Gunicorn writes its error page:
    keeps the status line, drops the HTML. (util.write_nonblock writes straight
    through to sendall() on a socket whose timeout is 0.)"""

    status: int | None = None
    reason = ""

    def gettimeout(self) -> float:
        return 0.0

    def sendall(self, data: bytes) -> None:
        status_line = data.split(b"\r\n", 1)[0].decode("latin-1")
        _version, status, self.reason = (status_line.split(" ", 2) + [""])[:3]
        self.status = int(status)


def _request_id(req) -> str:
    """The gateway's request id when Gunicorn got as far as reading the headers."""
    sent = next((value for name, value in getattr(req, "headers", None) or [] if name == "X-REQUEST-ID"), None)
    return context.accept(sent)
