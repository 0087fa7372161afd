"""A prefork worker process: from just after fork() to os._exit().

The supervisor calls run_worker() in each child it forks; it never returns.
"""

import os
import random
import select
import signal
import socket
import sys
import threading
import time
import traceback

from .._engine.workers import close_threads, workers_of
from .._engine.contract import ENGINE_STATE, WAKER
from .link import Link

# Without a pidfd on the parent, how often a worker checks it is alive.
_PARENT_POLL = 0.5
# prctl(2) option: the signal a process gets when its parent dies.
_PR_SET_PDEATHSIG = 1


def run_worker(server, poll_interval, parent, prctl, link, caught, mask,
               shared):
    """A worker process: serve until SIGTERM, finish requests, exit."""
    status = 1
    try:
        _die_with_parent(parent, prctl)
        link.in_worker()
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides
        # The supervisor's other signals are the supervisor's business.
        # Not SIGTERM, whose handler is set below: ignoring a signal throws
        # away one that is pending, held or not, and a SIGTERM held since
        # fork() must reach that handler.
        for signum in caught:
            if signum != signal.SIGTERM:
                signal.signal(signum, signal.SIG_IGN)
        # Forget the parent's dispatch state: its threads do not exist here.
        for name in ENGINE_STATE + (WAKER,):
            vars(server).pop(name, None)
        server._BaseServer__shutdown_request = False
        server.worker_pids = frozenset()
        server.retiring = False
        # A lock another parent thread held at fork() stays locked here for
        # good: give the worker its own Event (shutdown() callers in the
        # parent take the shared one's lock).
        server._BaseServer__is_shut_down = threading.Event()

        # Only now: a SIGTERM from here on must not be undone by the reset
        # above (until here it was held, see the supervisor's
        # _fork_with_signals_held).
        def on_sigterm(signum, frame):
            _stop_accepting(server)
        signal.signal(signal.SIGTERM, on_sigterm)
        _count_requests(server, link)
        if not shared:
            _listen_alone(server)
        # Started while the signals are still held, the watcher thread
        # keeps them blocked for good, so the kernel gives them to this
        # thread.  Caught on another thread, a signal's handler would wait
        # for the serving loop's next wake-up: Python 3.13 and later, in a
        # process forked from a thread other than the main one, do not tell
        # the main thread of a signal that another thread caught.
        _watch_parent(server, parent)
        if mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        link.tell(Link.READY)
        server.serve_forever(poll_interval)
        _finish_requests(server)
        status = 0
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
    finally:
        # No flush of stdout on the way out, as with ForkingMixIn's
        # children: its buffer's lock may be one a parent thread held at
        # fork(), and waiting on it would keep the worker from exiting.
        os._exit(status)


def _listen_alone(server):
    """Swap, in this worker, the shared socket for one of its own on the
    same address, set up as the supervisor set up the shared one."""
    shared = server.socket
    own = socket.socket(shared.family, shared.type, shared.proto)
    try:
        if server.allow_reuse_address:
            own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        own.bind(shared.getsockname())
        own.listen(server.request_queue_size)
        # The flag only, as on the shared socket: the engine waits itself.
        os.set_blocking(own.fileno(), os.get_blocking(shared.fileno()))
    except BaseException:
        own.close()
        raise
    server.socket = own
    shared.close()   # this process's descriptor only: the queue lives on


def _count_requests(server, link):
    """max_requests: retire this worker once it has served that many.

    Counted where each request ends: shutdown_request, which every stock
    path calls once per request, in the thread that ran it.  Wrapping it on
    the instance makes the engine call Python for that one hook only (its
    other fast paths, the threads' leader/followers accept included, stay).
    Under ForkingMixIn the request ends in a child, so process_request, in
    the worker, counts instead.
    """
    limit = server.max_requests
    if not limit:
        return
    if server.max_requests_jitter:
        # random is reseeded in each forked child: jitters differ.
        limit += random.randint(0, server.max_requests_jitter)
    name = ("process_request" if hasattr(server, "collect_children")
            else "shutdown_request")
    hook = getattr(server, name)
    served = [0]
    # Requests end in several threads at once, without a GIL to make the
    # count atomic on a free-threaded interpreter.
    counting = threading.Lock()

    def counted(request, *args):
        try:
            return hook(request, *args)
        finally:
            with counting:
                served[0] += 1
                last = served[0] == limit
            if last:
                link.tell(Link.RETIRING)  # a replacement starts now
                _stop_accepting(server)
    setattr(server, name, counted)


def _stop_accepting(server):
    """Stop accepting; the requests running finish, then the worker exits.
    ``retiring`` tells keep-alive handlers to close after this request."""
    server.retiring = True
    server._BaseServer__shutdown_request = True


def _die_with_parent(parent, prctl):
    """Have the kernel send SIGTERM to this worker when the supervisor dies,
    so that no orphan keeps serving (and holding the port)."""
    if prctl is not None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    # The supervisor may have died between fork() and prctl(): then no
    # signal will come, and this worker is already an orphan.
    if os.getppid() != parent:
        os._exit(0)


def _watch_parent(server, parent):
    """A second guard beside PR_SET_PDEATHSIG, which is Linux-only, is
    cleared by a change of credentials, and fires when the parent *thread*
    that forked us ends: a daemon thread that stops this worker when the
    supervisor is gone, and ends it if its requests outlast
    graceful_timeout (no supervisor is left to kill it)."""
    def watch():
        _wait_for_exit_of(parent)
        _stop_accepting(server)
        time.sleep(server.graceful_timeout)
        os._exit(1)
    threading.Thread(target=watch, name="csockserver-parent-watch",
                     daemon=True).start()


def _wait_for_exit_of(parent):
    """Return once *parent* is no longer this process's parent."""
    try:
        pidfd = os.pidfd_open(parent)
    except (AttributeError, OSError):
        pidfd = None
    try:
        # Checked after the pidfd is open: the pid cannot be reused from
        # now on, so a pidfd on someone else's process is ruled out.
        if pidfd is not None and os.getppid() == parent:
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            poller.poll()
            return
        while os.getppid() == parent:
            time.sleep(_PARENT_POLL)
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _finish_requests(server):
    """What server_close() would wait for, without closing anything the
    user's server_close() might (a worker shares the parent's socket)."""
    if hasattr(server, "process_request_thread"):   # ThreadingMixIn
        close_threads(server)
        server._threads.join()
        # Daemon handler threads too (daemon_threads, as http.server's
        # ThreadingHTTPServer has): os._exit() would cut their requests
        # off.  graceful_timeout bounds the wait (the supervisor kills).
        me = threading.current_thread()
        for thread in list(workers_of(server)):
            if thread is not me:
                thread.join()
    if hasattr(server, "collect_children"):         # ForkingMixIn
        server.collect_children(blocking=server.block_on_close)
