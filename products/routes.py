from flask_smorest import abort
from sqlalchemy import bindparam, select

from common.http.app import PROTECTED, Blueprint
from common.http.identity import current_user_id
from common.http.pagination import PageArgsSchema, page_schema, paginate
from products.models import Product, db
from products.schemas import ProductSchema

blp = Blueprint("products", __name__, description="The catalog")

# The hottest read: one row by id, built once, no objects to track.
_products = Product.__table__
_BY_ID = select(_products.c.id, _products.c.name, _products.c.price, _products.c.quantity).where(
    _products.c.id == bindparam("id")
)


@blp.get("/products")
@blp.arguments(PageArgsSchema, location="query")
@blp.response(200, page_schema(ProductSchema))
def list_products(args):
    return paginate(db, db.select(Product).order_by(Product.id), args)


@blp.post("/products")
@blp.arguments(ProductSchema)
@blp.response(201, ProductSchema)
@blp.doc(**PROTECTED)
def create_product(fields):
    product = Product(**fields, created_by=current_user_id())
    db.session.add(product)
    db.session.commit()
    return product


@blp.get("/products/<id:product_id>")
@blp.response(200, ProductSchema)
def get_product(product_id):
    product = db.session.connection().execute(_BY_ID, {"id": product_id}).first()
    if product is None:
        abort(404, message="No such product.")
    return product
