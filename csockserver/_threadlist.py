"""socketserver's list of request threads, kept for code that uses it.

ThreadingMixIn keeps ``self._threads`` as socketserver does: a ``_Threads``
instance on the server when ``block_on_close`` is true, the shared
``_NoThreads`` otherwise.  csockserver's own worker threads are not in it
(the engine tracks them); it holds threads that user code appends, and
server_close() joins those as socketserver does.
"""


class _Threads(list):
    """Non-daemon threads that server_close() must join."""

    def append(self, thread):
        self.reap()
        if thread.daemon:
            return
        super().append(thread)

    def pop_all(self):
        self[:], result = [], self[:]
        return result

    def join(self):
        for thread in self.pop_all():
            thread.join()

    def reap(self):
        """Forget threads that have finished, so the list cannot grow."""
        self[:] = (thread for thread in self if thread.is_alive())


class _NoThreads:
    """Stands in for _Threads when server_close() need not join."""

    def append(self, thread):
        pass

    def join(self):
        pass
