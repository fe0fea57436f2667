from flask import Blueprint

bp = Blueprint("team", __name__)

from . import audit_log, routes  # noqa: E402,F401  (registers the views)
