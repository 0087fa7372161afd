"""PreforkMixIn: several processes serving one listening socket.

Beyond socketserver.  Python runs one thread of Python at a time per
process; a prefork server uses every core by running ``processes`` copies
of its serving loop in worker processes forked after the socket is bound.
The kernel spreads connections (or datagrams) among the workers.

The parent only supervises: it restarts a worker that dies (after a
growing pause if workers keep dying at once), and on shutdown(), SIGTERM
or Ctrl-C it asks every worker to stop (SIGTERM: a worker finishes its
running requests as server_close() would, then exits) and waits for them.
Combine it with ThreadingMixIn for threads inside each worker::

    class Server(PreforkMixIn, ThreadingMixIn, TCPServer):
        processes = 4

Only serve_forever() is spread over the workers; handle_request() serves in
the calling process, as for any other server.  Workers do not call the
user's server_close() (it may, say, unlink a unix socket path the parent
still serves); that runs in the parent, as usual.
"""

import math
import os
import random
import select
import signal
import socket
import struct
import sys
import threading
import time
import traceback

from . import _systemd
from ._engine.timing import SIGNAL_CHECK_INTERVAL, run_signal_handlers
from ._engine.workers import close_threads, workers_of
from ._engine.contract import ENGINE_STATE, WAKER
from ._engine import selection as _selection
from ._socketserver import TCPServer, ThreadingMixIn, UDPServer

# A worker that dies sooner than this after its start is restarted only
# after a pause, doubling from the first value up to the second.
_QUICK_DEATH = 1.0
_RESTART_PAUSE_FIRST = 0.1
_RESTART_PAUSE_MAX = 5.0
# Without pidfds, how often the supervisor looks for dead workers.
_NO_PIDFD_POLL = 0.1
# Without a pidfd on the parent, how often a worker checks it is alive.
_PARENT_POLL = 0.5
# A worker retired before it said it serves has accepted nothing (its
# SIGTERM handler is in place before it serves, so it never will): it is
# killed if it has not exited after this many seconds, not graceful_timeout.
# Such a worker can only be slow to start or stuck in it (a lock that
# another thread of the supervisor held at fork()).
_START_GRACE = 1.0
# What the supervisor acts on when it runs in the main thread.
_SUPERVISOR_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGTTIN,
                       signal.SIGTTOU)
# prctl(2) option: the signal a process gets when its parent dies.
_PR_SET_PDEATHSIG = 1


def _cpus():
    """How many CPUs this process may run on (taskset counts)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _find_prctl():
    """libc's prctl(), or None off Linux or where ctypes cannot load.

    Looked up in the supervisor, before any fork, so that no worker pays
    for importing ctypes.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes
        return ctypes.CDLL(None, use_errno=True).prctl
    except (ImportError, OSError, AttributeError):
        return None


class PreforkMixIn:
    """Mix-in that serves with several worker processes on one socket.

    Beyond socketserver.  serve_forever() forks ``processes`` workers, each
    running the serving loop on the listening socket (bound before the
    fork), and supervises them: a worker that dies is restarted (after a
    growing pause if workers keep dying at once).  Put it first among the
    bases, and combine it with ThreadingMixIn (or ForkingMixIn) for threads
    (or children) inside each worker.  handle_request() serves in the
    calling process; the user's server_close() runs in the supervisor only.

    Class attributes (set them on a subclass):

    ``processes = None``
        How many workers; None: one per CPU this process may run on.
    ``graceful_timeout = 30.0``
        Seconds a retiring worker may take to finish the requests in hand
        (daemon handler threads included) before it is killed: whenever a
        worker retires (reload, recycling, SIGTTOU, shutdown) or its
        supervisor dies.  A worker retired before it began serving has no
        request in hand: it is killed after one second.
    ``max_requests = None``
        A worker retires after about this many requests (a connection, for
        a stream server) and a fresh one replaces it; None or 0: never.
    ``max_requests_jitter = 0``
        Each worker adds a random 0 to this many to ``max_requests``, so
        that workers started together do not all retire at once.
    ``reuse_port_per_worker = False``
        TCP only.  True: every worker but one listens on a socket of its
        own, bound to the same address with SO_REUSEPORT, so the kernel
        spreads connections evenly; the connections waiting on a worker's
        own socket are reset when it exits.  Keep False for reloads that
        drop nothing.

    Read them, do not set them:

    ``worker_pids = frozenset()``
        In the supervisor, while serve_forever() runs: the live workers'
        pids.
    ``retiring = False``
        In a worker: True once it has been told to stop.  A handler that
        keeps a connection open for more requests should close it after
        the one in hand (csockserver.http's handlers do).

    Signals, handled while serve_forever() runs in the main thread:

    - SIGTERM, or shutdown(): every worker is told to stop (SIGTERM: stop
      accepting, finish the requests in hand, exit), then serve_forever()
      returns once they have.  Ctrl-C (SIGINT) does the same on its way
      out of serve_forever(); a second Ctrl-C kills the workers at once.
    - SIGHUP: rolling reload.  A new set of workers starts; once all of
      them serve, the old ones retire, so no connection is refused.
    - SIGTTIN / SIGTTOU: one worker more / one fewer (the oldest retires;
      never below one).

    When the supervisor dies (even by SIGKILL), each worker stops accepting
    at once and exits within ``graceful_timeout``.
    """

    # Number of worker processes; None means one per usable CPU.
    processes = None
    # Seconds a retiring worker may take to finish its requests before it
    # is killed (on reload, shutdown, recycling, or its parent's death).
    graceful_timeout = 30.0
    # In a worker: True once it has been told to stop.  A handler that
    # keeps a connection open for more requests should close it after the
    # one it is serving.
    retiring = False
    # A worker retires after about this many requests (None or 0: never),
    # plus a random 0..max_requests_jitter of its own, so that workers
    # started together do not all retire at once.
    max_requests = None
    max_requests_jitter = 0
    # True: every worker but one listens on a socket of its own, bound
    # beside the shared one with SO_REUSEPORT, and the kernel spreads new
    # connections evenly over them; the price is that the connections
    # queued on a worker's socket are reset when that worker exits.  The
    # one worker left serves the shared socket, whose queue outlives it.
    reuse_port_per_worker = False
    # The live workers' pids, while serve_forever() runs in the parent.
    worker_pids = frozenset()
    _csock_prefork_parent = None   # pid of the supervisor, once serving

    def server_bind(self):
        """Bind as usual, with SO_REUSEPORT first for reuse_port_per_worker
        (the workers' sockets can join only a socket bound with it)."""
        if self.reuse_port_per_worker and hasattr(socket, "SO_REUSEPORT"):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()

    def serve_forever(self, poll_interval=0.5):
        """Fork the workers and supervise them until shutdown()."""
        if self._csock_prefork_parent not in (None, os.getpid()):
            # A worker (forked by us) serving: the plain loop.
            return super().serve_forever(poll_interval)
        supervisor = _Supervisor(self, poll_interval)
        is_shut_down = self._BaseServer__is_shut_down
        is_shut_down.clear()
        try:
            supervisor.run()
        finally:
            self._BaseServer__shutdown_request = False
            is_shut_down.set()


class _Worker:
    """What the supervisor knows of one worker process."""

    __slots__ = ("pid", "generation", "shared", "started", "ready",
                 "retired", "deadline")

    def __init__(self, pid, generation, shared):
        self.pid = pid
        self.generation = generation   # which reload it belongs to
        self.shared = shared           # it accepts on the shared socket
        self.started = time.monotonic()
        self.ready = False             # it said it is serving
        self.retired = None            # when it was told to stop
        self.deadline = None           # retiring: when to SIGKILL it


class _Link:
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


class _Supervisor:
    """The parent's side of a PreforkMixIn server for one serve_forever().

    It keeps ``count`` workers of the current *generation* that are not
    retiring.  SIGHUP starts a new generation; the older workers are
    retired (SIGTERM) only once the new ones have all said they serve, so
    the socket is never left without a worker accepting on it.
    """

    def __init__(self, server, poll_interval):
        self.server = server
        self.poll_interval = poll_interval
        self.count = (_cpus() if server.processes is None
                      else server.processes)
        if self.count < 1:
            raise ValueError("processes must be at least 1")
        if server.reuse_port_per_worker:
            _check_reuse_port(server.socket)
        self.workers = {}          # pid -> _Worker
        self.generation = 0
        self.pause = 0.0
        self.restart_at = 0.0      # when the next restart is allowed
        self.signals = []          # caught, for the loop to act on
        self.caught = ()           # the signals whose handlers are ours
        self.prctl = _find_prctl()
        self.systemd = _systemd.Supervision(server.systemd_notify)

    def run(self):
        server = self.server
        waker = _selection.engine.Waker()
        reaper = _selection.engine.Reaper()
        link = _Link()
        server._csock_waker = waker
        server._csock_prefork_parent = os.getpid()
        # The workers share the socket's open file description, and with it
        # its O_NONBLOCK flag: set it here, for all of them, so that no
        # worker waits in an accept() another one won, and none of them
        # flips the flag under the others' feet.
        fd = server.fileno()
        was_blocking = os.get_blocking(fd)
        previous = self._catch_signals(waker)
        try:
            os.set_blocking(fd, False)
            self._loop(waker, reaper, link)
        finally:
            self.systemd.stopping()
            try:
                self._stop_workers(reaper, link)
            finally:
                if was_blocking:
                    os.set_blocking(fd, True)
                server._csock_waker = None
                server.worker_pids = frozenset()
                for signum, handler in previous.items():
                    signal.signal(signum, handler)
                link.close()
                reaper.close()
                waker.close()

    def _catch_signals(self, waker):
        """SIGTERM means shutdown(); SIGHUP, SIGTTIN and SIGTTOU are left
        to the loop.  Only a main thread may set handlers: elsewhere the
        process keeps its own."""
        if threading.current_thread() is not threading.main_thread():
            return {}
        server = self.server

        def on_signal(signum, frame):
            if signum == signal.SIGTERM:
                server._BaseServer__shutdown_request = True
            else:
                self.signals.append(signum)
                waker.wake()
        previous = {signum: signal.signal(signum, on_signal)
                    for signum in _SUPERVISOR_SIGNALS}
        self.caught = tuple(previous)
        # A handler set outside Python cannot be put back (None): leave
        # ours, as before these signals were caught.
        return {signum: handler for signum, handler in previous.items()
                if handler is not None}

    def _loop(self, waker, reaper, link):
        server = self.server
        poller = select.poll()
        for fd in (waker.fileno(), reaper.fileno(), link.fileno()):
            poller.register(fd, select.POLLIN)
        main = threading.current_thread() is threading.main_thread()
        while not server._csock_stop:
            self.systemd.tick()
            self._act_on_signals()
            self._start_missing(reaper, link)
            self._retire_superseded()
            self._kill_overdue()
            events = poller.poll(self._wait(main, reaper))
            if main and not events:
                run_signal_handlers()  # a signal another thread caught
            for fd, _ in events:
                if fd == waker.fileno():
                    waker.drain()
            # Messages first: a worker that said "retiring" and then exited
            # is a retirement, not a death to restart it after.
            self._read(link)
            self._reap(reaper)

    def _wait(self, main, reaper):
        """How long the loop may sleep, in poll()'s milliseconds."""
        now = time.monotonic()
        bounds = [SIGNAL_CHECK_INTERVAL if main else None,
                  self.systemd.wait()]
        if self._missing():
            bounds.append(max(0.0, self.restart_at - now))
        if not reaper.works:
            bounds.append(_NO_PIDFD_POLL)
        overdue = self._next_deadline()
        if overdue is not None:
            bounds.append(max(0.0, overdue - now))
        bounds = [bound for bound in bounds if bound is not None]
        return min(bounds) * 1e3 if bounds else None

    def _act_on_signals(self):
        while self.signals:
            signum = self.signals.pop(0)
            if signum == signal.SIGHUP:
                # A fresh set of workers; the current ones retire once it
                # is up (_retire_superseded).
                self.generation += 1
                self.systemd.reloading()
            elif signum == signal.SIGTTIN:
                self.count += 1            # started by _start_missing
            elif signum == signal.SIGTTOU and self.count > 1:
                self.count -= 1
                self._retire_surplus()

    def _retire_surplus(self):
        """Retire the oldest serving workers beyond ``count`` (as gunicorn
        does: they have had the longest to grow)."""
        serving = sorted(self._serving(), key=lambda worker: worker.started)
        for worker in serving[:max(0, len(serving) - self.count)]:
            self._retire(worker)

    def _serving(self):
        """The current generation's workers that are not retiring."""
        return [worker for worker in self.workers.values()
                if worker.generation == self.generation
                and worker.deadline is None]

    def _missing(self):
        return max(0, self.count - len(self._serving()))

    def _start_missing(self, reaper, link):
        server = self.server
        while (self._missing() and not server._csock_stop
               and time.monotonic() >= self.restart_at):
            # With reuse_port_per_worker, one worker of the generation
            # serves the shared socket, the others sockets of their own.
            shared = (not server.reuse_port_per_worker
                      or not any(worker.shared for worker in self._serving()))
            pid, mask = _fork_with_signals_held()
            if pid == 0:
                _run_worker(server, self.poll_interval,  # never returns
                            server._csock_prefork_parent, self.prctl,
                            link, self.caught, mask, shared)
            self.workers[pid] = _Worker(pid, self.generation, shared)
            reaper.watch(pid)
            server.worker_pids = frozenset(self.workers)

    def _retire_superseded(self):
        """Retire the older generations' workers once the current one is
        all up and serving."""
        serving = self._serving()
        if sum(worker.ready for worker in serving) < self.count:
            return
        for worker in list(self.workers.values()):
            if worker.generation != self.generation:
                self._retire(worker)
        self.systemd.serving(self.generation)

    def _retire(self, worker):
        """Ask a worker to stop accepting, finish its requests and exit."""
        if worker.deadline is not None:
            return
        worker.retired = time.monotonic()
        grace = self.server.graceful_timeout
        if not worker.ready:
            grace = min(grace, _START_GRACE)
        worker.deadline = worker.retired + grace
        try:
            os.kill(worker.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    def _read(self, link):
        for pid, message in link.messages():
            worker = self.workers.get(pid)
            if worker is None:
                continue               # already reaped
            if message == _Link.READY:
                worker.ready = True
                if worker.deadline not in (None, math.inf):
                    # Said it serves before its SIGTERM: it may hold
                    # requests, which get the whole graceful_timeout.
                    worker.deadline = (worker.retired
                                       + self.server.graceful_timeout)
            elif message == _Link.RETIRING and worker.deadline is None:
                # It stops by itself: a replacement starts now.
                worker.retired = time.monotonic()
                worker.deadline = (worker.retired
                                   + self.server.graceful_timeout)

    def _reap(self, reaper, flags=os.WNOHANG):
        """Reap dead workers; those that were not retiring die too early
        and are restarted (after a pause if they keep dying at once)."""
        now = time.monotonic()
        for worker in list(self.workers.values()):
            try:
                done, _ = os.waitpid(worker.pid, flags)
            except ChildProcessError:
                done = worker.pid
            if not done:
                continue
            del self.workers[worker.pid]
            reaper.forget(worker.pid)
            if worker.deadline is not None:
                continue
            if now - worker.started < _QUICK_DEATH:
                self.pause = min(_RESTART_PAUSE_MAX,
                                 self.pause * 2 or _RESTART_PAUSE_FIRST)
                self.restart_at = now + self.pause
            else:
                self.pause = 0.0
        self.server.worker_pids = frozenset(self.workers)

    def _next_deadline(self):
        """When the next retiring worker is due to be killed, or None."""
        deadlines = [worker.deadline for worker in self.workers.values()
                     if worker.deadline is not None
                     and worker.deadline != math.inf]
        return min(deadlines) if deadlines else None

    def _kill_overdue(self):
        """SIGKILL the retiring workers whose graceful_timeout is over."""
        now = time.monotonic()
        for worker in self.workers.values():
            if worker.deadline is not None and now >= worker.deadline:
                self._kill(worker)

    def _kill(self, worker):
        worker.deadline = math.inf   # killed: nothing left to wait for
        try:
            os.kill(worker.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _stop_workers(self, reaper, link):
        """Ask every worker to stop, then wait for all of them, killing
        those that outlast graceful_timeout (those that never said they
        serve, _START_GRACE)."""
        self._read(link)
        for worker in list(self.workers.values()):
            self._retire(worker)
        while self.workers:
            try:
                self._read(link)   # a late "serving" extends the deadline
                self._kill_overdue()
                self._wait_for_exits(reaper)
                self._reap(reaper)
            except KeyboardInterrupt:
                # A second Ctrl-C: stop waiting politely.
                for worker in self.workers.values():
                    self._kill(worker)

    def _wait_for_exits(self, reaper):
        """Sleep until a worker exits or the next deadline comes."""
        deadline = self._next_deadline()
        timeout = (None if deadline is None
                   else max(0.0, deadline - time.monotonic()))
        if reaper.works and reaper.covers(list(self.workers)):
            reaper.exited(timeout)
        else:
            time.sleep(_NO_PIDFD_POLL if timeout is None
                       else min(timeout, _NO_PIDFD_POLL))


def _fork_with_signals_held():
    """fork(), the child starting with the signals a worker handles held;
    returns the pid and the signal mask to restore (None: nothing held).

    A signal that comes before the worker has set its own handlers would
    run the supervisor's (inherited) one, or be lost in the worker's reset
    of its state; held, it waits for the worker's handlers.
    """
    if not hasattr(signal, "pthread_sigmask"):
        return _selection.engine.fork_process(), None
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SUPERVISOR_SIGNALS)
    pid = _selection.engine.fork_process()
    if pid:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    return pid, mask


def _run_worker(server, poll_interval, parent, prctl, link, caught, mask,
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
        # above (until here it was held, see _fork_with_signals_held).
        def on_sigterm(signum, frame):
            _retire(server)
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
        link.tell(_Link.READY)
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


def _check_reuse_port(sock):
    """reuse_port_per_worker's needs, checked before any worker starts."""
    if not hasattr(socket, "SO_REUSEPORT"):
        raise ValueError("reuse_port_per_worker needs SO_REUSEPORT, which "
                         "this platform lacks")
    if (sock.type != socket.SOCK_STREAM
            or sock.family not in (socket.AF_INET, socket.AF_INET6)):
        raise ValueError("reuse_port_per_worker is for TCP servers: a "
                         "worker's datagram socket would take its share of "
                         "the datagrams, and unix sockets cannot share a "
                         "path")
    if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT):
        raise ValueError("reuse_port_per_worker: the listening socket was "
                         "bound without SO_REUSEPORT (an override of "
                         "server_bind() that does not call "
                         "PreforkMixIn.server_bind()?)")


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
                link.tell(_Link.RETIRING)  # a replacement starts now
                _retire(server)
    setattr(server, name, counted)


def _retire(server):
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
        _retire(server)
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


class PreforkTCPServer(PreforkMixIn, TCPServer):
    """TCPServer served by PreforkMixIn's worker processes, each handling
    one connection at a time."""


class PreforkUDPServer(PreforkMixIn, UDPServer):
    """UDPServer served by PreforkMixIn's worker processes, which share the
    datagrams that arrive."""


class PreforkThreadingTCPServer(PreforkMixIn, ThreadingMixIn, TCPServer):
    """TCPServer served by PreforkMixIn's worker processes, each with
    ThreadingMixIn's threads: a thread per connection."""
