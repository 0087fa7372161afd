"""The pipe on which a prefork server's workers talk to their supervisor.

Both sides use it: the supervisor makes it before the first fork() and
reads it; each worker keeps the write end only.
"""

import os
import struct


class Link:
    """A pipe on which workers tell the supervisor "serving" or "retiring".

    One pipe for all workers: each message is one write of a few bytes,
    which POSIX keeps whole (below PIPE_BUF) however many workers write.
    Both ends are non-blocking: a worker never waits on its supervisor.
    """

    READY = 1
    RETIRING = 2
    _FORMAT = struct.Struct("=iI")   # pid, message

    def __init__(self):
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self.write_fd, False)
        self.pending = b""

    def fileno(self):
        return self.read_fd

    def in_worker(self):
        """A worker only writes."""
        os.close(self.read_fd)

    def tell(self, message):
        try:
            os.write(self.write_fd, self._FORMAT.pack(os.getpid(), message))
        except OSError:
            pass   # full or no reader: the supervisor copes without it

    def messages(self):
        """Every (pid, message) written so far."""
        while True:
            try:
                chunk = os.read(self.read_fd, 4096)
            except BlockingIOError:
                break
            if not chunk:
                break
            self.pending += chunk
        size = self._FORMAT.size
        whole = len(self.pending) - len(self.pending) % size
        data, self.pending = self.pending[:whole], self.pending[whole:]
        return [self._FORMAT.unpack_from(data, at)
                for at in range(0, whole, size)]

    def close(self):
        os.close(self.read_fd)
        os.close(self.write_fd)
