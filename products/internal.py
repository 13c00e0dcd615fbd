"""The products service's internal API, for orders: never routed by the gateway.

It answers only on the internal listener (INTERNAL_BIND: natively
127.0.0.1:8112, in containers port 8001), which only orders reaches (the
Kubernetes NetworkPolicies say so too), and that listener answers nothing else
(common/http/app.py): on the public port these paths are 404, and on the
internal port every public path is.
Not in the OpenAPI document: that describes what clients can call.
"""

from flask import Blueprint, abort, request
from sqlalchemy import bindparam, select

from common.database import read_all
from common.fields import MAX_ID, QueryInteger
from products.models import Product, db

MAX_IDS = 100  # an order has at most 100 lines

internal = Blueprint("internal", __name__, url_prefix="/internal")

# Built once: on this hot path (every order) building a statement costs more than running it.
_products = Product.__table__
_LOOKUP = select(_products.c.id, _products.c.price, _products.c.quantity).where(
    _products.c.id.in_(bindparam("ids", expanding=True))
)


def _ids() -> list[int]:
    """?id=N&id=M…: 1 to MAX_IDS ids, each ASCII digits (as every query integer:
    common.fields.QueryInteger) from 1 to MAX_ID, and nothing else; a 400
    otherwise. Checked by hand: only orders calls this, with ids it has validated
    already, and a schema's machinery cost more than the query."""
    values = request.args.getlist("id")
    if set(request.args) != {"id"} or not 1 <= len(values) <= MAX_IDS:
        abort(400)
    if not all(QueryInteger.DIGITS.fullmatch(value) for value in values):
        abort(400)
    ids = [int(value) for value in values]
    if not all(1 <= pid <= MAX_ID for pid in ids):
        abort(400)
    return ids


@internal.get("/products")
def lookup():
    """GET /internal/products?id=1&id=2: {"products": [{id, price, quantity}, ...]},
    the ones that exist, for all lines of an order in one round trip. Prices as
    JSON numbers, as common.fields.Money writes them: a NUMERIC(12, 2) is exact
    as a float's shortest repr."""
    rows = read_all(db, _LOOKUP, {"ids": _ids()})
    return {"products": [{"id": pid, "price": float(price), "quantity": quantity} for pid, price, quantity in rows]}
