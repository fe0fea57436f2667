"""A threaded WSGI server on 127.0.0.1 that a test starts and stops."""

from __future__ import annotations

import os
import pickle
import threading
from pathlib import Path
from typing import Any, Self

from werkzeug.serving import WSGIRequestHandler, make_server


class QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs) -> None:  # a test double's access log is noise
        pass


class LocalServer:
    """Serve a WSGI app on a free port in a background thread; a context manager."""

    def __init__(self, app) -> None:
        self._server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
        self._server.daemon_threads = True
        self.port = self._server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread: threading.Thread | None = None

    def start(self):
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"double-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _relink(value: Any, old: str, new: str) -> Any:
    """`value` (dicts, lists, tuples, sets of plain values) with `old` replaced by `new` in every string."""
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, dict):
        return {_relink(key, old, new): _relink(item, old, new) for key, item in value.items()}
    if isinstance(value, (list, tuple, set)):
        return type(value)(_relink(item, old, new) for item in value)
    return value


class ServedDouble:
    """A fake remote API served on 127.0.0.1: `start()`/`stop()`, or use it as a context manager.

    A double that names its data in KEPT (attributes) can keep it in a file between runs (`make demo`):
    `keep_data_in(path)`, then `saved_after(request.method)` after each request that may have changed it."""

    KEPT: tuple[str, ...] = ()
    kept_in: Path | None = None
    lock: threading.RLock

    def serve(self, app) -> None:
        self.server = LocalServer(app)
        self.url = self.server.url

    @property
    def _url_mark(self) -> str:
        """Stands for the double's address inside the kept data: a new run has a new port."""
        return f"\x00{type(self).__name__}-url\x00"

    def keep_data_in(self, path: Path | str) -> bool:
        """Load what a previous run saved in `path`, and save there after every change, so stopping and
        starting the demo keeps the double's data beside the portal's own database. Answers whether there
        was data to load."""
        self.kept_in = Path(path)
        if not self.kept_in.exists():
            self.save()
            return False
        with open(self.kept_in, "rb") as file:
            kept = _relink(pickle.load(file), self._url_mark, self.url)  # our own file: trusted like the database
        with self.lock:
            for name in self.KEPT:
                if name in kept:
                    setattr(self, name, kept[name])
        return True

    def save(self) -> None:
        """Write the kept data to the file given to keep_data_in, atomically (a new file, then renamed)."""
        with self.lock:  # the file too: two requests saving at once would write the same partial file
            kept = _relink({name: getattr(self, name) for name in self.KEPT}, self.url, self._url_mark)
            data = pickle.dumps(kept, protocol=pickle.HIGHEST_PROTOCOL)
            self.kept_in.parent.mkdir(parents=True, exist_ok=True)
            partial = self.kept_in.with_name(self.kept_in.name + ".partial")
            partial.write_bytes(data)
            os.replace(partial, self.kept_in)

    def saved_after(self, method: str) -> None:
        """Save the kept data after a request that may have changed it (any but a read)."""
        if self.kept_in is not None and method not in ("GET", "HEAD", "OPTIONS"):
            self.save()

    def start(self) -> Self:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
