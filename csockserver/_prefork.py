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

import os
import select
import signal
import sys
import threading
import time
import traceback

from ._common import SIGNAL_CHECK_INTERVAL, close_threads
from ._contract import ENGINE_STATE, WAKER
from ._engine import engine as _engine
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
    """Mix-in that serves with ``processes`` worker processes."""

    # Number of worker processes; None means one per usable CPU.
    processes = None
    # Seconds a retiring worker may take to finish its requests before it
    # is killed (on reload, shutdown, recycling, or its parent's death).
    graceful_timeout = 30.0
    # The live workers' pids, while serve_forever() runs in the parent.
    worker_pids = frozenset()
    _csock_prefork_parent = None   # pid of the supervisor, once serving

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


class _Supervisor:
    """The parent's side of a PreforkMixIn server for one serve_forever()."""

    def __init__(self, server, poll_interval):
        self.server = server
        self.poll_interval = poll_interval
        self.count = (_cpus() if server.processes is None
                      else server.processes)
        if self.count < 1:
            raise ValueError("processes must be at least 1")
        self.started = {}          # pid -> start time
        self.pause = 0.0
        self.restart_at = 0.0      # when the next restart is allowed
        self.missing = 0           # workers to (re)start
        self.prctl = _find_prctl()

    def run(self):
        server = self.server
        waker = _engine.Waker()
        reaper = _engine.Reaper()
        server._csock_waker = waker
        server._csock_prefork_parent = os.getpid()
        # The workers share the socket's open file description, and with it
        # its O_NONBLOCK flag: set it here, for all of them, so that no
        # worker waits in an accept() another one won, and none of them
        # flips the flag under the others' feet.
        fd = server.fileno()
        was_blocking = os.get_blocking(fd)
        previous = self._catch_sigterm()
        try:
            os.set_blocking(fd, False)
            self.missing = self.count
            self._loop(waker, reaper)
        finally:
            try:
                self._stop_workers(reaper)
            finally:
                if was_blocking:
                    os.set_blocking(fd, True)
                server._csock_waker = None
                server.worker_pids = frozenset()
                if previous is not None:
                    signal.signal(signal.SIGTERM, previous)
                reaper.close()
                waker.close()

    def _catch_sigterm(self):
        """SIGTERM to the parent means shutdown(); main thread only."""
        if threading.current_thread() is not threading.main_thread():
            return None
        server = self.server

        def on_sigterm(signum, frame):
            server._BaseServer__shutdown_request = True
        return signal.signal(signal.SIGTERM, on_sigterm)

    def _loop(self, waker, reaper):
        server = self.server
        poller = select.poll()
        poller.register(waker.fileno(), select.POLLIN)
        poller.register(reaper.fileno(), select.POLLIN)
        main = threading.current_thread() is threading.main_thread()
        while not server._csock_stop:
            now = time.monotonic()
            if self.missing and now >= self.restart_at:
                self._start_missing(reaper)
            wait = SIGNAL_CHECK_INTERVAL if main else None
            if self.missing:
                wait = max(0.0, min(wait or 1e9, self.restart_at - now))
            if not reaper.works:
                wait = min(wait or 1e9, _NO_PIDFD_POLL)
            events = poller.poll(None if wait is None else wait * 1e3)
            for fd, _ in events:
                if fd == waker.fileno():
                    waker.drain()
            self._reap(reaper)

    def _start_missing(self, reaper):
        while self.missing and not self.server._csock_stop:
            pid = _engine.fork_process()
            if pid == 0:
                _run_worker(self.server, self.poll_interval,  # no return
                            self.server._csock_prefork_parent, self.prctl)
            self.started[pid] = time.monotonic()
            reaper.watch(pid)
            self.missing -= 1
            self.server.worker_pids = frozenset(self.started)

    def _reap(self, reaper, flags=os.WNOHANG):
        """Reap dead workers; each one is to be restarted."""
        now = time.monotonic()
        for pid in list(self.started):
            try:
                done, _ = os.waitpid(pid, flags)
            except ChildProcessError:
                done = pid
            if not done:
                continue
            started = self.started.pop(pid)
            reaper.forget(pid)
            self.missing += 1
            if now - started < _QUICK_DEATH:
                self.pause = min(_RESTART_PAUSE_MAX,
                                 self.pause * 2 or _RESTART_PAUSE_FIRST)
                self.restart_at = now + self.pause
            else:
                self.pause = 0.0
        self.server.worker_pids = frozenset(self.started)

    def _stop_workers(self, reaper):
        """Ask every worker to stop, then wait for all of them."""
        for pid in self.started:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        while self.started:
            try:
                self._reap(reaper, flags=0)
            except KeyboardInterrupt:
                # A second Ctrl-C: stop waiting politely.
                for pid in self.started:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        self.missing = 0


def _run_worker(server, poll_interval, parent, prctl):
    """A worker process: serve until SIGTERM, finish requests, exit."""
    status = 1
    try:
        _die_with_parent(parent, prctl)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides
        # Forget the parent's dispatch state: its threads do not exist here.
        for name in ENGINE_STATE + (WAKER,):
            vars(server).pop(name, None)
        server._BaseServer__shutdown_request = False
        server.worker_pids = frozenset()
        # A lock another parent thread held at fork() stays locked here for
        # good: give the worker its own Event (shutdown() callers in the
        # parent take the shared one's lock).
        server._BaseServer__is_shut_down = threading.Event()

        # Only now: a SIGTERM from here on must not be undone by the reset
        # above (before it, SIGTERM's default action ends the worker).
        def on_sigterm(signum, frame):
            server._BaseServer__shutdown_request = True
        signal.signal(signal.SIGTERM, on_sigterm)
        _watch_parent(server, parent)
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
        server._BaseServer__shutdown_request = True
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
    if hasattr(server, "collect_children"):         # ForkingMixIn
        server.collect_children(blocking=server.block_on_close)


class PreforkTCPServer(PreforkMixIn, TCPServer): pass
class PreforkUDPServer(PreforkMixIn, UDPServer): pass
class PreforkThreadingTCPServer(PreforkMixIn, ThreadingMixIn, TCPServer): pass
