"""The portal plus one no-op route, served by the same gunicorn: the ceiling the intake is compared with."""

from portal import create_app
from portal.extensions import csrf, limiter

app = create_app()


@app.route("/bench/noop", methods=["POST"])
@csrf.exempt
@limiter.exempt
def noop():
    return "ok"
