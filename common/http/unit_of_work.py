"""One unit of work per writing request: the view, and the domain code it calls,
change rows and never commit; `transactional` commits once, after the view has
answered 2xx, and rolls back otherwise (an error raised as an exception rolls
back as the session is removed at the end of the request). Idempotency keys are
built on it (idempotency_keys.py), and the event consumer follows the same rule
for a batch of events (common/messaging/consumer.py).

    @blp.patch("/products/<id:product_id>")
    @transactional(db)                  # above flask-smorest's decorators: it sees the response
    @blp.arguments(ProductChangesSchema)
    @blp.response(200, ProductSchema)
    def change_product(changes, product_id): ...
"""

from functools import wraps

from flask import Response, make_response
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import Session


def transactional(db: SQLAlchemy):
    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            response = make_response(view(*args, **kwargs))
            finish(db.session, response)
            return response

        return wrapper

    return decorator


def finish(session: Session, response: Response) -> None:
    """Commit the request's work if its answer says it was done (2xx); else undo it."""
    if response.status_code < 300:
        session.commit()
    else:
        session.rollback()
