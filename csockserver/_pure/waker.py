"""The waker in plain Python: the twin of ``src_c/waker.pxi``.

A self-pipe another thread writes to, to interrupt a wait: the serving
loop's, a worker pool's, or PreforkMixIn's supervisor's.
"""

import os
import threading


class Waker:
    """A self-pipe that lets another thread interrupt the serving loop."""

    def __init__(self):
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)
        # wake() may race with close(): the lock keeps a closed (and
        # possibly reused) fd number from being written to.  Reentrant:
        # a signal handler that stops the server calls wake(), and it may
        # run in this very thread while it is inside wake() or close().
        self._lock = threading.RLock()

    def fileno(self):
        return self._read_fd

    def wake(self):
        with self._lock:
            if self._write_fd < 0:
                return
            try:
                os.write(self._write_fd, b"\0")
            except BlockingIOError:
                pass  # already full, so already awake

    def drain(self):
        try:
            while os.read(self._read_fd, 4096):
                pass
        except BlockingIOError:
            pass

    def close(self):
        # The fds are forgotten before they are closed: a wake() from a
        # signal handler that runs in the middle of this finds either both
        # open or none.
        with self._lock:
            fds = (self._read_fd, self._write_fd)
            self._read_fd = self._write_fd = -1
        if fds[1] >= 0:
            os.close(fds[0])
            os.close(fds[1])
