import marshmallow as ma

from common.fields import Money, StrictInteger, Text

MAX_STOCK = 2**31 - 1


class ProductSchema(ma.Schema):
    id = ma.fields.Integer(dump_only=True)
    name = Text(required=True, validate=ma.validate.Length(min=1, max=200))
    price = Money(required=True)
    quantity = StrictInteger(required=True, validate=ma.validate.Range(min=0, max=MAX_STOCK))
