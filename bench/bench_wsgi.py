"""The portal plus one no-op route, served by the same gunicorn: the ceiling the intake is compared with."""

from portal import create_app
from portal.auth.access import ENDPOINT_ACCESS, PUBLIC
from portal.extensions import csrf

app = create_app()
ENDPOINT_ACCESS["noop"] = PUBLIC  # like the webhook: no sign-in


@app.route("/bench/noop", methods=["POST"])
@csrf.exempt
def noop():
    return "ok"
