from flask_wtf import FlaskForm
from wtforms import BooleanField, RadioField, SelectChoice, SubmitField
from wtforms.validators import InputRequired

from ..models import SyncRule


def select_choices(pairs) -> list[SelectChoice]:
    """WTForms choices from (value, label) pairs or a {value: label} dict."""
    items = pairs.items() if isinstance(pairs, dict) else pairs
    return [SelectChoice(value, label) for value, label in items]


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
