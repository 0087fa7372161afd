"""Dying processes under load: a prefork supervisor killed, its workers
killed one after another, SIGTERM and shutdown() with requests running,
ForkingMixIn's children killed, and a signal that lands on a worker's
helper thread.  Clients count every request that failed.
"""

import inspect
import os
import random
import signal
import socket
import subprocess
import textwrap
import threading
import time

import pytest

import csockserver
from tests.support import procs
from tests.support.env import (CLIENT_TIMEOUT, JOIN_TIMEOUT, PYTHON, child_env,
                               needs_fork, other_pythons, pure_engine_env)
from tests.support.prefork import Supervised
from tests.support.procs import is_running
from tests.support.servers import ServerThread, wait_for

pytestmark = needs_fork


class Clients:
    """Threads that each open a connection per request until stop(): the
    request is *line*; a reply that begins "<pid> sleeping" is followed by
    a second one when the request ends.  Outcomes are counted."""

    def __init__(self, port, count=4, line=b"\n"):
        self.port = port
        self.line = line
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.answered = 0
        self.failed = []        # (time, exception or None for no reply)
        self.cut_off = 0        # acknowledged as running, never answered
        self.threads = [threading.Thread(target=self._run, daemon=True)
                        for _ in range(count)]

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def _one(self):
        # The file is closed with the socket: kept open (by the traceback
        # of a failure, which is kept) it would keep the connection open,
        # and the handler reading it, for good.
        with socket.create_connection(("127.0.0.1", self.port),
                                      timeout=CLIENT_TIMEOUT) as sock, \
                sock.makefile("rb") as replies:
            sock.sendall(self.line)
            words = replies.readline().split()
            if words[1:] == [b"sleeping"]:
                words = replies.readline().split()
                if not words:
                    with self.lock:
                        self.cut_off += 1
                    return
            with self.lock:
                if words:
                    self.answered += 1
                else:
                    self.failed.append((time.monotonic(), None))

    def _run(self):
        while not self.stopping.is_set():
            try:
                self._one()
            except OSError as exc:
                with self.lock:
                    self.failed.append((time.monotonic(), exc))

    def count(self):
        with self.lock:
            return self.answered

    def wait_for_more(self, more):
        target = self.count() + more
        assert wait_for(lambda: self.count() >= target), "the load stalled"

    def stop(self):
        self.stopping.set()
        for thread in self.threads:
            thread.join(JOIN_TIMEOUT)
        assert not any(thread.is_alive() for thread in self.threads)


# -- the supervisor dies ------------------------------------------------------

@pytest.mark.parametrize("threading_workers", [False, True],
                         ids=["sync", "threading"])
def test_killed_supervisor_leaves_no_worker_within_a_second(
        threading_workers):
    """kill -9 of the supervisor while clients keep its workers busy: every
    worker is gone within 1 s."""
    with Supervised(processes=2, threading=threading_workers) as sup:
        workers = sup.wait_pids(lambda pids: len(pids) == 2)
        with Clients(sup.port) as load:
            load.wait_for_more(50)
            sup.signal(signal.SIGKILL)
            killed = time.monotonic()
            sup.proc.wait(JOIN_TIMEOUT)
            gone = wait_for(lambda: not any(is_running(pid, sup.pgid)
                                            for pid in workers),
                            timeout=JOIN_TIMEOUT)
            if not gone:
                sup.dump_stacks(pid for pid in workers
                                if is_running(pid, sup.pgid))
            assert gone, "a worker outlived the supervisor"
            gone_after = time.monotonic() - killed
        assert gone_after < 1.0, "workers outlived it by %.2f s" % gone_after


def test_sigterm_before_a_worker_has_set_its_handlers_is_acted_on():
    """A SIGTERM that reaches a worker between fork() and its own handlers
    waits (held) for them, and retires it, instead of being dropped."""
    with Supervised(processes=1, slow_start=1.0) as sup:
        (worker,) = sup.wait_pids(lambda pids: len(pids) == 1)
        os.kill(worker, signal.SIGTERM)   # within its slow start
        assert wait_for(lambda: not is_running(worker, sup.pgid),
                        timeout=JOIN_TIMEOUT), "the SIGTERM was lost"


# -- workers die --------------------------------------------------------------

KILLS = 10
CLIENTS = 4


@pytest.mark.parametrize("threading_workers", [False, True],
                         ids=["sync", "threading"])
def test_workers_killed_in_a_loop_lose_only_their_requests(
        threading_workers):
    """Workers SIGKILLed one after another under load: only requests in
    those workers fail (at most one per client and kill, since each client
    has one request out), each is replaced, and serving goes on."""
    with Supervised(processes=2, threading=threading_workers) as sup:
        pids = sup.wait_pids(lambda pids: len(pids) == 2)
        killed = set()
        with Clients(sup.port, CLIENTS) as load:
            for _ in range(KILLS):
                load.wait_for_more(20)
                victim = random.choice(sorted(pids))
                os.kill(victim, signal.SIGKILL)
                killed.add(victim)
                pids = sup.wait_pids(lambda now: len(now) == 2
                                     and victim not in now)
            load.wait_for_more(50)   # the last replacements serve
        assert not pids & killed
        assert load.cut_off == 0
        errors = [exc for _, exc in load.failed if exc is not None]
        # The shared socket stays open: nobody is ever refused.
        assert not any(isinstance(exc, ConnectionRefusedError)
                       for exc in errors), errors
        assert len(load.failed) <= KILLS * CLIENTS, load.failed


# -- SIGTERM and shutdown() with requests running -----------------------------

def test_sigterm_to_the_supervisor_finishes_every_running_request():
    """SIGTERM while clients have requests sleeping in both workers: each
    request that started is answered before the workers exit."""
    with Supervised(processes=2, threading=True,
                    graceful_timeout=10.0) as sup:
        sup.wait_pids(lambda pids: len(pids) == 2)
        with Clients(sup.port, 8, line=b"sleep 0.2\n") as load:
            load.wait_for_more(8)
            sup.signal(signal.SIGTERM)
            assert sup.proc.wait(JOIN_TIMEOUT) == 0
        assert load.cut_off == 0
        # What fails is the connections not yet taken: reset when the
        # listening socket closes (as socketserver's server_close() resets
        # its backlog), refused after.
        assert all(isinstance(exc, (ConnectionRefusedError,
                                    ConnectionResetError))
                   for _, exc in load.failed), load.failed


def test_shutdown_under_load_finishes_every_running_request(impl):
    """shutdown() then server_close() of a ThreadingTCPServer while
    requests run: server_close() waits for each (block_on_close)."""
    class Sleepy(impl.StreamRequestHandler):
        def handle(self):
            seconds = float(self.rfile.readline().split()[1])
            self.wfile.write(b"%d sleeping\n" % os.getpid())
            time.sleep(seconds)
            self.wfile.write(b"%d\n" % os.getpid())

    class Server(impl.ThreadingTCPServer):
        request_queue_size = 64

    server = Server(("127.0.0.1", 0), Sleepy)
    runner = ServerThread(server).start()
    try:
        with Clients(server.server_address[1], 8,
                     line=b"sleep 0.2\n") as load:
            load.wait_for_more(8)
            runner.stop()
        assert load.cut_off == 0
        assert load.answered >= 8
    finally:
        runner.stop()


# -- ForkingMixIn's children die ----------------------------------------------

def test_killed_forking_children_are_reaped(impl):
    """Children SIGKILLed while their requests run, with other requests
    coming and going: each is reaped (no zombie left) and forgotten."""
    class PidThenWait(impl.StreamRequestHandler):
        def handle(self):
            self.wfile.write(b"%d\n" % os.getpid())
            self.wfile.flush()
            self.rfile.readline()     # until the client goes away

    server = impl.ForkingTCPServer(("127.0.0.1", 0), PidThenWait)
    runner = ServerThread(server).start()
    port = server.server_address[1]
    held, killed = [], []
    try:
        with Clients(port, 2) as load:
            for _ in range(10):
                sock = socket.create_connection(("127.0.0.1", port),
                                                timeout=CLIENT_TIMEOUT)
                held.append(sock)
                pid = int(sock.makefile("rb").readline())
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            load.wait_for_more(20)
            assert wait_for(lambda: not any(map(procs.exists, killed)),
                            timeout=JOIN_TIMEOUT), [
                pid for pid in killed if procs.exists(pid)]
        assert not set(server.active_children or ()) & set(killed)
        assert load.failed == []
    finally:
        for sock in held:
            sock.close()
        runner.stop()


# -- a signal caught on a worker's helper thread ------------------------------

# The child runs on other interpreters too, with nothing of this tree on
# its path but the package: it is given procs' source, for is_running().
HELPER_THREAD_SIGNAL = inspect.getsource(procs) + textwrap.dedent("""
    import ctypes, os, signal, socket, sys, threading, time
    import csockserver

    class Pid(csockserver.StreamRequestHandler):
        def handle(self):
            self.wfile.write(b"%d\\n" % os.getpid())

    def ask(port):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            return int(s.makefile("rb").readline())

    def takes_sigterm(pid, tid):
        # A thread that blocks SIGTERM (the worker's parent watcher) is
        # never picked by the kernel for a SIGTERM sent to the process.
        with open("/proc/%d/task/%d/status" % (pid, tid)) as status:
            for line in status:
                if line.startswith("SigBlk:"):
                    blocked = int(line.split()[1], 16)
                    return not blocked >> (signal.SIGTERM - 1) & 1
        return True

    def helper_threads(pid):
        return [int(tid) for tid in os.listdir("/proc/%d/task" % pid)
                if int(tid) != pid and takes_sigterm(pid, int(tid))]

    tgkill = getattr(ctypes.CDLL(None, use_errno=True), "tgkill", None)
    if tgkill is None:
        print("skip no tgkill() in this libc")
        sys.exit()
    server = csockserver.PreforkThreadingTCPServer(("127.0.0.1", 0), Pid)
    server.processes = 1
    # Served from a thread that is not the main one, so that the worker is
    # forked from such a thread.
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    worker = ask(server.server_address[1])
    deadline = time.monotonic() + 5
    while not helper_threads(worker):
        assert time.monotonic() < deadline, "the worker has no other thread"
        time.sleep(0.01)
    sent = time.monotonic()
    assert tgkill(worker, helper_threads(worker)[0], signal.SIGTERM) == 0
    while is_running(worker) and time.monotonic() - sent < 5:
        time.sleep(0.01)
    print(csockserver.IMPLEMENTATION,
          "running" if is_running(worker) else "exited",
          time.monotonic() - sent)
    server.shutdown()
    serving.join(10)
    server.server_close()
""")


@pytest.mark.parametrize("python", ["this"] + sorted(other_pythons()))
def test_sigterm_caught_on_a_workers_helper_thread_is_acted_on(python,
                                                                tmp_path):
    """SIGTERM delivered to a thread of a prefork worker other than its
    main one (the kernel may pick any thread that does not block it: here
    a request thread) still retires it, within the wait's 1 s signal
    check.  CPython 3.13.0, in a worker forked from
    a thread other than the main one, never ran the handler."""
    if python == "this":
        command, env = [PYTHON], child_env()
    else:
        command, env = [other_pythons()[python]], pure_engine_env(tmp_path)
    done = subprocess.run(command + ["-W", "ignore", "-c",
                                     HELPER_THREAD_SIGNAL],
                          env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    words = done.stdout.split()
    if words[:1] == ["skip"]:
        pytest.skip(done.stdout)
    engine, state, seconds = words
    if python == "this":
        assert engine == csockserver.IMPLEMENTATION
    assert state == "exited"
    assert float(seconds) < 3.0
