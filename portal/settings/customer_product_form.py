"""The Customer & product settings form. Lists that come from e-conomic get their choices at runtime."""

from __future__ import annotations

from zoneinfo import available_timezones

import pycountry
from flask_wtf import FlaskForm
from wtforms import BooleanField, RadioField, SelectField, StringField, SubmitField
from wtforms.validators import InputRequired, Length, Optional, Regexp

from ..models import SyncSettings
from .forms import select_choices

METADATA_KEY = [Optional(), Length(max=40), Regexp(r"^[\w.\-]+$", message="Use letters, digits, _ . and - only.")]
PRODUCT_NUMBER = [Optional(), Length(max=25, message="e-conomic product numbers have at most 25 characters.")]

# e-conomic customer fields that `GET /customers?filter=` can search on.
ECONOMIC_CUSTOMER_FIELDS = [
    ("corporateIdentificationNumber", "Corporate identification number (CVR)"),
    ("vatNumber", "VAT number"),
    ("email", "E-mail"),
    ("name", "Name"),
    ("telephoneAndFaxNumber", "Telephone"),
    ("mobilePhone", "Mobile phone"),
    ("ean", "EAN"),
    ("publicEntryNumber", "Public entry number"),
    ("website", "Website"),
]

# Settings whose choices come from the merchant's e-conomic, and the list each takes them from.
ECONOMIC_LISTS = {
    "payment_terms_number": "payment_terms",
    "customer_group_number": "customer_groups",
    "vat_zone_domestic": "vat_zones",
    "vat_zone_eu_with_vat_id": "vat_zones",
    "vat_zone_eu_without_vat_id": "vat_zones",
    "vat_zone_outside_eu": "vat_zones",
    "fixed_currency": "currencies",
    "layout_number": "layouts",
    "new_product_group_number": "product_groups",
}
NUMBER_FIELDS = {name for name in ECONOMIC_LISTS if name != "fixed_currency"}


def country_choices():
    return sorted(((c.alpha_2, getattr(c, "common_name", None) or c.name) for c in pycountry.countries), key=lambda c: c[1])


class CustomerProductForm(FlaskForm):
    # Customer Sync
    match_customers_on = RadioField("Match customers on", choices=select_choices(SyncSettings.MATCH_CUSTOMERS_ON), validators=[InputRequired()])
    custom_match_stripe_key = StringField("Stripe customer metadata key", validators=METADATA_KEY)
    custom_match_economic_field = SelectField(
        "e-conomic customer field", choices=select_choices([("", "— choose —"), *ECONOMIC_CUSTOMER_FIELDS]), validators=[Optional()]
    )
    customer_number_mode = RadioField("Customer number", choices=select_choices(SyncSettings.CUSTOMER_NUMBER_MODES), validators=[InputRequired()])
    customer_number_metadata_key = StringField(
        "Stripe customer metadata key holding the e-conomic customer number",
        validators=[InputRequired(), *METADATA_KEY[1:]],
    )
    # Customer default mappings
    payment_terms_number = SelectField("Payment Terms", validators=[Optional()])
    customer_group_number = SelectField("Customer Group", validators=[Optional()])
    home_country = SelectField("Your company's country (decides what is domestic)", choices=select_choices(country_choices()), validators=[InputRequired()])
    vat_zone_domestic = SelectField("VAT Zone: domestic customers", validators=[Optional()])
    vat_zone_eu_with_vat_id = SelectField("VAT Zone: EU customers with a VAT id (reverse charge)", validators=[Optional()])
    vat_zone_eu_without_vat_id = SelectField("VAT Zone: EU customers without a VAT id", validators=[Optional()])
    vat_zone_outside_eu = SelectField("VAT Zone: customers outside the EU", validators=[Optional()])
    currency_mode = RadioField("Currency", choices=select_choices(SyncSettings.CURRENCY_MODES), validators=[InputRequired()])
    fixed_currency = SelectField("Fixed currency", validators=[Optional()])
    layout_number = SelectField("Invoice Layout", validators=[Optional()])
    time_zone = SelectField("Time zone for invoice dates", choices=select_choices((zone, zone) for zone in sorted(available_timezones())), validators=[InputRequired()])
    # Product Sync
    product_matching = RadioField("Product matching", choices=select_choices(SyncSettings.PRODUCT_MATCHING), validators=[InputRequired()])
    simple_search_on = RadioField("Simple Search matches", choices=select_choices(SyncSettings.SIMPLE_SEARCH_ON), validators=[InputRequired()])
    product_number_metadata_key = StringField(
        "Direct Link: Stripe product metadata key holding the e-conomic product number",
        validators=[InputRequired(), *METADATA_KEY[1:]],
    )
    product_not_found = RadioField("When a product is not found", choices=select_choices(SyncSettings.PRODUCT_NOT_FOUND), validators=[InputRequired()])
    default_product_number = StringField("Default product number (also used for lines without a Stripe product)", validators=PRODUCT_NUMBER)
    new_product_group_number = SelectField("Product group for new products", validators=[Optional()])
    apply_invoice_discounts = BooleanField("Apply Invoice-Level Discounts (as a negative line on the discount product)")
    discount_product_number = StringField("Discount product number", validators=PRODUCT_NUMBER)
    submit = SubmitField("Save settings")

    def set_economic_choices(self, lists: dict[str, list[tuple[str, str]]], stored: SyncSettings) -> None:
        """Fill the e-conomic dropdowns; a saved value e-conomic did not list stays choosable."""
        for name, list_name in ECONOMIC_LISTS.items():
            field = getattr(self, name)
            choices = list(lists.get(list_name, []))
            saved = getattr(stored, name)
            if saved not in (None, "") and str(saved) not in {value for value, _ in choices}:
                choices.append((str(saved), f"{saved} (saved)"))
            field.choices = select_choices([("", "— not set —"), *choices])

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        needs = [
            (self.match_customers_on.data == "custom", self.custom_match_stripe_key, "Enter the Stripe metadata key to match on."),
            (self.match_customers_on.data == "custom", self.custom_match_economic_field, "Choose the e-conomic field to match on."),
            (self.product_not_found.data == "default", self.default_product_number, "Enter the default product number."),
            (self.apply_invoice_discounts.data, self.discount_product_number, "Enter the product number for discount lines."),
        ]
        for needed, field, message in needs:
            if needed and not (field.data or "").strip():
                field.errors = [*field.errors, message]
                ok = False
        return ok
