"""Child processes that do not outlive the process that started them."""

from __future__ import annotations

import ctypes
import signal
import sys


def die_with_parent() -> None:
    """Ask Linux to SIGTERM the calling process when its parent dies, even by SIGKILL (elsewhere: nothing).

    Call it in a freshly started child (a `preexec_fn`, or an `os.register_at_fork` hook).
    """
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
