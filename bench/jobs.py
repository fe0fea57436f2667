"""A job that does nothing: the queue's own ceiling for the worker benchmark."""


def noop() -> None:
    return None
