from flask_smorest import abort

from common.app import PROTECTED, Blueprint
from common.identity import current_user_id
from common.pagination import PageArgsSchema, page_schema, paginate
from orders import placing
from orders.models import Order, db
from orders.schemas import NewOrderSchema, OrderSchema

blp = Blueprint("orders", __name__, description="Placing and reading the caller's orders")


@blp.post("/orders")
@blp.arguments(NewOrderSchema)
@blp.response(201, OrderSchema)
@blp.alt_response(409, description="Not enough stock")
@blp.alt_response(422, description="Invalid fields or an unknown product")
@blp.alt_response(503, description="The products service is unavailable")
@blp.doc(**PROTECTED)
def place_order(new_order):
    return placing.place(current_user_id(), new_order["items"])


@blp.get("/orders")
@blp.arguments(PageArgsSchema, location="query")
@blp.response(200, page_schema(OrderSchema))
@blp.doc(**PROTECTED)
def list_orders(args):
    mine = db.select(Order).filter_by(user_id=current_user_id()).order_by(Order.id.desc())
    return paginate(db, mine, args)


@blp.get("/orders/<id:order_id>")
@blp.response(200, OrderSchema)
@blp.doc(**PROTECTED)
def get_order(order_id):
    order = db.session.get(Order, order_id)
    # Someone else's order answers exactly like a missing one, so ids reveal nothing.
    if order is None or order.user_id != current_user_id():
        abort(404, message="No such order.")
    return order
