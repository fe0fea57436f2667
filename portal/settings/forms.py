from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, RadioField, SelectChoice, SubmitField
from wtforms.validators import InputRequired, Length, Optional, Regexp

from ..models import SyncRule


def select_choices(pairs) -> list[SelectChoice]:
    """WTForms choices from (value, label) pairs or a {value: label} dict."""
    items = pairs.items() if isinstance(pairs, dict) else pairs
    return [SelectChoice(value, label) for value, label in items]


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


class RulesForm(FlaskForm):
    trigger = RadioField(
        "When should the integration create the e-conomic document?",
        choices=select_choices(SyncRule.TRIGGERS),
        validators=[InputRequired(message="Choose when to sync.")],
    )
    document_type = RadioField(
        "What should it create in e-conomic?",
        choices=select_choices(SyncRule.DOCUMENT_TYPES),
        validators=[InputRequired(message="Choose what to create.")],
    )
    sent_on_finalized_for_automatic = BooleanField(
        "Sent also fires on invoice.finalized for invoices Stripe charges automatically "
        "(Stripe never e-mails those, so they get no invoice.sent)"
    )
    sync_voided_invoices = BooleanField("Sync voided invoices too")
    sync_zero_amount_invoices = BooleanField("Sync invoices with a total of 0 too")
    write_back_to_stripe = BooleanField(
        "Afterwards, write the e-conomic document type and number into the Stripe invoice's metadata"
    )
    submit = SubmitField("Save")
