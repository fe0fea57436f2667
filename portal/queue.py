"""Redis and the RQ queue, as configured for the app."""

from __future__ import annotations

from flask import Flask, current_app
from redis import Redis
from rq import Queue


class RedisNotConfigured(RuntimeError):
    pass


def redis_connection(app: Flask | None = None) -> Redis:
    app = app or current_app
    url = app.config.get("REDIS_URL")
    if not url:
        raise RedisNotConfigured(
            "REDIS_URL is not set and no embedded server is running: start the portal with `make run`, "
            "or set REDIS_URL=redis://host:6379/0."
        )
    connection = app.extensions.get("redis")
    if connection is None:
        connection = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30)
        app.extensions["redis"] = connection
    return connection


def sync_queue(app: Flask | None = None) -> Queue:
    app = app or current_app
    return Queue(app.config["RQ_QUEUE"], connection=redis_connection(app))
