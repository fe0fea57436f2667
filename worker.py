"""Run an RQ worker for the portal's queue: `python worker.py`.

Start as many as you need, on as many machines as you like, against the same Redis and database.
SIGTERM (or Ctrl-C) lets the job in hand finish before the worker exits.
"""

from __future__ import annotations

import logging
import sys

from rq import SimpleWorker

from portal import create_app
from portal.queue import RedisNotConfigured, redis_connection, sync_queue


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(levelname)s %(message)s")
    app = create_app()
    try:
        connection = redis_connection(app)
    except RedisNotConfigured as error:
        print(error, file=sys.stderr)
        return 2
    # Jobs run in this process (SimpleWorker): no fork per job, and the app context pushed here
    # is the one every job sees.
    with app.app_context():
        worker = SimpleWorker([sync_queue(app)], connection=connection)
        worker.work(with_scheduler=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
