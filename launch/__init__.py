"""The launchers of `make run` (devserver) and `make demo` (demo), and the embedded Valkey they start.

Imports point one way: launch → portal and doubles. The app package never imports launch or the doubles.
"""
