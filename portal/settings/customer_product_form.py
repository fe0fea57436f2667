"""The Customer & product settings form. Lists that come from e-conomic get their choices at runtime."""

from __future__ import annotations

from zoneinfo import available_timezones

import pycountry
from flask_wtf import FlaskForm
from markupsafe import Markup
from wtforms import BooleanField, FieldList, Form, FormField, HiddenField, RadioField, SelectField, StringField, SubmitField
from wtforms.validators import InputRequired, Length, Optional, Regexp, ValidationError

from ..models import SyncSettings
from ..sync.vat import VatChoice
from .forms import select_choices
from .vat_mapping import VatMappingTable, treatment_from_key

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
# Products checked in e-conomic when they change (the others predate the check).
CHECKED_PRODUCTS = ("shipping_product_number", "rounding_product_number")
NOT_SETTINGS = {"csrf_token", "submit", "vat_mapping"}

# Fields that belong to one option: shown only while it is chosen (static/app.js follows the choice in the
# browser), and validated and saved only then; otherwise what is stored stays. {field: (option field, values)}.
SHOWN_WHEN = {
    "custom_match_stripe_key": ("match_customers_on", ("custom",)),
    "custom_match_economic_field": ("match_customers_on", ("custom",)),
    "fixed_currency": ("currency_mode", ("fixed",)),
    "simple_search_on": ("product_matching", ("simple",)),
    "product_number_metadata_key": ("product_matching", ("direct",)),
    "new_product_group_number": ("product_not_found", ("create",)),
    "discount_product_number": ("apply_invoice_discounts", (True,)),
}

UNKNOWN_TREATMENT = "This row is not a VAT treatment the sync knows: reload the page and choose again."
NOT_MAPPED = "— not mapped: such invoices are held —"
OWN_GROUP = "— the product's own group —"


def _text(number: int | None) -> str:
    return "" if number is None else str(number)


def _with_saved(choices: list[tuple[str, str]], saved: int | None) -> list[tuple[str, str]]:
    """e-conomic's list, plus a saved value it no longer lists, so that saving the page keeps it."""
    choices = list(choices)
    if saved is not None and str(saved) not in {value for value, _ in choices}:
        choices.append((str(saved), f"{saved} (saved)"))
    return choices


def country_choices():
    return sorted(((c.alpha_2, getattr(c, "common_name", None) or c.name) for c in pycountry.countries), key=lambda c: c[1])


class VatMappingRowForm(Form):
    """One treatment's row. The treatment's label is set at runtime as the hidden field's label."""

    treatment = HiddenField(validators=[
        InputRequired(message=UNKNOWN_TREATMENT), Length(max=80, message=UNKNOWN_TREATMENT), Regexp(r"^[\w:.+?\-]+$", message=UNKNOWN_TREATMENT),
    ])
    vat_zone_number = SelectField("VAT zone", validate_choice=False)
    product_group_number = SelectField("Product group for new products", validate_choice=False)

    def validate_vat_zone_number(self, field):
        if field.data and field.data not in {choice.value for choice in field.choices}:
            raise ValidationError(f"VAT zone {field.data} is not in your e-conomic's list of VAT zones: choose one that is.")
        if not field.data and self.product_group_number.data:
            raise ValidationError("Choose a VAT zone too, or set the product group back to the product's own group.")

    def validate_product_group_number(self, field):
        if field.data and field.data not in {choice.value for choice in field.choices}:
            raise ValidationError(f"Product group {field.data} is not in your e-conomic's list of product groups: choose one that is.")

    def choice(self) -> VatChoice:
        def number(value: str | None) -> int | None:
            return int(value) if value else None

        return VatChoice(number(self.vat_zone_number.data), number(self.product_group_number.data))


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
    payment_terms_number = SelectField("Payment terms", validators=[Optional()])
    customer_group_number = SelectField("Customer group", validators=[Optional()])
    home_country = SelectField("Your company's country (decides what is domestic)", choices=select_choices(country_choices()), validators=[InputRequired()])
    vat_zone_domestic = SelectField("VAT zone: domestic customers", validators=[Optional()])
    vat_zone_eu_with_vat_id = SelectField("VAT zone: EU customers with a VAT id (reverse charge)", validators=[Optional()])
    vat_zone_eu_without_vat_id = SelectField("VAT zone: EU customers without a VAT id", validators=[Optional()])
    vat_zone_outside_eu = SelectField("VAT zone: customers outside the EU", validators=[Optional()])
    currency_mode = RadioField("Currency", choices=select_choices(SyncSettings.CURRENCY_MODES), validators=[InputRequired()])
    fixed_currency = SelectField("Fixed currency", validators=[Optional()])
    layout_number = SelectField("Invoice layout", validators=[Optional()])
    time_zone = SelectField("Time zone for invoice dates", choices=select_choices((zone, zone) for zone in sorted(available_timezones())), validators=[InputRequired()])
    # Product Sync
    product_matching = RadioField("Product matching", choices=select_choices(SyncSettings.PRODUCT_MATCHING), validators=[InputRequired()])
    simple_search_on = RadioField("Simple search matches", choices=select_choices(SyncSettings.SIMPLE_SEARCH_ON), validators=[InputRequired()])
    product_number_metadata_key = StringField(
        "Stripe product metadata key holding the e-conomic product number",
        validators=[InputRequired(), *METADATA_KEY[1:]],
    )
    product_not_found = RadioField("When a product is not found", choices=select_choices(SyncSettings.PRODUCT_NOT_FOUND), validators=[InputRequired()])
    default_product_number = StringField(
        "Default product number",
        description="Lines without a Stripe product are booked on this product; with “Use a default product”, so are "
        "products not found in e-conomic.",
        validators=PRODUCT_NUMBER,
    )
    new_product_group_number = SelectField("Product group for new products", validators=[Optional()])
    apply_invoice_discounts = BooleanField("Apply invoice-level discounts (as a negative line on the discount product)")
    discount_product_number = StringField("Discount product number", validators=PRODUCT_NUMBER)
    shipping_product_number = StringField(
        "Shipping product",
        description="Shipping Stripe charged is booked on this product, with its VAT as Stripe computed it.",
        validators=PRODUCT_NUMBER,
    )
    rounding_product_number = StringField(
        "Rounding product",
        description="A VAT rounding difference of a few øre between Stripe and e-conomic is booked on this product; "
        "choose one in a product group whose sales accounts carry no VAT.",
        validators=PRODUCT_NUMBER,
    )
    # VAT mapping: one row per treatment; the rows are set by `set_vat_mapping`.
    vat_mapping = FieldList(FormField(VatMappingRowForm), max_entries=500)
    submit = SubmitField("Save settings")

    def shown(self, name: str) -> bool:
        """Whether the field's option is chosen (fields of no option always are)."""
        if name not in SHOWN_WHEN:
            return True
        option, values = SHOWN_WHEN[name]
        return getattr(self, option).data in values

    def shown_when(self, name: str) -> Markup:
        """The attributes that let app.js show the field only while its option is chosen, hidden at first if it is not."""
        if name not in SHOWN_WHEN:
            return Markup("")
        option, values = SHOWN_WHEN[name]
        condition = option if values == (True,) else f"{option}={'|'.join(values)}"
        return Markup(' data-shown-when="{}"{}').format(condition, Markup("" if self.shown(name) else " hidden"))

    def set_economic_choices(self, lists: dict[str, list[tuple[str, str]]], stored: SyncSettings) -> None:
        """Fill the e-conomic dropdowns; a saved value e-conomic did not list stays choosable."""
        for name, list_name in ECONOMIC_LISTS.items():
            field = getattr(self, name)
            choices = list(lists.get(list_name, []))
            saved = getattr(stored, name)
            if saved not in (None, "") and str(saved) not in {value for value, _ in choices}:
                choices.append((str(saved), f"{saved} (saved)"))
            field.choices = select_choices([("", "— not set —"), *choices])

    def set_vat_mapping(self, table: VatMappingTable, lists: dict[str, list[tuple[str, str]]], home_country: str) -> None:
        """Fill the VAT mapping rows (from the table when showing the page, from the post when saving)
        and give each its dropdowns; a row's current zone or group stays choosable if e-conomic stopped listing it."""
        if not self.is_submitted():
            for row in table.rows:
                self.vat_mapping.append_entry({
                    "treatment": row.treatment.key,
                    "vat_zone_number": _text(row.choice.vat_zone_number),
                    "product_group_number": _text(row.choice.product_group_number),
                })
        rows = {row.treatment.key: row for row in table.rows}
        for entry in self.vat_mapping:
            key = entry.form.treatment.data or ""
            row = rows.get(key)
            treatment = row.treatment if row else treatment_from_key(key, home_country)
            current = row.choice if row else table.current.get(key, VatChoice(None))
            entry.form.treatment.label.text = treatment.label
            entry.form.treatment.description = "on your Stripe tax rates or recent invoices" if row and row.in_stripe else ""
            entry.form.vat_zone_number.choices = select_choices(
                [("", NOT_MAPPED), *_with_saved(lists.get("vat_zones", []), current.vat_zone_number)]
            )
            entry.form.product_group_number.choices = select_choices(
                [("", OWN_GROUP), *_with_saved(lists.get("product_groups", []), current.product_group_number)]
            )

    def vat_mapping_choices(self) -> dict[str, VatChoice]:
        return {entry.form.treatment.data: entry.form.choice() for entry in self.vat_mapping}

    def settings_values(self) -> dict:
        """The SyncSettings columns as the form has them: blank text is None, e-conomic numbers are ints."""
        values = {}
        for name, field in self._fields.items():
            if name in NOT_SETTINGS or not self.shown(name):
                continue  # a hidden option's field keeps what is stored
            value = field.data
            if isinstance(value, str):
                value = value.strip() or None
            if name in NUMBER_FIELDS and value is not None:
                value = int(value)
            values[name] = value
        return values

    def products_to_check(self, stored: SyncSettings) -> dict[str, str]:
        """{field name: product number} of the checked products that are set and differ from what is stored."""
        found = {}
        for name in CHECKED_PRODUCTS:
            number = (getattr(self, name).data or "").strip()
            if number and number != getattr(stored, name):
                found[name] = number
        return found

    def refuse_missing_products(self, to_check: dict[str, str], missing: set[str]) -> None:
        for name, number in to_check.items():
            if number in missing:
                field = getattr(self, name)
                field.errors = [*field.errors, f"e-conomic has no product number {number}. Create it in e-conomic first, or enter another number."]

    def validate(self, extra_validators=None) -> bool:
        super().validate(extra_validators)
        needs = [
            (self.match_customers_on.data == "custom", self.custom_match_stripe_key, "Enter the Stripe metadata key to match on."),
            (self.match_customers_on.data == "custom", self.custom_match_economic_field, "Choose the e-conomic field to match on."),
            (self.product_not_found.data == "default", self.default_product_number, "Enter the default product number."),
            (self.apply_invoice_discounts.data, self.discount_product_number, "Enter the product number for discount lines."),
        ]
        for needed, field, message in needs:
            if needed and not (field.data or "").strip():
                field.errors = [*field.errors, message]
        for name in SHOWN_WHEN:
            field = getattr(self, name)
            if not self.shown(name) and field.errors:
                field.errors = []  # not shown, not saved: nothing to correct
        return not self.errors
