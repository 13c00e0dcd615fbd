import marshmallow as ma

from common.fields import Text

# Argon2 takes any length, but hashing cost grows with it: a bound keeps one
# request from buying seconds of CPU. Long passphrases still fit.
MIN_PASSWORD, MAX_PASSWORD = 8, 256


class NormalisedEmailMixin:
    """Emails are compared trimmed and in lower case: " Ann@X.com" is ann@x.com."""

    @ma.pre_load
    def normalise_email(self, data, **kwargs):
        if isinstance(data, dict) and isinstance(data.get("email"), str):
            data = {**data, "email": data["email"].strip().lower()}
        return data


class CredentialsSchema(NormalisedEmailMixin, ma.Schema):
    email = Text(required=True, validate=[ma.validate.Length(max=254), ma.validate.Email()])
    password = Text(
        required=True,
        load_only=True,
        trim=False,
        validate=ma.validate.Length(
            min=MIN_PASSWORD,
            max=MAX_PASSWORD,
            error=f"Passwords must be {MIN_PASSWORD} to {MAX_PASSWORD} characters long.",
        ),
    )


class LoginSchema(NormalisedEmailMixin, ma.Schema):
    # No policy checks on login: a wrong password is a 401, not a hint about the rules.
    email = Text(required=True, validate=ma.validate.Length(max=254))
    password = Text(required=True, load_only=True, trim=False, validate=ma.validate.Length(max=MAX_PASSWORD))


class UserSchema(ma.Schema):
    id = ma.fields.Integer(dump_only=True)
    email = ma.fields.String(dump_only=True)
    created_at = ma.fields.AwareDateTime(dump_only=True)


class TokenSchema(ma.Schema):
    access_token = ma.fields.String()
    token_type = ma.fields.String()
    expires_in = ma.fields.Integer()
