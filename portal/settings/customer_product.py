"""Customer & product settings: how the sync finds or creates customers (step 1) and products (step 2),
and where each VAT treatment Stripe applied goes in e-conomic (the VAT mapping)."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ..extensions import db
from . import bp
from .customer_product_form import NUMBER_FIELDS, CustomerProductForm
from .sync_config import (
    ChoicesUnavailable,
    VatMappingError,
    economic_choices,
    economic_products_check,
    sync_settings_update,
    vat_mappings_save,
)
from ..merchant_config import sync_settings_for
from .vat_mapping import vat_mapping_changes, vat_mapping_table


@bp.route("/customer-product-settings", methods=["GET", "POST"])
@login_required
def customer_product():
    merchant_id = current_user.merchant_id
    refresh = bool(request.args.get("refresh"))
    settings = sync_settings_for(merchant_id)
    try:
        lists, lists_error = economic_choices(merchant_id, refresh=refresh), None
    except ChoicesUnavailable as error:
        lists, lists_error = {}, str(error)
    vat_table = vat_mapping_table(merchant_id, settings.home_country, refresh=refresh)
    form = CustomerProductForm(obj=settings)
    form.set_economic_choices(lists, settings)
    form.set_vat_mapping(vat_table, lists, settings.home_country)
    if form.validate_on_submit():
        products = form.products_to_check(settings)
        check = economic_products_check(merchant_id, products.values())
        form.refuse_missing_products(products, check.missing)
        if not check.missing:
            try:
                vat_mappings_save(merchant_id, vat_mapping_changes(vat_table.current, form.vat_mapping_choices()))
            except VatMappingError as error:
                form.form_errors.append(str(error))
            else:
                sync_settings_update(settings, form.settings_values())
                db.session.commit()
                flash("Customer & product settings saved.", "success")
                if check.warning:
                    flash(check.warning, "warning")
                return redirect(url_for("settings.customer_product"))
    if request.method == "GET":
        for name in form._fields:
            stored = getattr(settings, name, None)
            if name in NUMBER_FIELDS | {"fixed_currency"}:
                getattr(form, name).data = "" if stored is None else str(stored)
    db.session.commit()  # keeps the defaults created on first visit
    status = 422 if form.errors else 200
    return render_template("settings/customer_product.html", form=form, lists_error=lists_error, vat_note=vat_table.note), status
