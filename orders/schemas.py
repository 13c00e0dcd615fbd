import marshmallow as ma

from common.fields import MAX_ID, Money, StrictInteger

MAX_LINES = 100
MAX_LINE_QUANTITY = 10_000


class OrderLineSchema(ma.Schema):
    product_id = StrictInteger(required=True, validate=ma.validate.Range(min=1, max=MAX_ID))
    quantity = StrictInteger(required=True, validate=ma.validate.Range(min=1, max=MAX_LINE_QUANTITY))
    unit_price = Money(dump_only=True)


class NewOrderSchema(ma.Schema):
    items = ma.fields.List(
        ma.fields.Nested(OrderLineSchema), required=True, validate=ma.validate.Length(min=1, max=MAX_LINES)
    )

    @ma.validates("items")
    def one_line_per_product(self, items, **kwargs):
        # Lines that failed their own validation may lack a product_id; they are reported already.
        product_ids = [line["product_id"] for line in items if "product_id" in line]
        if len(product_ids) != len(set(product_ids)):
            raise ma.ValidationError("Each product may appear only once; put the total quantity on one line.")


class OrderSchema(ma.Schema):
    id = ma.fields.Integer()
    status = ma.fields.String(
        metadata={"description": "PENDING until stock is reserved, then CONFIRMED or REJECTED; or CANCELLED"}
    )
    reason = ma.fields.String(allow_none=True, metadata={"description": "Why the order was rejected"})
    total = Money()
    items = ma.fields.List(ma.fields.Nested(OrderLineSchema))
    created_at = ma.fields.AwareDateTime()
    settled_at = ma.fields.AwareDateTime(allow_none=True)
    cancelled_at = ma.fields.AwareDateTime(allow_none=True)
