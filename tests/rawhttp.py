"""HTTP/1.1 over a bare socket, for the requests a client library won't send.

requests and urllib3 fix up what the edge tests are about: they write their own
request line and Host, chunk bodies their way, drop trailers and refuse control
characters in headers. These helpers send bytes exactly as given and read the
answer back without judging it.
"""

import json
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

TIMEOUT = 10


@dataclass
class RawResponse:
    status: int
    reason: str
    headers: list[tuple[str, str]]  # in order, repeats kept
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of header `name`, or None."""
        return next((value for key, value in self.headers if key.lower() == name.lower()), None)

    def json(self):
        return json.loads(self.body)

    def __str__(self) -> str:  # what a failing assertion shows
        return f"{self.status} {self.reason} {self.headers} {self.body[:300]!r}"


def address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname, parts.port or 80


def exchange(url: str, request: bytes, timeout: float = TIMEOUT) -> RawResponse:
    """Send `request` as is to the server at `url`; its first final (non-1xx) answer."""
    with socket.create_connection(address(url), timeout=timeout) as sock:
        sock.sendall(request)
        return read_response(sock)


def send_slowly(sock: socket.socket, data: bytes, pause: float) -> None:
    """Send `data` a byte at a time, `pause` seconds apart: a client on a very bad line."""
    for byte in data:
        sock.sendall(bytes([byte]))
        time.sleep(pause)


def read_response(sock: socket.socket) -> RawResponse:
    """Read one final answer from `sock`: its head, then a Content-Length body or
    everything up to the close. Interim (1xx) answers are skipped."""
    buffered = b""
    while True:
        while b"\r\n\r\n" not in buffered:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError(f"the server closed the connection; got {buffered[:300]!r}")
            buffered += data
        head, _, buffered = buffered.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        _version, status, reason = (status_line.split(" ", 2) + [""])[:3]
        if not status.startswith("1"):
            break
    headers = [tuple(part.strip() for part in line.split(":", 1)) for line in lines]
    length = next((int(value) for key, value in headers if key.lower() == "content-length"), None)
    while length is None or len(buffered) < length:
        data = sock.recv(65536)
        if not data:
            break
        buffered += data
    return RawResponse(int(status), reason, headers, buffered if length is None else buffered[:length])
