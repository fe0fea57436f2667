"""`make run` end to end: web, worker and the embedded Redis start, the login works, Ctrl-C stops all."""

import re
import signal
import time

import requests

from .helpers import csrf_token_from
from .live import alive, descendants, running_portal


def test_make_run_starts_everything_and_ctrl_c_leaves_no_process(tmp_path):
    with running_portal(tmp_path) as portal:
        log = portal.log()
        assert f"Invoice Sync is running on {portal.base_url}" in log
        assert "Embedded Redis-compatible server (Valkey)" in log
        email = re.search(r"e-mail:\s+(\S+)", log).group(1)
        password = re.search(r"password:\s+(\S+)", log).group(1)

        session = requests.Session()
        token = csrf_token_from(session.get(portal.base_url + "/login").text)
        response = session.post(
            portal.base_url + "/login", data={"email": email, "password": password, "csrf_token": token}
        )
        assert response.url == portal.base_url + "/"
        assert "Getting connected" in response.text

        deadline = time.monotonic() + 20
        while "Listening on invoice-sync" not in portal.log() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "Listening on invoice-sync" in portal.log()  # the RQ worker is up too

        processes = descendants(portal.process.pid)
        assert len(processes) >= 4  # gunicorn master + workers, the RQ worker, Valkey
        portal.process.send_signal(signal.SIGINT)
        assert portal.process.wait(timeout=30) == 0
        assert [pid for pid in processes if alive(pid)] == []
        assert "Stopped." in portal.log()


def test_second_start_keeps_the_data_and_prints_no_new_login(tmp_path):
    env = {"PORTAL_ADMIN_EMAIL": "ops@shop.test", "PORTAL_ADMIN_PASSWORD": "a long deployment password", "PORTAL_MERCHANT_NAME": "Shop ApS"}
    with running_portal(tmp_path, env) as portal:
        assert "Created merchant “Shop ApS”" in portal.log()
        assert "ops@shop.test" in portal.log()
        assert "a long deployment password" not in portal.log()
    with running_portal(tmp_path, env) as portal:
        assert "Created merchant" not in portal.log()
        session = requests.Session()
        token = csrf_token_from(session.get(portal.base_url + "/login").text)
        response = session.post(
            portal.base_url + "/login",
            data={"email": "ops@shop.test", "password": "a long deployment password", "csrf_token": token},
        )
        assert "Shop ApS" in response.text
