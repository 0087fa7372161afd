"""Thread dispatch in plain Python: the twin of ``src_c/threads.pxi``.

ThreadingMixIn's requests run on reused worker threads, reached in one of
two ways:

*Handoff* (``start_thread_request``): the serving thread gets and verifies
the request and calls process_request, which queues it for a worker: a free
idle worker is woken, or if there is none a new one starts at once.  With
``max_threads`` reached the request waits in the queue; with ``max_queued``
set, process_request returns only once fewer than ``max_queued`` requests
are queued, so the serving loop stops accepting meanwhile (new connections
wait in the kernel's backlog).  Used by
handle_request() and whenever a hook of the serving thread is overridden, so
that those hooks run in the thread socketserver runs them in.

*Leader/followers* (``serve_forever_on_workers``): while serve_forever()
runs with the stock hooks of the serving thread, the idle workers themselves
take connections (or datagrams) from the listening socket and run them, so
nothing crosses threads.  A worker back from a request first takes what is
already waiting without blocking; otherwise the workers wait in one epoll
set shared by the pool (the socket's wait queue then holds one entry, not
one per worker: with one per worker every packet paid for waking them all),
where the socket is armed EPOLLONESHOT: the worker that gets it takes one
request, and re-arms it only once it holds the GIL and is about to run the
request, so at most one taken request waits for the GIL at a time.  A
worker about to run a request first makes sure another one is waiting,
starting one if needed, so no request waits for another to finish.  With
``max_threads`` busy, new connections wait in the kernel's backlog.

A stream server's worker back from a request, while other workers are in
the middle of one, yields the CPU before it looks for more work (either
way).  Without that, a worker that never has to wait (connections keep
arriving, each request's reads and writes complete at once) runs request
after request and keeps the GIL across its short syscalls, while a worker
that released the GIL mid-request is runnable but does not get the CPU:
it gets the GIL back only after the switch interval, and loses it again
at its next read or write.  Where the server's threads share a core,
those few requests wait for tens of milliseconds.  socketserver's request
threads end after each request, which gives the others their turn; the
yield does the same for the price of a syscall, and costs nothing when no
other thread is ready to run.  A datagram server's workers do not yield:
the stall was seen with stream handlers, whose reads and writes go
through files, and a datagram server's requests are many and short (a
syscall each).

Either way the workers are real ``threading.Thread`` objects, named as
socketserver names its request threads; each request runs in a fresh
``contextvars.Context`` as in a new thread; idle workers retire after
``thread_idle_timeout`` seconds; server_close()
(``_engine.workers.close_threads``, shared by both engines) stops the
idle ones and joins the busy non-daemon ones when ``block_on_close``.
"""

import collections
import contextvars
import os
import select
import socket
import sys
import threading
import time

from .._engine.contract import CREW, POOL, STOP
from .._engine.exit import retire_at_exit
from .._engine.plan import Kind
from .._engine.timing import (BACKOFF_ERRNOS, BACKOFF_MAX,
                              SIGNAL_CHECK_INTERVAL, run_signal_handlers)
from .._engine.workers import _Threads, forget_ended, workers_of
from . import proxy, requests
from .util import in_main_thread, millis

_ONE_SHOT = select.EPOLLIN | select.EPOLLONESHOT


class WorkerPool:
    """Worker threads serving one server: from a queue, and, for a crew of
    leader/followers, from the listening socket itself.

    A pool is used once: started, then stopped, then dropped.  Its counters
    are guarded by a lock here (the compiled twin relies on the GIL).
    """

    def __init__(self, server, plan, listener=None):
        self.server = server
        self.plan = plan
        self.listener = listener        # a crew's socket, or None
        self.workers = workers_of(server)
        self.max_threads = server.max_threads
        self.max_queued = server.max_queued
        self.idle_timeout = server.thread_idle_timeout
        # See the module docstring: a stream server's workers yield.
        self.yields_turn = (getattr(server, "socket_type", None)
                            == socket.SOCK_STREAM)
        self.queue = collections.deque()
        self.lock = threading.Lock()
        self.room = threading.Condition(self.lock)
        self.live = 0         # workers of this pool still running
        self.waiting = 0      # workers inside wait_for_work()
        self.signalled = 0    # queue wake-ups sent and not yet taken
        # Workers started that have not waited yet: a lonely worker does
        # not start another while one is on its way (without a GIL, takes
        # come faster than a thread starts, and each would start one more).
        self.starting = 0
        self.stopping = False
        self._stop_r, self._stop_w = os.pipe()
        self._work_r, self._work_w = os.pipe()
        for fd in (self._stop_r, self._stop_w, self._work_r, self._work_w):
            os.set_blocking(fd, False)
        self.poller = select.epoll()
        self.poller.register(self._stop_r, select.EPOLLIN)
        self.poller.register(self._work_r, select.EPOLLIN)
        self._listen_fd = -1
        if listener is not None:
            self._listen_fd = listener.fileno()
            self.poller.register(self._listen_fd, _ONE_SHOT)
        if server.block_on_close:
            # socketserver creates this on the first request; so do we.
            vars(server).setdefault("_threads", _Threads())
        retire_at_exit(self)

    # -- the serving side ------------------------------------------------

    def submit(self, request, client_address):
        """Queue a request and make sure a worker will take it."""
        with self.lock:
            item = (request, client_address)
            self.queue.append(item)
            if self.waiting > self.signalled:
                self.signalled += 1
                os.write(self._work_w, b"\0")
                grow = False
            else:
                grow = self._may_grow()
        if grow:
            try:
                self.spawn()
            except BaseException:
                with self.lock:
                    try:
                        self.queue.remove(item)
                    except ValueError:
                        return  # a worker took it meanwhile: it will run
                raise
        self._wait_for_room()

    def _wait_for_room(self):
        """With max_queued, return only once the queue is below it again:
        the serving loop accepts nothing meanwhile (backpressure)."""
        if self.max_queued is None:
            return
        with self.lock:
            while self.queue and len(self.queue) >= self.max_queued:
                self.room.wait()

    def _may_grow(self):
        return self.max_threads is None or self.live < self.max_threads

    def spawn(self):
        """Start one more worker."""
        thread = threading.Thread(target=self.process_request_thread)
        thread.daemon = self.server.daemon_threads
        with self.lock:
            forget_ended(self.workers)
            self.live += 1
            self.starting += 1
            self.workers[thread] = False
        try:
            thread.start()
        except BaseException:
            with self.lock:
                self.live -= 1
                self.starting -= 1
                self.workers.pop(thread, None)
            raise

    def stop(self):
        """Let idle workers go; return once none can touch the listener."""
        with self.lock:
            self.stopping = True
            self._close_if_done()
        if self._stop_w >= 0:
            try:
                os.write(self._stop_w, b"\0")
            except OSError:
                pass
        while self.waiting:
            time.sleep(0.0002)

    def __del__(self):
        if self._stop_w >= 0:   # never stopped: a server dropped unclosed
            self.stopping = True
            self.live = 0
            self._close_if_done()

    def _close_if_done(self):
        if self.stopping and self.live == 0 and self._stop_w >= 0:
            for fd in (self._stop_r, self._stop_w, self._work_r, self._work_w):
                os.close(fd)
            self._stop_r = self._stop_w = self._work_r = self._work_w = -1
            self.poller.close()

    # -- the worker side -------------------------------------------------

    # Named so that worker threads get socketserver's thread names,
    # "Thread-N (process_request_thread)".
    def process_request_thread(self):
        """A worker: run requests until stopped or idle for too long."""
        me = threading.current_thread()
        fresh = [True]      # this worker has yet to wait
        try:
            while True:
                item = self.next_request(fresh)
                if item is None:
                    break
                self.workers[me] = True
                try:
                    survived = run_request(self.server, self.plan, *item)
                finally:
                    self.workers[me] = False
                if not survived:
                    break
        finally:
            with self.lock:
                self.live -= 1
                if fresh[0]:
                    self.starting -= 1
                self.workers[me] = False    # retiring: see workers_of()
                self._close_if_done()

    def next_request(self, fresh):
        """The next (request, client_address) to run, or None to retire;
        *fresh* ([bool]) says whether this worker has yet to wait, once."""
        while True:
            with self.lock:
                if self.queue:
                    item = self.queue.popleft()
                    self.room.notify()
                    return item
                if self.stopping:
                    return None
                self.waiting += 1
                if fresh[0]:
                    fresh[0] = False
                    self.starting -= 1
                # Counted as waiting meanwhile, so that a worker taking a
                # request does not start another on this one's account.
                others_busy = (self.yields_turn and self.live - self.waiting
                               - self.starting > 0)
            if others_busy:
                # Their turn first: see the module docstring.
                os.sched_yield()
            woken = False
            try:
                item, timed_out, woken = self.wait_for_work()
            finally:
                # Both counters in one step: submit() compares them.
                with self.lock:
                    self.waiting -= 1
                    if woken:
                        self.signalled -= 1
                    lonely = self.waiting == 0 and self.starting == 0
            if item is not None:
                if (self.listener is not None and lonely
                        and not self.stopping and self._may_grow()):
                    # Someone must be waiting while this request runs.
                    try:
                        self.spawn()
                    except RuntimeError:
                        pass  # no thread to spare: serve this one anyway
                return item
            if timed_out:
                with self.lock:
                    if (not self.queue and not self.stopping
                            and (self.listener is None or self.waiting > 0)):
                        return None  # idle too long (a crew keeps one)

    def wait_for_work(self):
        """Wait for a queued request or a new one on the listener.

        Returns ``(item, timed_out, woken)``: item None means look again;
        woken, that this worker consumed a queue wake-up.
        """
        if self.listener is not None:
            item = self.take()  # what is already waiting, no wake-up needed
            if item is not None:
                return item, False, False
        timeout = self.idle_timeout
        events = self.poller.poll(-1 if timeout is None else timeout, 1)
        if not events:
            return None, True, False
        fd = events[0][0]
        if fd == self._work_r:
            try:
                os.read(self._work_r, 1)
            except BlockingIOError:
                return None, False, False  # another worker took it
            return None, False, True
        if fd == self._listen_fd:
            # This worker holds the listener until it re-arms it: once it
            # is about to run what it took (see the module docstring).
            try:
                item = None if self.stopping else self.take()
            finally:
                # Re-armed whatever take() raised: a worker that died
                # holding the listener would leave the crew deaf to it.
                self._rearm()
            return item, False, False
        return None, False, False

    def _rearm(self):
        try:
            self.poller.modify(self._listen_fd, _ONE_SHOT)
        except OSError:
            # The listener is closed (server_close() while serving): there
            # is nothing to re-arm, and what take() got must still run.
            pass

    def take(self):
        """Take a ready connection or datagram without blocking, or None."""
        sock = self.listener
        try:
            if self.plan.get_request == Kind.ACCEPT:
                return sock.accept()
            data, address = sock.recvfrom(self.server.max_packet_size,
                                          socket.MSG_DONTWAIT)
            return (data, sock), address
        except OSError as exc:
            # EAGAIN (another worker took it), or an error ignored as
            # socketserver ignores a failed get_request.
            if exc.errno in BACKOFF_ERRNOS:
                self._back_off()
            return None

    def _back_off(self):
        """Out of fds or buffers: pause instead of spinning on the socket."""
        # poll(), not select(): the pipe's fd may be above FD_SETSIZE (1024)
        # in a server with many connections, where select() raises.
        pause = select.poll()
        pause.register(self._stop_r, select.POLLIN)
        pause.poll(BACKOFF_MAX * 1000)


def run_request(server, plan, request, client_address):
    """Run one request as socketserver's request thread does.

    Returns False when an exception escaped the request (it is reported
    through threading.excepthook, and the worker ends, as the thread would).
    """
    try:
        contextvars.Context().run(_process_request_thread, server, plan,
                                  request, client_address)
    except BaseException:
        _report_escaped(*sys.exc_info())
        return False
    return True


def _process_request_thread(server, plan, request, client_address):
    if plan.proxy_protocol and proxy.reads_header_later(plan):
        client_address = proxy.client_address_of(server, plan, request,
                                              client_address)
        if client_address is None:
            requests.shutdown_request(server, plan, request)
            return
    if plan.process_request_thread == Kind.PYTHON:
        server.process_request_thread(request, client_address)
        return
    try:
        requests.finish_request(server, plan, request, client_address)
    except Exception as exc:
        proxy.report_error(server, plan, request, client_address, exc)
    finally:
        requests.shutdown_request(server, plan, request)


def _report_escaped(exc_type, exc_value, exc_tb):
    hook = threading.excepthook
    try:
        hook(threading.ExceptHookArgs(
            [exc_type, exc_value, exc_tb, threading.current_thread()]))
    except Exception:
        pass  # as threading does when the hook itself fails
    finally:
        del exc_value, exc_tb


def _pool_for(server, plan):
    pool = vars(server).get(POOL)
    if pool is None or pool.stopping:
        pool = WorkerPool(server, plan)
        setattr(server, POOL, pool)
    pool.plan = plan
    return pool


def start_thread_request(server, plan, request, client_address):
    """ThreadingMixIn's stock process_request: hand over to a worker."""
    _pool_for(server, plan).submit(request, client_address)


def leads_on_workers(plan):
    """Whether serve_forever() can let the workers take requests themselves."""
    return (plan.process_request == Kind.THREAD
            and plan.get_request in (Kind.ACCEPT, Kind.RECVFROM)
            and plan.verify_request == Kind.ALLOW
            and plan.handle_request_noblock == Kind.TAKE_ONE
            and plan.service_actions == Kind.NO_ACTIONS
            and plan.socket is not None)


def serve_forever_on_workers(server, plan, waker):
    """serve_forever() for a leader/followers crew (see the module doc)."""
    sock = plan.socket
    crew = WorkerPool(server, plan, listener=sock)
    setattr(server, CREW, crew)
    # Several workers may be woken for one connection: the losers must get
    # EAGAIN, not block, so the socket is non-blocking while they lead.
    blocking = (plan.get_request == Kind.ACCEPT
                and os.get_blocking(sock.fileno()))
    if blocking:
        os.set_blocking(sock.fileno(), False)
    try:
        crew.spawn()
        wait_for_stop(server, waker)
    finally:
        crew.stop()
        if blocking and sock.fileno() >= 0:
            os.set_blocking(sock.fileno(), True)
        if vars(server).get(CREW) is crew:
            delattr(server, CREW)


def wait_for_stop(server, waker):
    """Sleep until the server's stop flag is set, acting on signals."""
    poller = select.poll()
    poller.register(waker.fileno(), select.POLLIN)
    cap = SIGNAL_CHECK_INTERVAL if in_main_thread() else None
    while not getattr(server, STOP):
        if cap is not None:
            run_signal_handlers()   # as serve_forever() before its waits
            if getattr(server, STOP):
                break
        if poller.poll(millis(cap)):
            waker.drain()
        elif cap is not None:
            run_signal_handlers()  # a signal another thread caught
