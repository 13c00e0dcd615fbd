import marshmallow as ma

from common.fields import Money, StrictInteger

MAX_STOCK = 2**31 - 1


class ProductSchema(ma.Schema):
    id = ma.fields.Integer(dump_only=True)
    name = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=200))
    price = Money(required=True)
    quantity = StrictInteger(required=True, validate=ma.validate.Range(min=0, max=MAX_STOCK))

    @ma.post_load
    def strip_name(self, data, **kwargs):
        data["name"] = data["name"].strip()
        if not data["name"]:
            raise ma.ValidationError("Must not be blank.", "name")
        return data

