"""PreforkMixIn (beyond socketserver): workers that share the socket, are
restarted when they die, and all end on shutdown() or SIGTERM."""

import os
import signal
import socket
import subprocess
import textwrap
import time

import pytest

import csockserver
from tests.support.env import (CLIENT_TIMEOUT, JOIN_TIMEOUT, PYTHON, child_env,
                               needs_fork)
from tests.support.procs import exists
from tests.support.servers import serving, wait_for

pytestmark = needs_fork


class PidHandler(csockserver.StreamRequestHandler):
    """Answers with the pid of the process that served the request."""

    def handle(self):
        self.wfile.write(b"%d\n" % os.getpid())


def ask_pid(server):
    with socket.create_connection(server.server_address,
                                  timeout=CLIENT_TIMEOUT) as sock:
        return int(sock.makefile("rb").readline())


def prefork_server(processes=2, bases=(csockserver.PreforkTCPServer,)):
    cls = type("Server", bases, {"processes": processes})
    return cls(("127.0.0.1", 0), PidHandler)


def test_processes_workers_serve_and_the_parent_does_not():
    """processes workers are forked; requests are served in them."""
    server = prefork_server(processes=2)
    with serving(server):
        assert wait_for(lambda: len(server.worker_pids) == 2)
        workers = set(server.worker_pids)
        served = {ask_pid(server) for _ in range(40)}
        assert served <= workers
        assert os.getpid() not in served


def test_shutdown_ends_every_worker():
    """After shutdown() returns, no worker process is left."""
    server = prefork_server(processes=3)
    runner = serving(server).start()
    try:
        assert wait_for(lambda: len(server.worker_pids) == 3)
        workers = set(server.worker_pids)
        ask_pid(server)
        runner.shutdown()
        assert not any(exists(pid) for pid in workers)
        assert server.worker_pids == frozenset()
    finally:
        runner.stop()


def test_shutdown_right_after_start_ends_every_worker():
    """shutdown() while workers are still being forked and starting up:
    each one, whatever it was doing when its SIGTERM came, exits."""
    for round_ in range(100):
        server = prefork_server(processes=3)
        runner = serving(server).start()
        try:
            time.sleep((round_ % 10) * 0.001)
            runner.shutdown()
            assert server.worker_pids == frozenset()
        finally:
            runner.stop()


def test_shutdown_kills_a_worker_stuck_before_it_serves():
    """A worker that never got as far as serving (slow to start, or stuck
    on a lock another thread held at fork()) has no request to finish:
    shutdown() ends it without waiting for graceful_timeout."""
    supervisor = os.getpid()

    class StuckAtStart(csockserver.PreforkTCPServer):
        processes = 2
        graceful_timeout = 60.0
        max_requests = 10

        @property
        def max_requests_jitter(self):
            # Read by each worker before it serves.
            if os.getpid() != supervisor:
                time.sleep(120)
            return 0

    server = StuckAtStart(("127.0.0.1", 0), PidHandler)
    runner = serving(server).start()
    try:
        assert wait_for(lambda: len(server.worker_pids) == 2)
        workers = set(server.worker_pids)
        started = time.monotonic()
        runner.shutdown()
        assert time.monotonic() - started < 5.0
        assert not any(exists(pid) for pid in workers)
    finally:
        runner.stop()


def test_a_killed_worker_is_replaced():
    """kill -9 of a worker: a new one takes its place and serves."""
    server = prefork_server(processes=2)
    with serving(server):
        assert wait_for(lambda: len(server.worker_pids) == 2)
        victim = min(server.worker_pids)
        os.kill(victim, signal.SIGKILL)
        assert wait_for(lambda: victim not in server.worker_pids
                        and len(server.worker_pids) == 2)
        assert {ask_pid(server) for _ in range(20)} <= set(server.worker_pids)


def test_serve_forever_can_run_again_after_shutdown():
    """A second serve_forever() forks a fresh set of workers."""
    server = prefork_server(processes=1)
    first_run = serving(server).start()
    try:
        first = ask_pid(server)
    finally:
        first_run.shutdown()
    with serving(server):
        second = ask_pid(server)
    assert first != second


def test_threads_inside_each_worker():
    """Prefork combined with ThreadingMixIn runs requests on worker threads."""

    class ThreadNameHandler(csockserver.StreamRequestHandler):
        def handle(self):
            import threading
            self.wfile.write(b"%d %s\n" % (
                os.getpid(), threading.current_thread().name.encode()))

    server = csockserver.PreforkThreadingTCPServer(("127.0.0.1", 0),
                                                   ThreadNameHandler)
    server.processes = 2
    with serving(server):
        with socket.create_connection(server.server_address,
                                      timeout=CLIENT_TIMEOUT) as sock:
            pid, name = sock.makefile("rb").readline().split(b" ", 1)
        assert int(pid) in server.worker_pids
        assert name.startswith(b"Thread-")


PARENT = textwrap.dedent("""
    import os, sys
    import csockserver

    class Handler(csockserver.StreamRequestHandler):
        def handle(self):
            self.wfile.write(b"%d\\n" % os.getpid())

    server = csockserver.PreforkTCPServer(("127.0.0.1", 0), Handler)
    server.processes = 2
    import threading
    def announce():
        import time
        while len(server.worker_pids) < 2:
            time.sleep(0.01)
        print(server.server_address[1], *sorted(server.worker_pids),
              flush=True)
    threading.Thread(target=announce, daemon=True).start()
    with server:
        server.serve_forever()
    print("returned", flush=True)
""")


def test_sigterm_to_the_parent_ends_every_worker_and_the_parent():
    """SIGTERM: serve_forever() returns, every worker has exited."""
    parent = subprocess.Popen([PYTHON, "-c", PARENT], env=child_env(),
                              stdout=subprocess.PIPE, text=True)
    try:
        port, *workers = map(int, parent.stdout.readline().split())
        assert len(workers) == 2
        with socket.create_connection(("127.0.0.1", port),
                                      timeout=CLIENT_TIMEOUT) as sock:
            assert int(sock.makefile("rb").readline()) in workers
        parent.send_signal(signal.SIGTERM)
        assert parent.stdout.readline().strip() == "returned"
        assert parent.wait(JOIN_TIMEOUT) == 0
        assert not any(exists(pid) for pid in workers)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_processes_must_be_positive():
    """processes = 0 is refused with a clear error, no fork happens."""
    server = prefork_server(processes=0)
    try:
        with pytest.raises(ValueError, match="processes"):
            server.serve_forever()
    finally:
        server.server_close()
