"""The sync engine and its two remote clients. Plain Python: nothing in this package imports Flask."""
