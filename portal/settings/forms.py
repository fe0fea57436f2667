from flask_wtf import FlaskForm
from wtforms import PasswordField, SubmitField
from wtforms.validators import Length, Optional, Regexp


class ConnectionsForm(FlaskForm):
    """Secrets are write-only: the fields are never filled from what is stored."""

    stripe_secret_key = PasswordField(
        "Stripe secret key (or restricted key)",
        validators=[Optional(), Length(max=255), Regexp(r"^(sk|rk)_(test|live)_\S+$", message="Stripe keys start with sk_test_, sk_live_, rk_test_ or rk_live_.")],
    )
    stripe_webhook_secret = PasswordField(
        "Stripe webhook signing secret",
        validators=[Optional(), Length(max=255), Regexp(r"^whsec_\S+$", message="Signing secrets start with whsec_.")],
    )
    economic_app_secret_token = PasswordField(
        "e-conomic App Secret Token", validators=[Optional(), Length(max=255), Regexp(r"^\S+$", message="Tokens contain no spaces.")]
    )
    economic_agreement_grant_token = PasswordField(
        "e-conomic Agreement Grant Token", validators=[Optional(), Length(max=255), Regexp(r"^\S+$", message="Tokens contain no spaces.")]
    )
    submit = SubmitField("Save connections")
