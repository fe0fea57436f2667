"""Webhook intake under gunicorn, driven by wrk from outside, beside a no-op route in the same server.

    .venv/bin/python bench/intake_bench.py     (needs /usr/bin/wrk: `apt-get install wrk`)

    ROUNDS=4 ROUND_SECONDS=5 CONNECTIONS=16 WRK_THREADS=2 EVENTS=60000 WORKERS=4 THREADS=4 change the load.

The web app runs as in production (`gunicorn … --workers 4 --threads 4`, README › Production), with a
merchant and its signing secret and no RQ worker, on SQLite and an embedded Valkey, or on DATABASE_URL
and REDIS_URL when set (a schema and key prefix of its own, dropped afterwards). wrk is the load
generator (a Python one on the same cores was the bottleneck: it capped the no-op route at ~600 req/s).

Every webhook is a distinct, correctly signed invoice.paid (verified and stored):
EVENTS of them are signed just before the run (Stripe's tolerance is 300 s) into one file per wrk
thread, and bench/intake.lua sends each once (a repeated event is a cheaper duplicate). Both routes are
warmed up, then measured in alternating rounds (no-op, intake, no-op, …), so a machine that speeds up
or slows down meanwhile favours neither. Around each round the CPU time of the server's processes is
read from /proc (gunicorn's, the database backends' when the database is a local PostgreSQL, Redis's
from INFO) and divided by the requests served. Afterwards the database must hold exactly one event per
webhook sent, Redis no job (the intake only stores), and a worker's dispatch pass, run here as a worker
would, must queue exactly one job per event; every answer must have been a 200.

On PostgreSQL the tables are analysed before each intake round, as autovacuum would as they grow: a
test server with autovacuum off otherwise plans the run lookup without statistics (bench.common).
bench/intake_profile.py shows where a delivery's CPU goes, step by step.
"""

from __future__ import annotations

import os
import re
import resource
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, SECRET, analyze_tables, environment, median, peak_rss_mib, prepare_merchant  # noqa: E402
from doubles.stripe import make_invoice, signed_event  # noqa: E402

WRK = Path(os.environ.get("WRK", "/usr/bin/wrk"))
SCRIPT = ROOT / "bench" / "intake.lua"
ROUNDS = int(os.environ.get("ROUNDS", 4))
SECONDS = int(os.environ.get("ROUND_SECONDS", 5))
WARM_UP_SECONDS = 2
CONNECTIONS = int(os.environ.get("CONNECTIONS", 16))
WRK_THREADS = int(os.environ.get("WRK_THREADS", 2))
EVENTS = int(os.environ.get("EVENTS", 60_000))
WORKERS = os.environ.get("WORKERS", "4")  # README › Production: --workers 4 --threads 4
THREADS = os.environ.get("THREADS", "4")
SIGNATURE_TOLERANCE = 300  # seconds; stripe.Webhook.DEFAULT_TOLERANCE
NOOP_FLOOR = 1_500  # a no-op Flask route under gunicorn answers thousands of requests a second on 2 cores
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def require_wrk() -> None:
    if not os.access(WRK, os.X_OK):
        sys.exit(f"{WRK} is missing: this benchmark drives the server with wrk. "
                 "Install it with `apt-get install wrk` (Debian/Ubuntu), or set WRK=/path/to/wrk.")


# -- the events ---------------------------------------------------------------------------------------


class Events:
    """Signed events in one file per wrk thread, and how far each thread has used its file."""

    def __init__(self, folder: Path, count: int, threads: int) -> None:
        self.prefix = folder / "events"
        self.offsets: list[list[int]] = [[] for _ in range(threads)]  # byte offset of each line
        self.cursor = [0] * threads  # lines used up
        invoice, _, _ = make_invoice(number="BENCH")
        self.signed_at = int(time.time())
        files = [open(f"{self.prefix}.{n}", "wb") for n in range(threads)]
        try:
            for n in range(count):
                payload, signature = signed_event("invoice.paid", {**invoice, "id": f"in_bench_{n}"}, SECRET,
                                                  f"evt_bench_{n}", timestamp=self.signed_at)
                assert b"\n" not in payload and b"\t" not in payload
                file = files[n % threads]
                self.offsets[n % threads].append(file.tell())
                file.write(signature.encode() + b"\t" + payload + b"\n")
        finally:
            for file in files:
                file.close()

    def intake_args(self) -> list[str]:
        """Script arguments for an intake round: each thread from its first unused event, no repeats."""
        age = time.time() - self.signed_at
        if age > SIGNATURE_TOLERANCE - 2 * SECONDS:
            sys.exit(f"The events were signed {age:.0f} s ago, too close to Stripe's {SIGNATURE_TOLERANCE} s tolerance: "
                     "lower EVENTS (signing takes a while) or ROUNDS.")
        left = [len(offsets) - used for offsets, used in zip(self.offsets, self.cursor, strict=True)]
        if min(left) == 0:
            sys.exit("No unused events left: raise EVENTS.")
        starts = [offsets[used] for offsets, used in zip(self.offsets, self.cursor, strict=True)]
        return [str(self.prefix), ",".join(map(str, starts)), "0"]

    def noop_args(self) -> list[str]:
        """The no-op route reads nothing, so its rounds cycle through the files from the start."""
        return [str(self.prefix), ",".join("0" for _ in self.offsets), "1"]

    def use(self, used: list[int]) -> None:
        self.cursor = [cursor + n for cursor, n in zip(self.cursor, used, strict=True)]


# -- wrk --------------------------------------------------------------------------------------------


@dataclass
class Round:
    """One wrk run, as wrk and bench/intake.lua saw it."""

    rate: float  # completed requests per second
    p50: float  # ms
    p99: float
    sent: int  # requests written to the server (some may be in flight when wrk stops: no answer read)
    ok: int  # answers read with status 200
    other: int  # answers read with any other status
    socket_errors: int
    used: list[int]  # events used up, per thread
    first_error: str
    wrk_cpu: float  # seconds
    cpu: dict[str, float] = field(default_factory=dict)  # server seconds by component
    seconds: float = 0.0  # wall time of the wrk run
    machine_busy: float = 0.0  # CPU seconds the whole machine used meanwhile, all processes (ours and others')


UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def run_wrk(url: str, seconds: int, script_args: list[str]) -> Round:
    command = [str(WRK), f"-t{WRK_THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", "-s", str(SCRIPT), url,
               "--", *script_args]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    output = done.stdout + done.stderr
    if done.returncode != 0 or "Requests/sec" not in output:
        sys.exit(f"wrk failed ({done.returncode}):\n{output}")

    def latency(percent: int) -> float:
        value, unit = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.M).groups()
        return float(value) * UNITS[unit]

    threads = sorted(re.findall(r"^intake\.lua thread=(\d+) used=(\d+) sent=(\d+) ok=(\d+) other=(\d+) first_error=(.*)$",
                                output, re.M), key=lambda thread: int(thread[0]))
    if len(threads) != WRK_THREADS:
        sys.exit(f"bench/intake.lua reported {len(threads)} threads of {WRK_THREADS}:\n{output}")
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return Round(
        rate=float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)), p50=latency(50), p99=latency(99),
        sent=sum(int(thread[2]) for thread in threads), ok=sum(int(thread[3]) for thread in threads),
        other=sum(int(thread[4]) for thread in threads),
        socket_errors=sum(map(int, socket_errors.groups())) if socket_errors else 0,
        used=[int(thread[1]) for thread in threads],
        first_error=next((thread[5] for thread in threads if thread[5]), ""),
        wrk_cpu=(after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
    )


# -- CPU time of the server ---------------------------------------------------------------------------


def process_cpu(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds; 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # fields 14 and 15 of proc(5)


def process_tree(root: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += parents.get(pid, [])
    return tree


class ServerCpu:
    """CPU seconds used so far by the server: gunicorn's processes, the PostgreSQL backends serving them
    (found by application_name, when their processes are on this machine), and Redis (INFO cpu; a shared
    Redis counts whatever else it serves meanwhile)."""

    def __init__(self, gunicorn_pid: int, redis_url: str, embedded_redis: bool, database_url: str, application_name: str) -> None:
        import redis

        self.gunicorn_pid = gunicorn_pid
        self.redis = redis.Redis.from_url(redis_url)
        self.redis_label = "embedded Valkey" if embedded_redis else "Redis (whole server, shared)"
        self.database = None
        if database_url.startswith("postgres"):
            from sqlalchemy import create_engine
            from sqlalchemy.pool import NullPool

            self.database = create_engine(database_url, poolclass=NullPool)
            self.application_name = application_name

    def _backends(self) -> list[int]:
        from sqlalchemy import text

        with self.database.connect() as connection:
            pids = connection.scalars(text("SELECT pid FROM pg_stat_activity WHERE application_name = :name"),
                                      {"name": self.application_name}).all()
        return [pid for pid in pids if Path(f"/proc/{pid}/stat").exists()]

    def snapshot(self) -> dict[str, float]:
        cpu = {"gunicorn": sum(process_cpu(pid) for pid in process_tree(self.gunicorn_pid))}
        if self.database is not None:
            backends = self._backends()
            if backends:
                cpu["PostgreSQL backends"] = sum(process_cpu(pid) for pid in backends)
        info = self.redis.info("cpu")
        cpu[self.redis_label] = info["used_cpu_user"] + info["used_cpu_sys"]
        return cpu


def machine_cpu() -> float:
    """CPU seconds the machine has spent busy (all cores, every process): /proc/stat minus idle and iowait."""
    ticks = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / CLOCK_TICKS  # guest time is already in user


def measured(url: str, seconds: int, script_args: list[str], meter: ServerCpu) -> Round:
    """A wrk run, with the server's CPU time it cost (in-flight requests are let finish first)."""
    before = meter.snapshot()
    machine, started = machine_cpu(), time.perf_counter()
    result = run_wrk(url, seconds, script_args)
    result.machine_busy, result.seconds = machine_cpu() - machine, time.perf_counter() - started
    time.sleep(0.3)
    after = meter.snapshot()
    result.cpu = {name: after[name] - before.get(name, 0.0) for name in after}
    return result


def checked(result: Round, route: str) -> Round:
    if result.other or result.socket_errors:
        sys.exit(f"{route}: {result.other} answers other than 200 and {result.socket_errors} socket errors "
                 f"(first: {result.first_error or '–'}); the figures would not be the route's.")
    return result


# -- the run ------------------------------------------------------------------------------------------


def main() -> None:
    require_wrk()
    embedded_redis = not os.environ.get("REDIS_URL")
    with environment() as (env, tmp):
        from portal import create_app

        app = create_app()
        merchant = prepare_merchant(app)
        run = uuid.uuid4().hex[:8]
        application_name = f"invoice-sync-bench-{run}"
        server_env = {**os.environ, **env}
        if env["DATABASE_URL"].startswith("postgres"):  # to find our backends among a shared server's
            server_env["DATABASE_URL"] += f"{'&' if '?' in env['DATABASE_URL'] else '?'}application_name={application_name}"
        # gunicorn's control socket in a directory of our own, as the systemd unit does (deploy/), not in
        # ~/.gunicorn where every other gunicorn on the machine puts its own.
        (tmp / "run").mkdir(mode=0o700)
        server_env["XDG_RUNTIME_DIR"] = str(tmp / "run")
        port = free_port()
        log = tmp / "gunicorn.log"
        with open(log, "wb") as log_file:
            server = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "bench.bench_wsgi:app", "--workers", WORKERS, "--threads", THREADS,
                 "--bind", f"127.0.0.1:{port}"], cwd=ROOT, env=server_env, stdout=log_file, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        noop_url, intake_url = f"{base}/bench/noop", f"{base}/webhooks/stripe/{merchant['webhook_key']}"
        intake: list[Round] = []
        noop: list[Round] = []
        warm_up: list[Round] = []
        try:
            wait_for_http(f"{base}/login", server, log)
            meter = ServerCpu(server.pid, env["REDIS_URL"], embedded_redis, env["DATABASE_URL"], application_name)
            signing = time.perf_counter()
            events = Events(tmp, EVENTS, WRK_THREADS)
            signing = time.perf_counter() - signing

            autovacuum_off = []

            def intake_round(seconds: int) -> Round:
                autovacuum_off.append(analyze_tables(app))  # as autovacuum does while a table grows (not measured)
                result = checked(measured(intake_url, seconds, events.intake_args(), meter), "webhook intake")
                events.use(result.used)
                return result

            warm_up.append(checked(measured(noop_url, WARM_UP_SECONDS, events.noop_args(), meter), "no-op route"))
            warm_up.append(intake_round(WARM_UP_SECONDS))
            for _ in range(ROUNDS):
                noop.append(checked(measured(noop_url, SECONDS, events.noop_args(), meter), "no-op route"))
                intake.append(intake_round(SECONDS))
            rss = [peak_rss_mib(pid) for pid in process_tree(server.pid)[1:]]
        except BaseException:
            print(log.read_text()[-3000:], file=sys.stderr)
            raise
        finally:
            server.terminate()  # gunicorn lets the requests in hand finish
            server.wait()

        sent = sum(r.sent for r in intake) + warm_up[1].sent
        answered = sum(r.ok for r in intake) + warm_up[1].ok
        stored = stored_counts(app, merchant["id"], env)
        report(noop, intake, env, embedded_redis, rss, signing, events, sent, answered, stored)
        if any(autovacuum_off):
            print("  (this PostgreSQL has autovacuum off: the bench analysed its tables before each intake round, as "
                  "autovacuum would have; see bench.common.analyze_tables)")
        if stored["events stored"] != sent or stored["event jobs queued by the dispatch pass"] != sent \
                or stored["jobs queued by the intake"] != 0:
            sys.exit(f"FAILED: {sent} distinct events sent to the intake, but {stored}: the route dropped or doubled work.")
        if not 0 <= sent - answered <= CONNECTIONS * (1 + ROUNDS):
            sys.exit(f"FAILED: {sent} events sent but {answered} answers read: more unanswered than wrk can have in flight.")


def stored_counts(app, merchant_id: int, env: dict) -> dict[str, int]:
    """What the intake left behind, then what a worker's dispatch pass makes of it: the events stored, the
    jobs in Redis before that pass (none: the intake does not talk to Redis), and — after running the pass
    here, as a worker would — the event jobs queued, one per event. Also the pass's CPU per event."""
    from redis import Redis
    from rq import Queue
    from sqlalchemy import func, select

    from portal.extensions import db
    from portal.models import WebhookEvent
    from portal.runs.dispatch import events_dispatch

    connection = Redis.from_url(env["REDIS_URL"])
    queue = Queue(env["RQ_QUEUE"], connection=connection)
    jobs_before = queue.count
    with app.app_context():
        events = db.session.scalar(select(func.count()).select_from(WebhookEvent).where(WebhookEvent.merchant_id == merchant_id))
        started = time.thread_time()
        dispatched = events_dispatch()
        dispatch_ms = 1000 * (time.thread_time() - started) / max(dispatched, 1)
        db.session.remove()
        db.engine.dispose()
    event_jobs = sum(1 for job in queue.get_jobs() if job.func_name.endswith(".event_job"))
    connection.close()
    return {"events stored": events, "jobs queued by the intake": jobs_before, "event jobs queued by the dispatch pass": event_jobs,
            "dispatch_ms": dispatch_ms}


def report(noop: list[Round], intake: list[Round], env: dict, embedded_redis: bool, rss: list[float], signing: float,
           events: Events, sent: int, answered: int, stored: dict[str, int]) -> None:
    database = "PostgreSQL" if env["DATABASE_URL"].startswith("postgres") else "SQLite"
    redis = "embedded Valkey" if embedded_redis else "Redis at REDIS_URL"
    print(f"gunicorn --workers {WORKERS} --threads {THREADS}, {database} + {redis}, no RQ worker; "
          f"wrk -t{WRK_THREADS} -c{CONNECTIONS} -d{SECONDS}s, {ROUNDS} alternating rounds a route after "
          f"{WARM_UP_SECONDS} s of warm-up each; {EVENTS:,} events signed in {signing:.1f} s, {sum(events.cursor):,} used")

    def spread(values: list[float], fmt: str) -> str:
        return f"{format(median(values), fmt)} ({format(min(values), fmt)}–{format(max(values), fmt)})"

    def cpu(rounds: list[Round]) -> str:
        served = sum(r.sent for r in rounds)
        names = list(dict.fromkeys(name for r in rounds for name in r.cpu))
        parts = {name: 1000 * sum(r.cpu.get(name, 0.0) for r in rounds) / served for name in names}
        wrk = 1000 * sum(r.wrk_cpu for r in rounds) / served
        detail = ", ".join(f"{name} {value:.2f}" for name, value in parts.items())
        return f"{sum(parts.values()):.2f} ms CPU/request ({detail}; wrk itself {wrk:.2f})"

    for label, rounds in (("no-op route (ceiling)", noop), ("webhook intake", intake)):
        print(f"  {label + ':':23s} {spread([r.rate for r in rounds], ',.0f')} req/s   "
              f"p50 {spread([r.p50 for r in rounds], '.1f')} ms   p99 {spread([r.p99 for r in rounds], '.1f')} ms")
        print(f"  {'':23s} {cpu(rounds)}")
        wall = sum(r.seconds for r in rounds)
        ours = sum(sum(r.cpu.values()) + r.wrk_cpu for r in rounds) / wall
        print(f"  {'':23s} machine busy {sum(r.machine_busy for r in rounds) / wall:.2f} of {os.cpu_count()} cores "
              f"(this server and wrk {ours:.2f}; the rest is other work on the machine)")
    ratios = [i.rate / n.rate for i, n in zip(intake, noop, strict=True)]
    print(f"  intake / no-op: median {median(ratios):.1%}; round by round {', '.join(f'{r:.1%}' for r in ratios)}")
    ceiling = median([r.rate for r in noop])
    if ceiling < NOOP_FLOOR:
        print(f"  WARNING: the no-op route answered only {ceiling:,.0f} req/s; a no-op Flask route under gunicorn answers "
              f"thousands a second on this machine, so the load generator or the machine is the bottleneck: "
              f"these figures do not measure the route.")
    else:
        print(f"  sanity: the no-op ceiling of {ceiling:,.0f} req/s is in the thousands, as a no-op Flask route under "
              f"gunicorn should be here (under {NOOP_FLOOR:,} would mean the load generator or machine is the bottleneck)")
    print(f"  correctness: {sent:,} distinct events sent to the intake (warm-up included), {answered:,} 200s read, "
          f"{sent - answered} in flight when wrk stopped (at most {CONNECTIONS} × {1 + ROUNDS}), no other status; "
          + ", ".join(f"{count:,} {name}" for name, count in stored.items() if name != "dispatch_ms"))
    print(f"  the dispatch pass, run afterwards as a worker would: {stored['dispatch_ms']:.3f} ms CPU per event to claim it "
          f"and queue its job (500 a round trip)")
    print(f"  peak RSS of the web workers: {', '.join(f'{value:.0f} MiB' for value in rss)}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, server: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {server.returncode}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


if __name__ == "__main__":
    main()
