from flask import Blueprint

bp = Blueprint("history", __name__)

from . import routes  # noqa: E402,F401  (registers the views)
from .steps import template_helpers  # noqa: E402  (the invoice page's words, see steps.py)

bp.context_processor(template_helpers)
