"""Page-numbered listing, the same for every collection."""

import marshmallow as ma
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import Select

from common.fields import QueryInteger


class PageArgsSchema(ma.Schema):
    page = QueryInteger(load_default=1, validate=ma.validate.Range(min=1, max=1_000_000))
    per_page = QueryInteger(load_default=20, validate=ma.validate.Range(min=1, max=100))


def page_schema(item_schema: type[ma.Schema]) -> type[ma.Schema]:
    """{"items": [...], "page": 1, "per_page": 20, "total": 42}"""
    return ma.Schema.from_dict(
        {
            "items": ma.fields.List(ma.fields.Nested(item_schema)),
            "page": ma.fields.Integer(),
            "per_page": ma.fields.Integer(),
            "total": ma.fields.Integer(),
        },
        name=f"{item_schema.__name__.removesuffix('Schema')}PageSchema",
    )


def paginate(db: SQLAlchemy, select: Select, args: dict) -> dict:
    page = db.paginate(select, page=args["page"], per_page=args["per_page"], error_out=False)
    return {"items": page.items, "page": page.page, "per_page": page.per_page, "total": page.total}
