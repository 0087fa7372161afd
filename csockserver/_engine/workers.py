"""ThreadingMixIn's bookkeeping of threads, shared by both engines: the
engine's worker threads (``workers_of``), server_close()'s part
(``close_threads``), and socketserver's ``_threads`` list, kept for code
that uses it.

Runs once per thread or per server_close(), never per request: written
once, in Python.
"""

import threading

from .contract import CREW, POOL, WORKERS


def workers_of(server):
    """The server's worker threads, each mapped to 'busy with a request'.

    A worker stays listed (as not busy) after it retires, until its thread
    is seen to have ended: server_close() must be able to join a worker
    that is on its way out.
    """
    # setdefault: two threads starting the server's first pools at once
    # get the same dict.
    return vars(server).setdefault(WORKERS, {})


def forget_ended(workers):
    """Drop the workers whose threads have ended (started, no longer alive)."""
    for thread in [t for t, busy in list(workers.items())
                   if not busy and t.ident is not None and not t.is_alive()]:
        workers.pop(thread, None)


def close_threads(server):
    """ThreadingMixIn.server_close()'s part: stop the worker pools, then
    join the idle workers and, with ``block_on_close``, the busy non-daemon
    ones."""
    workers = vars(server).get(WORKERS)
    # Listed before the pools stop, and joined even if they drop out of
    # `workers` meanwhile (forget_ended() in a follower starting late).
    seen = dict(workers) if workers else {}
    for name in (POOL, CREW):
        pool = vars(server).pop(name, None)
        if pool is not None:
            pool.stop()
    if workers is None:
        return
    me = threading.current_thread()
    must_wait = server.block_on_close
    joined = set()
    while True:
        # Again after each round: a worker may have started a follower
        # while the pools were stopping.  The latest busy state wins.
        seen.update(list(workers.items()))
        due = [thread for thread, busy in seen.items()
               if thread is not me and thread not in joined
               and (not busy or (must_wait and not thread.daemon))]
        if not due:
            return
        for thread in due:
            thread.join()
            joined.add(thread)


# -- socketserver's list of request threads -------------------------------
#
# ThreadingMixIn keeps ``self._threads`` as socketserver does: a ``_Threads``
# instance on the server when ``block_on_close`` is true, the shared
# ``_NoThreads`` otherwise.  csockserver's own worker threads are not in it
# (the engine tracks them); it holds threads that user code appends, and
# server_close() joins those as socketserver does.


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
