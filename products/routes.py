from common.http.app import PROTECTED, Blueprint
from common.http.identity import current_user_id
from common.http.pagination import PageArgsSchema, page_schema, paginate
from products.models import Product, db
from products.schemas import ProductSchema

blp = Blueprint("products", __name__, description="The catalog")


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
    return db.get_or_404(Product, product_id, description="No such product.")
