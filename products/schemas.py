import marshmallow as ma

from common.fields import Money, StrictInteger, Text
from products.inventory import MAX_STOCK


class ProductSchema(ma.Schema):
    """A product as the API answers it."""

    id = ma.fields.Integer(dump_only=True)
    name = Text(required=True, validate=ma.validate.Length(min=1, max=200))
    price = Money(required=True)
    # No maximum here: what cancelled orders give back may take it past MAX_STOCK.
    quantity = ma.fields.Integer(metadata={"minimum": 0})


class NewProductSchema(ProductSchema):
    """POST /products: a product's stock starts at MAX_STOCK at the most."""

    quantity = StrictInteger(required=True, validate=ma.validate.Range(min=0, max=MAX_STOCK))


class ProductChangesSchema(ma.Schema):
    """PATCH: the name, the price, or both. Stock moves with orders and restocks only."""

    name = Text(validate=ma.validate.Length(min=1, max=200))
    price = Money()

    @ma.validates_schema
    def something_to_change(self, data, **kwargs):
        if not data:
            raise ma.ValidationError("Give a name, a price or both.")


class RestockSchema(ma.Schema):
    add = StrictInteger(required=True, validate=ma.validate.Range(min=1, max=MAX_STOCK))
