"""The start page: what a merchant still has to set up."""

from flask import render_template
from flask_login import current_user, login_required

from . import bp
from .checklist import setup_checklist


@bp.route("/")
@login_required
def home():
    steps = setup_checklist(current_user.merchant_id)
    return render_template("main/home.html", steps=steps, all_done=all(step.done for step in steps))
