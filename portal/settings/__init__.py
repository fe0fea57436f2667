from flask import Blueprint

bp = Blueprint("settings", __name__)

from . import connections, customer_product, economic_connect, journals, mappings, rules  # noqa: E402,F401,I001  (registers the views)
