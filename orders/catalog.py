"""The orders service's view of the catalog: the products service's internal API.

One request for all lines of an order, over pooled keep-alive connections with a
short timeout: placing an order waits on this, so a slow products service must
fail fast (503) rather than hold the order's request.

urllib3, not requests on top of it: requests prepares every call for the general
case (cookies, auth, proxies, hooks, redirects), and on this call that was a
quarter of the orders service's CPU per order.
"""

import itertools
import json
import logging
from dataclasses import dataclass
from decimal import Decimal

import urllib3
from urllib3.exceptions import HTTPError

from common import context

log = logging.getLogger(__name__)


class CatalogUnavailable(Exception):
    """The products service could not answer; the order can't be checked now."""


@dataclass(frozen=True)
class CatalogProduct:
    id: int
    price: Decimal
    quantity: int


class Catalog:
    def __init__(self, base_urls: str, timeout: float):
        """`base_urls`: the products service's internal address, or several,
        comma-separated, asked in turn (copies of it, as the native stack's --scale
        runs them; elsewhere one address balances them)."""
        # One pool of keep-alive connections per address and process, shared by its
        # threads (urllib3's pools are thread-safe); no retries: a failure is a 503 now.
        self.pools = itertools.cycle(
            [
                urllib3.connection_from_url(url, maxsize=16, block=False, retries=False, timeout=timeout)
                for url in base_urls.split(",")
            ]
        )

    def lookup(self, product_ids: list[int]) -> dict[int, CatalogProduct]:
        """The products among these that exist, as they are now, by id."""
        path = "/internal/products?" + "&".join(f"id={int(pid)}" for pid in product_ids)
        pool = next(self.pools)
        try:
            response = pool.request("GET", path, headers=context.outgoing_headers())
        except HTTPError as exc:  # refused, reset, timed out: all mean "not now"
            log.warning("products service unreachable at %s:%s: %s", pool.host, pool.port, exc)
            raise CatalogUnavailable() from exc
        if response.status != 200:
            log.warning("products service answered %s for %s", response.status, path)
            raise CatalogUnavailable()
        try:
            # Prices travel as JSON numbers with two decimals; str() keeps them exact.
            found = [
                CatalogProduct(int(item["id"]), Decimal(str(item["price"])), int(item["quantity"]))
                for item in json.loads(response.data)["products"]
            ]
        except (ValueError, KeyError, TypeError) as exc:
            log.error("products service sent an unreadable answer: %s", exc)
            raise CatalogUnavailable() from exc
        return {product.id: product for product in found}
