"""kong.yml's routes as the tests use them, derived from the file, so that no list
of protected routes is kept by hand: each route and method, a path it matches,
its service, and whether the jwt plugin guards it.
"""

import functools
import re
from dataclasses import dataclass

from kong.config import load
from tests.support import ROOT

# How a route's regex path is turned into a path it matches: an id as 1, an
# optional part left out, an escaped character as itself.
_EXAMPLE = [(r"[0-9]+", "1"), (r"(/[A-Za-z0-9._-]*)?", ""), ("\\.", ".")]


@dataclass(frozen=True)
class Route:
    service: str
    name: str
    method: str
    regex: str  # Kong matches it from the start of the normalised path ("~" dropped)
    protected: bool

    def matches(self, method: str, path: str) -> bool:
        return method == self.method and re.match(self.regex, path) is not None

    @property
    def example(self) -> str:
        path = self.regex.removesuffix("$")
        for pattern, replacement in _EXAMPLE:
            path = path.replace(pattern, replacement)
        assert self.matches(self.method, path), f"{self.name}: {path} doesn't match {self.regex}"
        return path


@functools.cache
def routes() -> tuple[Route, ...]:
    found = []
    for service in load(ROOT / "kong.yml")["services"]:
        for route in service["routes"]:
            protected = any(plugin["name"] == "jwt" for plugin in route.get("plugins", []))
            for path in route["paths"]:
                assert path.startswith("~"), f"{route['name']}: every route of kong.yml is a regex route"
                for method in route["methods"]:
                    found.append(Route(service["name"], route["name"], method, path[1:], protected))
    return tuple(found)


def protected() -> list[tuple[str, str, str]]:
    """(method, a path, service) for every route and method the jwt plugin guards."""
    return [(route.method, route.example, route.service) for route in routes() if route.protected]
