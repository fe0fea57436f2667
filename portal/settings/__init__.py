from flask import Blueprint

bp = Blueprint("settings", __name__)

from . import connections  # noqa: E402,F401  (registers the views)
