"""Tying a child process's life to its parent's, so that a parent killed outright leaves nothing behind.

A parent ended by SIGKILL (an OOM kill, a test's timeout, ``kill -9``) runs no clean-up: the
servers and clients it started would live on, holding ports, store files and CPU, with nobody
left to stop them.  Linux can send a signal to a process when the thread that made it dies
(``PR_SET_PDEATHSIG``); the setting survives ``exec``, so it is made once, first thing in the child.
"""

from __future__ import annotations

import ctypes
import os
import signal

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def end_with_parent(parent: int, signum: int = signal.SIGTERM) -> bool:
    """Have the kernel send ``signum`` to this process when ``parent`` dies; False if it refused.

    ``parent`` is the pid the parent had when it started this process: if it died before the tie
    was made, this process is already another's child, and it sends itself ``signum`` at once.
    SIGTERM, not SIGKILL, so that a server still closes its store and says it stopped.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    tied = libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0) == 0
    if os.getppid() != parent:
        os.kill(os.getpid(), signum)
    return tied
