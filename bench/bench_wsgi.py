"""The portal plus one no-op route, served by the same gunicorn: the ceiling the intake is compared with."""

from portal import create_app
from portal.extensions import csrf

app = create_app()


@app.route("/bench/noop", methods=["POST"])
@csrf.exempt
def noop():
    return "ok"
