"""Customer & product settings: how the sync finds or creates customers (step 1) and products (step 2)."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ..extensions import db
from . import bp
from .customer_product_form import NUMBER_FIELDS, CustomerProductForm
from .sync_config import ChoicesUnavailable, economic_choices, sync_settings_for


@bp.route("/customer-product-settings", methods=["GET", "POST"])
@login_required
def customer_product():
    merchant_id = current_user.merchant_id
    settings = sync_settings_for(merchant_id)
    form = CustomerProductForm(obj=settings)
    try:
        lists, lists_error = economic_choices(merchant_id, refresh=bool(request.args.get("refresh"))), None
    except ChoicesUnavailable as error:
        lists, lists_error = {}, str(error)
    form.set_economic_choices(lists, settings)
    if form.validate_on_submit():
        for name, field in form._fields.items():
            if name in ("csrf_token", "submit"):
                continue
            value = field.data
            if isinstance(value, str):
                value = value.strip() or None
            if name in NUMBER_FIELDS and value is not None:
                value = int(value)
            setattr(settings, name, value)
        db.session.commit()
        flash("Customer & product settings saved.", "success")
        return redirect(url_for("settings.customer_product"))
    if request.method == "GET":
        for name in form._fields:
            stored = getattr(settings, name, None)
            if name in NUMBER_FIELDS | {"fixed_currency"}:
                getattr(form, name).data = "" if stored is None else str(stored)
    db.session.commit()  # keeps the defaults created on first visit
    status = 422 if form.errors else 200
    return render_template("settings/customer_product.html", form=form, lists_error=lists_error), status
