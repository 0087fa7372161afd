"""The engine in plain Python: the executable spec of the compiled one.

Engine interface (``_cengine`` implements the same names):

``Waker()``
    A wake-up fd: ``fileno()``, ``wake()`` (any thread), ``drain()``,
    ``close()``.  ``BaseServer`` wakes it when a shutdown is requested.
``serve_forever(server, plan, fd, poll_interval, waker)``
    The loop behind ``BaseServer.serve_forever``, without its bookkeeping
    of the shutdown flags (the Python shell keeps that).
``handle_request(server, plan, fd, timeout)``
    Wait up to *timeout* for *fd*, then take one request or time out.
``handle_request_noblock(server, plan)``
    The stock ``_handle_request_noblock``.
``accept(sock)`` / ``recvfrom(sock, size)``
    What the stock ``get_request`` methods do.
``start_thread_request(server, plan, request, client_address)`` /
``close_threads(server)``
    ThreadingMixIn's stock process_request, and its part of server_close
    (``_pythreads``: worker threads, reused).
``fork_request(server, plan, request, client_address)`` /
``collect_children(server, blocking)``
    ForkingMixIn's stock process_request and collect_children
    (``_pyfork``: children reaped through pidfds, only our own).
``release_reaper(server)``
    Close the pidfd set once no child is left (ForkingMixIn.server_close).
``fork_process()`` / ``Reaper()``
    A fork with the interpreter's fork hooks, and the pidfd set that
    watches children; the prefork supervisor uses both.

*plan* (see ``_plan``) says which hooks are stock; every hook that is not is
called as a Python method, at the point socketserver calls it.
"""

import errno
import math
import os
import select
import socket
import threading
from time import monotonic

from ._plan import (ACCEPT, CLOSE, FORK, PYTHON, REAP, RECVFROM,
                    SHUT_WR_THEN_CLOSE, STOCK, THREAD)

# accept()/recvfrom() errors that mean "out of resources": retrying at once
# would spin the loop, so the loop stops watching the socket for a while.
BACKOFF_ERRNOS = frozenset((errno.EMFILE, errno.ENFILE, errno.ENOBUFS,
                            errno.ENOMEM, errno.EBADF))
BACKOFF_FIRST = 0.005
BACKOFF_MAX = 0.1
# Longest the main thread sleeps in one wait: a backstop so that a signal
# that lands just before the wait begins is still acted on promptly.
SIGNAL_CHECK_INTERVAL = 1.0
_POLL_READY = select.POLLIN | select.POLLPRI


class Waker:
    """A self-pipe that lets another thread interrupt the serving loop."""

    def __init__(self):
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)
        # wake() may race with close(): the lock keeps a closed (and
        # possibly reused) fd number from being written to.
        self._lock = threading.Lock()

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
        with self._lock:
            if self._write_fd >= 0:
                os.close(self._read_fd)
                os.close(self._write_fd)
                self._read_fd = self._write_fd = -1


def accept(sock):
    """Accept one connection on *sock*, as ``sock.accept()``."""
    return sock.accept()


def recvfrom(sock, size):
    """Receive one datagram of at most *size* bytes, as ``sock.recvfrom``."""
    return sock.recvfrom(size)


def _millis(timeout):
    """A poll() timeout in ms; rounded up so a short wait is not a spin."""
    if timeout is None:
        return None
    return max(0, math.ceil(timeout * 1e3))


def _in_main_thread():
    return threading.current_thread() is threading.main_thread()


def wait_for_stop(server, waker):
    """Sleep until ``server._csock_stop`` is set, acting on signals."""
    poller = select.poll()
    poller.register(waker.fileno(), select.POLLIN)
    cap = SIGNAL_CHECK_INTERVAL if _in_main_thread() else None
    while not server._csock_stop:
        if poller.poll(_millis(cap)):
            waker.drain()


def serve_forever(server, plan, fd, poll_interval, waker):
    """Serve until ``server._csock_stop`` is set; the caller resets it."""
    if _pythreads.leads_on_workers(plan):
        _pythreads.serve_forever_on_workers(server, plan, waker)
        return
    poller = select.poll()
    poller.register(fd, _POLL_READY)
    poller.register(waker.fileno(), select.POLLIN)
    # ForkingMixIn's children are reaped as their pidfds fire; without
    # pidfds, by its service_actions every poll_interval.
    reaper = None
    if plan.collect_children == STOCK:
        reaper = _pyfork.reaper_of(server)
        if reaper.works:
            poller.register(reaper.fileno(), select.POLLIN)
        else:
            reaper = None
    # With the stock (empty) service_actions there is nothing to wake up
    # for: sleep until a request or the waker arrives.
    calls_service_actions = (plan.service_actions == PYTHON or
                             (plan.service_actions == REAP and reaper is None))
    interval = poll_interval if calls_service_actions else None
    cap = SIGNAL_CHECK_INTERVAL if _in_main_thread() else None
    backoff = 0.0
    backoff_until = 0.0
    deadline = None if interval is None else monotonic() + interval

    while not server._csock_stop:
        now = monotonic()
        if backoff_until and now >= backoff_until:
            poller.register(fd, _POLL_READY)
            backoff_until = 0.0
        wait = None if deadline is None else max(0.0, deadline - now)
        for bound in (cap, (backoff_until - now) if backoff_until else None):
            if bound is not None and (wait is None or bound < wait):
                wait = bound
        events = poller.poll(_millis(wait))
        if server._csock_stop:
            break
        readable = False
        for event_fd, _ in events:
            if event_fd == fd:
                readable = True
            elif event_fd == waker.fileno():
                waker.drain()
            else:
                _pyfork.reap_exited(server)
        if not events and (deadline is None or monotonic() < deadline):
            # Only a backstop or back-off timer expired: not an iteration
            # socketserver would have made, so no service_actions.
            continue
        if readable:
            if plan.handle_request_noblock == STOCK:
                failed = _take_request(server, plan)
            else:
                server._handle_request_noblock()
                failed = None
            if failed in BACKOFF_ERRNOS:
                backoff = min(BACKOFF_MAX, backoff * 2 or BACKOFF_FIRST)
                backoff_until = monotonic() + backoff
                poller.unregister(fd)
            elif failed is None:
                backoff = 0.0
        if calls_service_actions:
            server.service_actions()
            deadline = monotonic() + interval if interval is not None else None
        elif readable and plan.service_actions == REAP:
            # What ForkingMixIn.service_actions does after each request:
            # wait while max_children are alive, reap the ones done.
            _pyfork.collect_children(server)


def handle_request(server, plan, fd, timeout):
    """Wait up to *timeout* seconds for a request, then handle it or time out."""
    poller = select.poll()
    poller.register(fd, _POLL_READY)
    deadline = None if timeout is None else monotonic() + timeout
    cap = SIGNAL_CHECK_INTERVAL if _in_main_thread() else None
    while True:
        wait = timeout
        if cap is not None and (wait is None or cap < wait):
            wait = cap
        if poller.poll(_millis(wait)):
            if plan.handle_request_noblock == STOCK:
                _take_request(server, plan)
                return None
            return server._handle_request_noblock()
        if deadline is not None:
            timeout = deadline - monotonic()
            if timeout < 0:
                if plan.handle_timeout == STOCK:
                    return None
                return server.handle_timeout()


def handle_request_noblock(server, plan):
    """The stock ``_handle_request_noblock``: take one request and run it."""
    _take_request(server, plan)


def _take_request(server, plan):
    """Get one request and handle it; return the errno if getting it failed.

    Returns None when a request was handled (or refused), else the errno of
    the OSError that ``get_request`` raised (or 0 if it had none).
    """
    try:
        kind = plan.get_request
        if kind == ACCEPT:
            request, client_address = accept(plan.socket)
        elif kind == RECVFROM:
            data, client_address = recvfrom(plan.socket,
                                            server.max_packet_size)
            request = (data, plan.socket)
        else:
            request, client_address = server.get_request()
    except OSError as exc:
        return exc.errno or 0
    _handle_one(server, plan, request, client_address)
    return None


def _handle_one(server, plan, request, client_address):
    """verify, process, and the error handling around them."""
    if (plan.verify_request == STOCK
            or server.verify_request(request, client_address)):
        try:
            kind = plan.process_request
            if kind == STOCK:
                finish(server, plan, request, client_address)
                shut_down(server, plan, request)
            elif kind == THREAD:
                _pythreads.start_thread_request(server, plan, request,
                                                client_address)
            elif kind == FORK:
                _pyfork.fork_request(server, plan, request, client_address)
            else:
                server.process_request(request, client_address)
        except Exception:
            server.handle_error(request, client_address)
            shut_down(server, plan, request)
        except:
            shut_down(server, plan, request)
            raise
    else:
        shut_down(server, plan, request)


def finish(server, plan, request, client_address):
    """finish_request, through the plan."""
    if plan.finish_request == STOCK:
        server.RequestHandlerClass(request, client_address, server)
    else:
        server.finish_request(request, client_address)


def shut_down(server, plan, request):
    """shutdown_request (and the close_request it calls), through the plan."""
    kind = plan.shutdown_request
    if kind == PYTHON:
        server.shutdown_request(request)
        return
    if kind == SHUT_WR_THEN_CLOSE:
        try:
            request.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the peer may already be gone (ENOTCONN)
    close(server, plan, request)


def close(server, plan, request):
    """close_request, through the plan."""
    if plan.close_request == CLOSE:
        request.close()
    elif plan.close_request == PYTHON:
        server.close_request(request)


def fork_process():
    """os.fork(): the interpreter's fork hooks run around it."""
    return os.fork()


# The dispatch modules use the helpers above.
from . import _pyfork, _pythreads  # noqa: E402
from ._pyfork import (Reaper, collect_children, fork_request,  # noqa: E402,F401
                      release_reaper)
from ._pythreads import close_threads, start_thread_request  # noqa: E402,F401
