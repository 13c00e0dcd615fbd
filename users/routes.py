from flask import current_app
from flask_smorest import abort
from sqlalchemy.exc import IntegrityError

from common.http.app import PROTECTED, Blueprint
from common.http.identity import current_user_id
from common.http.unit_of_work import transactional
from users import passwords, tokens
from users.models import User, db
from users.schemas import CredentialsSchema, LoginSchema, TokenSchema, UserSchema

blp = Blueprint("users", __name__, description="Registration, login and the current user")


BUSY = "Too many sign-ups and logins at once (this process's hashing slots); retry after Retry-After"


RATE_LIMITED = "Too many attempts from this address (the gateway's rate limit)"


def _hashing_busy():
    abort(503, message="Too many sign-ups and logins at once; try again shortly.", headers={"Retry-After": "1"})


@blp.post("/register")
@transactional(db)
@blp.arguments(CredentialsSchema)
@blp.response(201, UserSchema)
@blp.alt_response(409, description="The email is already registered")
@blp.alt_response(429, description=RATE_LIMITED)
@blp.alt_response(503, description=BUSY)
def register(credentials):
    try:
        password_hash = passwords.hash_password(credentials["password"])
    except passwords.Busy:
        _hashing_busy()
    user = User(email=credentials["email"], password_hash=password_hash)
    db.session.add(user)
    try:
        db.session.flush()
    except IntegrityError:
        # The unique index, not a prior SELECT, decides: two concurrent sign-ups can't both win.
        db.session.rollback()
        abort(409, message="An account with this email already exists.")
    return user


@blp.post("/token")
@transactional(db)
@blp.arguments(LoginSchema)
@blp.response(200, TokenSchema)
@blp.alt_response(401, description="Wrong email or password")
@blp.alt_response(429, description=RATE_LIMITED)
@blp.alt_response(503, description=BUSY)
def token(credentials):
    user = db.session.execute(db.select(User).filter_by(email=credentials["email"])).scalar_one_or_none()
    try:
        if not passwords.verify(user.password_hash if user else None, credentials["password"]):
            abort(401, message="Wrong email or password.")
        if passwords.needs_rehash(user.password_hash):
            user.password_hash = passwords.hash_password(credentials["password"])
    except passwords.Busy:
        _hashing_busy()
    settings = current_app.config["SETTINGS"]
    return tokens.issue(
        user.id, secret=settings.jwt_secret, issuer=settings.jwt_issuer, ttl_seconds=settings.jwt_ttl_seconds
    )


@blp.get("/users/me")
@blp.response(200, UserSchema)
@blp.doc(**PROTECTED)
def me():
    return db.get_or_404(User, current_user_id(), description="No such user.")
