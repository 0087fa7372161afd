"""Small helpers of the pure engine's waits: the twin of ``src_c/util.pxi``."""

import math
import threading


def millis(timeout):
    """A poll() timeout in ms; rounded up so a short wait is not a spin."""
    if timeout is None:
        return None
    return max(0, math.ceil(timeout * 1e3))


def in_main_thread():
    """Whether signal handlers run in this thread (so waits must wake)."""
    return threading.current_thread() is threading.main_thread()
