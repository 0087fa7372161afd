"""What both engines share: timings, error sets, and the bookkeeping that
gains nothing from compilation (it runs once per thread, child or
server_close, never per request).

Neutral ground: it imports no engine, and both engines import it.
"""

import errno
import os
import signal
import threading
import time

from ._contract import CREW, POOL, REAPER, WORKERS

# -- timings and error sets -------------------------------------------------

# accept()/recvfrom() errors that mean "out of resources" (or a socket that
# cannot accept at all): retrying at once would spin the loop, so it stops
# watching the socket for a while, doubling the pause up to BACKOFF_MAX.
BACKOFF_ERRNOS = frozenset((errno.EMFILE, errno.ENFILE, errno.ENOBUFS,
                            errno.ENOMEM, errno.EBADF, errno.EINVAL))
BACKOFF_FIRST = 0.005
BACKOFF_MAX = 0.1
# Longest the main thread sleeps in one wait: a backstop so that a signal
# that lands just before the wait begins is still acted on promptly.
SIGNAL_CHECK_INTERVAL = 1.0
# Without pidfds, how often a wait for a free child slot looks again.
NO_PIDFD_POLL = 0.01


def run_signal_handlers():
    """Run now the Python handlers of signals already caught, as the
    compiled waits' PyErr_CheckSignals() does on a wake-up with no event.

    The interpreter runs them at the main thread's next bytecode once told
    a signal came, but CPython 3.13.0, in a process forked from a thread
    that was not the main one, does not tell the main thread of a signal
    caught on another thread: it would never run them.  pthread_sigmask()
    with an empty set changes no mask; it is called for the
    PyErr_CheckSignals() it ends with, which Python offers no other way.
    """
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, ())


# -- worker threads (ThreadingMixIn) ------------------------------------------

def workers_of(server):
    """The server's worker threads, each mapped to 'busy with a request'.

    A worker stays listed (as not busy) after it retires, until its thread
    is seen to have ended: server_close() must be able to join a worker
    that is on its way out.
    """
    workers = vars(server).get(WORKERS)
    if workers is None:
        workers = {}
        setattr(server, WORKERS, workers)
    return workers


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


# -- children (ForkingMixIn) -------------------------------------------------

class Children:
    """ForkingMixIn's reaping, over one engine's Reaper.

    Each child the server forks is in ``active_children`` and, where
    pidfds work, watched by the server's Reaper; only those pids are ever
    waited for, so a subprocess that a hook started is never reaped behind
    its owner's back.  The waits (epoll, waitpid) release the GIL and run
    signal handlers on EINTR, as the os module's do.
    """

    def __init__(self, reaper_type):
        self.reaper_type = reaper_type

    def reaper_of(self, server):
        """The server's Reaper, created on first use."""
        reaper = vars(server).get(REAPER)
        if reaper is None:
            reaper = self.reaper_type()
            setattr(server, REAPER, reaper)
        return reaper

    def reap_exited(self, server):
        """Reap the children that have exited, without waiting."""
        children = server.active_children
        if not children:
            return
        reaper = self.reaper_of(server)
        for pid in reaper.exited():
            _reap(server, reaper, pid, os.WNOHANG)
        for pid in [pid for pid in children if not reaper.covers((pid,))]:
            _reap(server, reaper, pid, os.WNOHANG)

    def collect_children(self, server, blocking=False):
        """ForkingMixIn's stock collect_children, waiting only for our pids.

        While ``max_children`` are alive, waits for one of them to exit;
        then reaps those that have exited (all of them, waiting, with
        *blocking*).
        """
        children = server.active_children
        if children is None:
            return
        reaper = self.reaper_of(server)
        while children and len(children) >= server.max_children:
            if reaper.covers(children):
                for pid in reaper.exited(None):
                    _reap(server, reaper, pid, os.WNOHANG)
            else:
                self.reap_exited(server)
                if len(children) >= server.max_children:
                    time.sleep(NO_PIDFD_POLL)
        if blocking:
            for pid in list(children):
                _reap(server, reaper, pid, 0)
        else:
            self.reap_exited(server)

    def release_reaper(self, server):
        """Close the Reaper once no child is left to watch (server_close)."""
        if not server.active_children:
            reaper = vars(server).pop(REAPER, None)
            if reaper is not None:
                reaper.close()


def _reap(server, reaper, pid, flags):
    """waitpid() one of our children; forget it once it is gone."""
    try:
        done, _ = os.waitpid(pid, flags)
    except ChildProcessError:
        done = pid  # already reaped elsewhere: nothing left to wait for
    except OSError:
        return
    if done:
        server.active_children.discard(pid)
        reaper.forget(pid)
