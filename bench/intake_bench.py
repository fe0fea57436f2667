"""Webhook intake under gunicorn with concurrent clients, beside a no-op route in the same server.

    .venv/bin/python bench/intake_bench.py   (REQUESTS=2000 CLIENTS=16 WORKERS=2 to change the load)

Every webhook is a distinct, correctly signed invoice.paid: verified, stored, a run created and queued.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, SECRET, environment, median, peak_rss_mib, percentile, prepare_merchant  # noqa: E402
from doubles.stripe import make_invoice, signed_event  # noqa: E402
from portal.embedded_redis import free_port  # noqa: E402

REQUESTS = int(os.environ.get("REQUESTS", 2000))
CLIENTS = int(os.environ.get("CLIENTS", 16))
WORKERS = os.environ.get("WORKERS", "2")


def hammer(url: str, bodies: list[tuple[bytes, dict]]) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    position = [0]

    def client():
        session = requests.Session()
        while True:
            with lock:
                if position[0] >= len(bodies):
                    return
                body, headers = bodies[position[0]]
                position[0] += 1
            started = time.perf_counter()
            answer = session.post(url, data=body, headers=headers, timeout=30)
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                latencies.append(elapsed)
                errors[0] += answer.status_code != 200

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(bodies) / (time.perf_counter() - started), latencies, errors[0]


def main() -> None:
    with environment() as (env, tmp):
        from portal import create_app

        merchant = prepare_merchant(create_app())
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "bench.bench_wsgi:app", "--bind", f"127.0.0.1:{port}", "--workers", WORKERS,
             "--threads", "4", "--log-level", "warning"], cwd=ROOT, env={**os.environ, **env})
        try:
            wait_for_port_http(f"http://127.0.0.1:{port}/login")
            base = f"http://127.0.0.1:{port}"
            webhooks = []
            invoice, _, _ = make_invoice(number="BENCH")
            for n in range(REQUESTS):
                payload, signature = signed_event("invoice.paid", {**invoice, "id": f"in_bench_{n}"}, SECRET, f"evt_bench_{n}")
                webhooks.append((payload, {"Stripe-Signature": signature, "Content-Type": "application/json"}))
            noops = [(payload, headers) for payload, headers in webhooks]
            hammer(base + "/bench/noop", noops[:200])  # warm up
            noop_rps, noop_lat, noop_errors = hammer(base + "/bench/noop", noops)
            intake_rps, intake_lat, intake_errors = hammer(f"{base}/webhooks/stripe/{merchant['webhook_key']}", webhooks)
            rss = [peak_rss_mib(int(pid)) for pid in children_of(server.pid)]
            print(f"gunicorn {WORKERS} workers × 4 threads, {CLIENTS} concurrent clients, {REQUESTS} requests each, "
                  f"{env['DATABASE_URL'].split(':')[0]}")
            print(f"  no-op route (ceiling): {noop_rps:7.0f} req/s   p50 {median(noop_lat):6.1f} ms   p99 {percentile(noop_lat, 0.99):6.1f} ms   errors {noop_errors}")
            print(f"  webhook intake:        {intake_rps:7.0f} req/s   p50 {median(intake_lat):6.1f} ms   p99 {percentile(intake_lat, 0.99):6.1f} ms   errors {intake_errors}")
            print(f"  intake / ceiling = {intake_rps / noop_rps:.0%}   (goal ≥ 50 %)")
            print(f"  peak RSS of the web workers: {', '.join(f'{value:.0f} MiB' for value in rss)}")
        finally:
            server.terminate()
            server.wait()


def wait_for_port_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


def children_of(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


if __name__ == "__main__":
    main()
