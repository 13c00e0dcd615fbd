"""`python -m common.http.healthcheck URL`: exit 0 if URL answers 200 within 2 s.

For container healthchecks: slim images have no curl.
"""

import sys
import urllib.error
import urllib.request


def main(url: str) -> int:
    if not url.startswith(("http://", "https://")):
        return 2  # urlopen would also read file: and ftp: URLs
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # nosec B310 - scheme checked above
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError):
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000/healthz"))
