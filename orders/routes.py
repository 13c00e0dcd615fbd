from flask_smorest import abort

from common.http.app import PROTECTED, Blueprint
from common.http.idempotency_keys import idempotent
from common.http.identity import current_user_id
from common.http.pagination import PageArgsSchema, page_schema, paginate
from common.http.unit_of_work import transactional
from orders import cancelling, placing
from orders.catalog import CatalogUnavailable
from orders.models import IdempotencyKey, NotCancellable, Order, db
from orders.schemas import NewOrderSchema, OrderSchema

blp = Blueprint("orders", __name__, description="Placing and reading the caller's orders")


@blp.post("/orders")
@idempotent(db, IdempotencyKey)
@blp.arguments(NewOrderSchema)
@blp.response(201, OrderSchema)
@blp.alt_response(409, description="Not enough stock")
@blp.alt_response(422, description="Invalid fields, an unknown product, or a total too large to take")
@blp.alt_response(503, description="The products service is unavailable")
@blp.doc(**PROTECTED)
def place_order(new_order):
    try:
        return placing.place(current_user_id(), new_order["items"])
    except (placing.UnknownProduct, placing.TotalTooLarge) as exc:
        abort(422, message=str(exc))
    except placing.OutOfStock as exc:
        abort(409, message=str(exc))
    except CatalogUnavailable:
        abort(503, message="The products service is unavailable; try again shortly.", headers={"Retry-After": "2"})


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


@blp.post("/orders/<id:order_id>/cancel")
@transactional(db)
@blp.response(200, OrderSchema)
@blp.alt_response(404, description="No such order of the caller's")
@blp.alt_response(409, description="The order is REJECTED (or too old to cancel)")
@blp.doc(**PROTECTED)
def cancel_order(order_id):
    """Cancel a PENDING or CONFIRMED order; its stock goes back. Cancelling twice answers the same."""
    try:
        return cancelling.cancel(current_user_id(), order_id)
    except cancelling.NoSuchOrder:
        abort(404, message="No such order.")
    except NotCancellable as exc:
        abort(409, message=str(exc))
