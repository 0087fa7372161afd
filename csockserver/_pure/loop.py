"""The serving loops in plain Python: the twin of ``src_c/loop.pxi``.

``serve_forever`` is where every dispatch mode starts: a ThreadingMixIn
server whose hooks are all stock lets its workers take the requests
themselves (``threads.serve_forever_on_workers``); any other is served by
``serve_polling``.  It and ``handle_request`` wait in poll() on the
server's fd (and the waker's), then take one request (``take_request``)
and run it through verify_request and process_request (``handle_one``),
which hands it to this thread, a worker thread or a child.
"""

import select
from time import monotonic

from .._engine.contract import STOP
from .._engine.plan import Kind
from .._engine.timing import (BACKOFF_ERRNOS, BACKOFF_FIRST, BACKOFF_MAX,
                              SIGNAL_CHECK_INTERVAL, run_signal_handlers)
from . import fork, proxy, requests, threads, transport
from .util import in_main_thread, millis

_POLL_READY = select.POLLIN | select.POLLPRI


def serve_forever(server, plan, fd, poll_interval, waker):
    """Serve until the server's stop flag is set; the caller resets it.

    Every dispatch mode starts here.  A ThreadingMixIn server whose hooks
    are all stock is served by its crew of workers, which take requests
    off the socket themselves (``threads``); every other server by
    serve_polling.
    """
    if threads.leads_on_workers(plan):
        threads.serve_forever_on_workers(server, plan, waker)
    else:
        serve_polling(server, plan, fd, poll_interval, waker)


def serve_polling(server, plan, fd, poll_interval, waker):
    """The poll loop: wait for the socket (or the waker, or children),
    take what is ready and run it through handle_one."""
    poller = select.poll()
    poller.register(fd, _POLL_READY)
    poller.register(waker.fileno(), select.POLLIN)
    # ForkingMixIn's children are reaped as their pidfds fire; without
    # pidfds, by its service_actions every poll_interval.
    reaper = None
    if plan.collect_children == Kind.REAP_OWN:
        reaper = fork.children.reaper_of(server)
        if reaper.works:
            poller.register(reaper.fileno(), select.POLLIN)
        else:
            reaper = None
    # With the stock (empty) service_actions there is nothing to wake up
    # for: sleep until a request or the waker arrives.
    calls_service_actions = (
        plan.service_actions == Kind.PYTHON
        or (plan.service_actions == Kind.REAP and reaper is None))
    interval = poll_interval if calls_service_actions else None
    cap = SIGNAL_CHECK_INTERVAL if in_main_thread() else None
    backoff = 0.0
    backoff_until = 0.0
    deadline = None if interval is None else monotonic() + interval

    while not getattr(server, STOP):
        if cap is not None:
            # In the main thread, the handlers of signals caught while
            # Python ran, before a wait they would not interrupt (see
            # run_signal_handlers).
            run_signal_handlers()
            if getattr(server, STOP):
                break
        now = monotonic()
        if backoff_until and now >= backoff_until:
            poller.register(fd, _POLL_READY)
            backoff_until = 0.0
        wait = None if deadline is None else max(0.0, deadline - now)
        for bound in (cap, (backoff_until - now) if backoff_until else None):
            if bound is not None and (wait is None or bound < wait):
                wait = bound
        events = poller.poll(millis(wait))
        if cap is not None and not events:
            run_signal_handlers()  # a signal another thread caught
        if getattr(server, STOP):
            break
        readable = False
        for event_fd, _ in events:
            if event_fd == fd:
                readable = True
            elif event_fd == waker.fileno():
                waker.drain()
            else:
                fork.children.reap_exited(server)
        if not events and (deadline is None or monotonic() < deadline):
            # Only a backstop or back-off timer expired: not an iteration
            # socketserver would have made, so no service_actions.
            continue
        if readable:
            if plan.handle_request_noblock == Kind.TAKE_ONE:
                failed = take_request(server, plan)
            else:
                server._handle_request_noblock()
                failed = None
            if failed in BACKOFF_ERRNOS:
                # Out of fds or buffers: stop watching the socket for a
                # while instead of spinning on an accept that fails.
                backoff = min(BACKOFF_MAX, backoff * 2 or BACKOFF_FIRST)
                backoff_until = monotonic() + backoff
                poller.unregister(fd)
            elif failed is None:
                backoff = 0.0
        if calls_service_actions:
            server.service_actions()
            deadline = monotonic() + interval if interval is not None else None
        elif readable and plan.service_actions == Kind.REAP:
            # What ForkingMixIn.service_actions does after each request:
            # wait while max_children are alive, reap the ones done.
            fork.children.collect_children(server)


def handle_request(server, plan, fd, timeout):
    """Wait up to *timeout* seconds for a request; handle it or time out."""
    poller = select.poll()
    poller.register(fd, _POLL_READY)
    deadline = None if timeout is None else monotonic() + timeout
    cap = SIGNAL_CHECK_INTERVAL if in_main_thread() else None
    while True:
        wait = timeout
        if cap is not None and (wait is None or cap < wait):
            wait = cap
        ready = poller.poll(millis(wait))
        if cap is not None and not ready:
            run_signal_handlers()
        if ready:
            if plan.handle_request_noblock == Kind.TAKE_ONE:
                take_request(server, plan)
                return None
            return server._handle_request_noblock()
        if deadline is not None:
            timeout = deadline - monotonic()
            if timeout < 0:
                if plan.handle_timeout == Kind.NO_TIMEOUT_ACTION:
                    return None
                return server.handle_timeout()


def handle_request_noblock(server, plan):
    """The stock ``_handle_request_noblock``: take one request and run it."""
    take_request(server, plan)


def take_request(server, plan):
    """Get one request and handle it; return the errno if getting it failed.

    Returns None when a request was handled (or refused), else the errno of
    the OSError that ``get_request`` raised (or 0 if it had none).
    """
    try:
        kind = plan.get_request
        if kind == Kind.ACCEPT:
            request, client_address = transport.accept(plan.socket)
        elif kind == Kind.RECVFROM:
            data, client_address = transport.recvfrom(
                plan.socket, server.max_packet_size)
            request = (data, plan.socket)
        else:
            request, client_address = server.get_request()
    except OSError as exc:
        return exc.errno or 0
    handle_one(server, plan, request, client_address)
    return None


def handle_one(server, plan, request, client_address):
    """verify_request, process_request, and the error handling around them,
    in socketserver's order; process_request picks where the request runs.
    A PROXY header comes first, unless it is read where the request runs."""
    if plan.proxy_protocol and not proxy.reads_header_later(plan):
        client_address = proxy.client_address_of(server, plan, request,
                                              client_address)
        if client_address is None:
            requests.shutdown_request(server, plan, request)
            return
    if (plan.verify_request == Kind.ALLOW
            or server.verify_request(request, client_address)):
        try:
            kind = plan.process_request
            if kind == Kind.IN_PLACE:
                requests.finish_request(server, plan, request, client_address)
                requests.shutdown_request(server, plan, request)
            elif kind == Kind.THREAD:
                threads.start_thread_request(server, plan, request,
                                             client_address)
            elif kind == Kind.FORK:
                fork.fork_request(server, plan, request, client_address)
            else:
                server.process_request(request, client_address)
        except Exception as exc:
            proxy.report_error(server, plan, request, client_address, exc)
            requests.shutdown_request(server, plan, request)
        except BaseException:
            requests.shutdown_request(server, plan, request)
            raise
    else:
        requests.shutdown_request(server, plan, request)
