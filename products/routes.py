from flask_smorest import abort
from sqlalchemy import bindparam, select

from common.database import read_one
from common.http.app import PROTECTED, Blueprint
from common.http.conditional import IF_MATCH_DOC, etag, require_match
from common.http.idempotency_keys import idempotent
from common.http.identity import current_user_id
from common.http.pagination import PageArgsSchema, page_schema, paginate
from common.http.unit_of_work import transactional
from products import inventory
from products.models import IdempotencyKey, Product, db
from products.schemas import NewProductSchema, ProductChangesSchema, ProductSchema, RestockSchema

blp = Blueprint("products", __name__, description="The catalog")

# The hottest read: one row by id, built once, no objects to track.
_products = Product.__table__
_BY_ID = select(_products.c.id, _products.c.name, _products.c.price, _products.c.quantity, _products.c.revision).where(
    _products.c.id == bindparam("id")
)

# A product is public, so there is nothing to hide by answering someone else's
# change with a 404 (as orders does for orders): 403 says what is wrong.
NOT_YOURS = {"403": {"description": "Not the product's creator"}, "404": {"description": "No such product"}}


@blp.get("/products")
@blp.arguments(PageArgsSchema, location="query")
@blp.response(200, page_schema(ProductSchema))
def list_products(args):
    return paginate(db, db.select(Product).order_by(Product.id), args)


@blp.post("/products")
@idempotent(db, IdempotencyKey)
@blp.arguments(NewProductSchema)
@blp.response(201, ProductSchema)
@blp.doc(**PROTECTED)
def create_product(fields):
    product = Product(**fields, created_by=current_user_id(), revision=1)
    db.session.add(product)
    db.session.flush()  # its id; the commit is idempotent()'s
    return product, {"ETag": etag(product.revision)}


@blp.get("/products/<id:product_id>")
@blp.response(200, ProductSchema, headers={"ETag": {"schema": {"type": "string"}}})
def get_product(product_id):
    product = read_one(db, _BY_ID, {"id": product_id})
    if product is None:
        abort(404, message="No such product.")
    return product, {"ETag": etag(product.revision)}


def _own(product_id: int) -> Product:
    """The caller's product, its row locked until the commit: 404 if there is none, 403 if it is someone else's."""
    product = db.session.execute(
        db.select(Product).where(Product.id == product_id).with_for_update().execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if product is None:
        abort(404, message="No such product.")
    if product.created_by != current_user_id():
        abort(403, message="Only the product's creator can change it.")
    return product


@blp.patch("/products/<id:product_id>")
@transactional(db)
@blp.arguments(ProductChangesSchema)
@blp.response(200, ProductSchema)
@blp.doc(**PROTECTED)
@blp.doc(responses=NOT_YOURS)
@blp.doc(**IF_MATCH_DOC)
def change_product(changes, product_id):
    """Change the name or the price. Orders placed before keep the price they were placed at."""
    product = _own(product_id)
    # Checked under the row lock: no other change can slip in between.
    require_match(etag(product.revision))
    for name, value in changes.items():
        setattr(product, name, value)
    product.revision += 1
    return product, {"ETag": etag(product.revision)}


@blp.post("/products/<id:product_id>/stock")
@idempotent(db, IdempotencyKey)
@blp.arguments(RestockSchema)
@blp.response(200, ProductSchema)
@blp.alt_response(409, description="The stock would exceed its maximum")
@blp.doc(**PROTECTED)
@blp.doc(responses=NOT_YOURS)
def restock(args, product_id):
    """Add stock. The row lock it takes is the one reservations take, so the two queue up: neither is lost."""
    product = _own(product_id)
    try:
        inventory.restock(product, args["add"])
    except inventory.ShelfFull as exc:
        abort(409, message=str(exc))
    return product  # committed by idempotent(), with the key's answer if there is one
