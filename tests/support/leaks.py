"""Leak checks: this process's open fds and live threads, snapshotted
before a test and compared after it, waiting a little for what a finished
thread or the collector gives back.
"""

import ctypes  # noqa: F401  (for its lasting fd: see below)
import gc
import os
import re
import threading
import time

# Importing ctypes opens an fd that lasts as long as the process, where
# libffi 3.4 or later maps its trampolines from its own file (Debian's
# CPython 3.14 and 3.15).  A prefork supervisor imports ctypes the first
# time it serves (to find prctl); imported here, before any snapshot, that
# fd is in every leak check's baseline, whichever test serves first.


def _sanitizer_log_prefix():
    """Where ThreadSanitizer writes its reports (make tsan), or None: it
    opens that file at its first report, in the middle of some test."""
    match = re.search(r"(?:^|\s)log_path=(\S+)",
                      os.environ.get("TSAN_OPTIONS", ""))
    return match.group(1) if match else None


_SANITIZER_LOG = _sanitizer_log_prefix()


def open_fds():
    """The set of this process's open file descriptors (not counting a
    sanitizer's report file)."""
    fds = set()
    # listdir() holds one fd of its own while it reads; it is closed (and so
    # no longer in /proc) by the time we look each entry up.
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink("/proc/self/fd/" + name)
        except FileNotFoundError:
            continue
        if _SANITIZER_LOG and target.startswith(_SANITIZER_LOG):
            continue
        fds.add(int(name))
    return fds


def fd_count():
    """How many fds this process has open (as open_fds() counts them)."""
    return len(open_fds())


def live_threads():
    """The threads of this process that threading knows of."""
    return set(threading.enumerate())


class LeakCheck:
    """Snapshot of fds and threads; ``check()`` waits for a return to it."""

    def __init__(self):
        gc.collect()
        self.fds = open_fds()
        self.threads = live_threads()

    def extra(self):
        gc.collect()
        return open_fds() - self.fds, live_threads() - self.threads

    def check(self, timeout=3.0):
        # Joined threads are gone at once, but a socket dropped by a finished
        # thread may wait for the collector: poll a little before failing.
        deadline = time.monotonic() + timeout
        while True:
            extra_fds, extra_threads = self.extra()
            if not (extra_fds or extra_threads) or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        assert not extra_fds, "leaked fds: %s" % _describe_fds(extra_fds)
        assert not extra_threads, "leaked threads: %s" % sorted(
            t.name for t in extra_threads)


def _describe_fds(fds):
    described = []
    for fd in sorted(fds):
        try:
            described.append("%d -> %s" % (fd, os.readlink(
                "/proc/self/fd/%d" % fd)))
        except OSError:
            described.append(str(fd))
    return ", ".join(described)
