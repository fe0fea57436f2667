"""Webhook intake under gunicorn with concurrent clients, beside a no-op route in the same server.

    .venv/bin/python bench/intake_bench.py   (REQUESTS=2000 CLIENTS=16 WORKERS=2 ROUNDS=4 to change the load)

Every webhook is a distinct, correctly signed invoice.paid: verified, stored, a run created and queued.
Both routes are warmed up first, then measured in alternating rounds (no-op, intake, no-op, …) so a
machine that speeds up or slows down during the run does not favour either.
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
ROUNDS = int(os.environ.get("ROUNDS", 4))
WARM_UP = 200


class Tally:
    """Requests, time, latencies and errors summed over the rounds of one route."""

    def __init__(self) -> None:
        self.requests, self.seconds, self.latencies, self.errors = 0, 0.0, [], 0
        self.round_rates: list[float] = []

    def add(self, requests: int, seconds: float, latencies: list[float], errors: int) -> None:
        self.requests += requests
        self.seconds += seconds
        self.latencies += latencies
        self.errors += errors
        self.round_rates.append(requests / seconds)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def hammer(url: str, bodies: list[tuple[bytes, dict]]) -> tuple[int, float, list[float], int]:
    """POST every body to `url` from CLIENTS threads: requests, seconds taken, latencies (ms), errors."""
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
    return len(bodies), time.perf_counter() - started, latencies, errors[0]


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
            for n in range(WARM_UP + REQUESTS):
                payload, signature = signed_event("invoice.paid", {**invoice, "id": f"in_bench_{n}"}, SECRET, f"evt_bench_{n}")
                webhooks.append((payload, {"Stripe-Signature": signature, "Content-Type": "application/json"}))
            noop_url, intake_url = base + "/bench/noop", f"{base}/webhooks/stripe/{merchant['webhook_key']}"
            hammer(noop_url, webhooks[:WARM_UP])
            hammer(intake_url, webhooks[:WARM_UP])
            noop, intake = Tally(), Tally()
            measured = webhooks[WARM_UP:]
            for round_ in range(ROUNDS):
                chunk = measured[round_ * len(measured) // ROUNDS:(round_ + 1) * len(measured) // ROUNDS]
                noop.add(*hammer(noop_url, chunk))  # the same bodies: the no-op reads nothing
                intake.add(*hammer(intake_url, chunk))
            rss = [peak_rss_mib(int(pid)) for pid in children_of(server.pid)]
            print(f"gunicorn {WORKERS} workers × 4 threads, {CLIENTS} concurrent clients, {REQUESTS} requests each in {ROUNDS} alternating rounds, "
                  f"{env['DATABASE_URL'].split(':')[0]}")
            for label, tally in (("no-op route (ceiling):", noop), ("webhook intake:", intake)):
                print(f"  {label:22s} {tally.rate:7.0f} req/s   p50 {median(tally.latencies):6.1f} ms   "
                      f"p99 {percentile(tally.latencies, 0.99):6.1f} ms   errors {tally.errors}")
            rounds = ", ".join(f"{i / n:.0%}" for i, n in zip(intake.round_rates, noop.round_rates, strict=True))
            print(f"  intake / ceiling = {intake.rate / noop.rate:.0%}   (goal ≥ 50 %; round by round: {rounds})")
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
