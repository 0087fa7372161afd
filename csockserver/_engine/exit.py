"""Stopping the worker pools as the interpreter exits, for both engines.

socketserver's request threads end with their request; csockserver's
workers wait for the next one.  This module makes the difference invisible
when a program ends (see ``retire_at_exit``).
"""

import os
import threading
import weakref

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
