"""The products service's internal API, for orders: never routed by the gateway.

It answers only on the internal listener (INTERNAL_BIND: natively
127.0.0.1:8112, in containers port 8001), which only orders reaches (the
Kubernetes NetworkPolicies say so too), and that listener answers nothing else
(common/http/app.py): on the public port these paths are 404, and on the
internal port every public path is.
Not in the OpenAPI document: that describes what clients can call.
"""

import marshmallow as ma
from flask import Blueprint, abort, request
from sqlalchemy import bindparam, select

from common.fields import MAX_ID, Money, StrictInteger
from products.models import Product, db

MAX_IDS = 100  # an order has at most 100 lines

internal = Blueprint("internal", __name__, url_prefix="/internal")


class LookupArgsSchema(ma.Schema):
    id = ma.fields.List(
        StrictInteger(validate=ma.validate.Range(min=1, max=MAX_ID)),
        required=True,
        validate=ma.validate.Length(min=1, max=MAX_IDS),
    )


class CatalogEntrySchema(ma.Schema):
    id = ma.fields.Integer()
    price = Money()
    quantity = ma.fields.Integer()


lookup_args = LookupArgsSchema()
catalog_entries = CatalogEntrySchema(many=True)
# Built once: on this hot path (every order) building a statement costs more than running it.
_products = Product.__table__
_LOOKUP = select(_products.c.id, _products.c.price, _products.c.quantity).where(
    _products.c.id.in_(bindparam("ids", expanding=True))
)


@internal.get("/products")
def lookup():
    """GET /internal/products?id=1&id=2: {"products": [{id, price, quantity}, ...]},
    the ones that exist, for all lines of an order in one round trip."""
    values = request.args.getlist("id")
    if set(request.args) != {"id"} or not all(value.isascii() and value.isdigit() for value in values):
        abort(400)
    try:
        ids = lookup_args.load({"id": [int(value) for value in values]})["id"]
    except ma.ValidationError:
        abort(400)
    rows = db.session.connection().execute(_LOOKUP, {"ids": ids}).all()
    return {"products": catalog_entries.dump(rows)}
