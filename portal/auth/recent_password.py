"""Recent-password ("sudo") mode: changing connections needs the password given in the last few minutes.

Signing in, changing one's password and the confirm-password page note the moment in the signed session
cookie; `password_confirmed_recently()` tells whether it is recent enough.
"""

from __future__ import annotations

import time

from flask import session

PASSWORD_CONFIRMED_AT = "password_confirmed_at"
RECENT_PASSWORD_MINUTES = 10


def clock() -> float:
    """Now, in seconds since the epoch (one place, so tests can move it)."""
    return time.time()


def password_confirmed_now() -> None:
    session[PASSWORD_CONFIRMED_AT] = int(clock())


def password_confirmed_recently() -> bool:
    confirmed_at = session.get(PASSWORD_CONFIRMED_AT)
    if not isinstance(confirmed_at, int):
        return False
    return 0 <= clock() - confirmed_at < RECENT_PASSWORD_MINUTES * 60
