"""The parent's side of a prefork server: the supervisor of its workers.

PreforkMixIn.serve_forever() runs one Supervisor in the parent; it forks
the workers (each runs worker.run_worker()) and restarts, reloads and
stops them.
"""

import math
import os
import select
import signal
import socket
import sys
import threading
import time

from .. import _systemd
from .._engine.timing import SIGNAL_CHECK_INTERVAL, run_signal_handlers
from .._engine import selection as _selection
from .link import Link
from .worker import run_worker

# A worker that dies sooner than this after its start is restarted only
# after a pause, doubling from the first value up to the second.
_QUICK_DEATH = 1.0
_RESTART_PAUSE_FIRST = 0.1
_RESTART_PAUSE_MAX = 5.0
# Without pidfds, how often the supervisor looks for dead workers.
_NO_PIDFD_POLL = 0.1
# A worker retired before it said it serves has accepted nothing (its
# SIGTERM handler is in place before it serves, so it never will): it is
# killed if it has not exited after this many seconds, not graceful_timeout.
# Such a worker can only be slow to start or stuck in it (a lock that
# another thread of the supervisor held at fork()).
_START_GRACE = 1.0
# What the supervisor acts on when it runs in the main thread.
_SUPERVISOR_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGTTIN,
                       signal.SIGTTOU)


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


class Supervisor:
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
        link = Link()
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
                run_worker(server, self.poll_interval,  # never returns
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
            if message == Link.READY:
                worker.ready = True
                if worker.deadline not in (None, math.inf):
                    # Said it serves before its SIGTERM: it may hold
                    # requests, which get the whole graceful_timeout.
                    worker.deadline = (worker.retired
                                       + self.server.graceful_timeout)
            elif message == Link.RETIRING and worker.deadline is None:
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
