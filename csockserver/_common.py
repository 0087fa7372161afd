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
import weakref

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
    a signal came, but CPython 3.13 and later (seen on 3.13.0, 3.14.10 and
    3.15.2), in a process forked from a thread that was not the main one,
    never tell the main thread of a signal, caught on any thread: only
    such an explicit look runs them.  pthread_sigmask()
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


# -- interpreter exit --------------------------------------------------------

# Each live worker pool, mapped to the thread that serves it (the one that
# made it: serve_forever()'s, or process_request()'s caller).
_pool_owners = weakref.WeakKeyDictionary()
# Pools are made by many threads at once (no GIL makes that atomic on a
# free-threaded interpreter), and the exit hook iterates over them.
_pool_owners_lock = threading.Lock()
_exiting = False


def retire_at_exit(pool):
    """Have *pool*'s idle workers leave once the interpreter exits.

    socketserver's request threads end with their request, so a program
    whose main thread returns while serve_forever() runs in a daemon
    thread (or with a server never closed) exits at once.  Idle non-daemon
    workers would keep it waiting for thread_idle_timeout; so, as the
    interpreter starts joining threads, the pools nobody serves any more
    are stopped: busy workers finish their request (as non-daemon threads
    do), idle ones leave.  A pool served by a non-daemon thread that is
    still running is stopped once that thread ends: the interpreter would
    wait for it anyway.
    """
    owner = threading.current_thread()
    with _pool_owners_lock:
        _pool_owners[pool] = owner
    if _exiting and not _keeps_serving(owner):
        pool.stop()     # made after exit began, by a daemon serving thread


def _keeps_serving(owner):
    return (owner.is_alive() and not owner.daemon
            and owner is not threading.current_thread())


def _stop_pools_at_exit():
    global _exiting
    _exiting = True
    while True:
        serving = []
        with _pool_owners_lock:
            pools = list(_pool_owners.items())
        for pool, owner in pools:
            if _keeps_serving(owner):
                serving.append(owner)
            else:
                pool.stop()
        if not serving:
            return
        serving[0].join()   # as the interpreter is about to


def _call_before_threads_are_joined(function):
    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        register(function)
        return
    # Python 3.8 has no such hook: the interpreter looks up
    # threading._shutdown by name when it exits, so wrap it.
    joining = threading._shutdown

    def _shutdown():
        function()
        joining()
    threading._shutdown = _shutdown


_call_before_threads_are_joined(_stop_pools_at_exit)
# A forked child must never stop its parent's pools: their wake-up fds are
# shared with the parent, whose workers would then see a stop it never made.
def _forget_parents_pools():
    global _pool_owners_lock
    _pool_owners_lock = threading.Lock()  # another thread may have held it
    _pool_owners.clear()


os.register_at_fork(after_in_child=_forget_parents_pools)


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
