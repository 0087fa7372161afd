"""ForkingMixIn's child processes: reaping, exit statuses, limits, close.

Shared behaviour runs against both implementations (``impl``).  Beyond the
stdlib, csockserver reaps a child as soon as it exits (not on the next
poll_interval tick) and only ever waits for its own children, so a
subprocess started by other code in the server's process keeps its exit
status.

The test process is both server and client, so every child inherits the
clients' sockets too: replies are read by line, never by waiting for EOF.
"""

import os
import socketserver
import subprocess
import sys
import threading
import time

import pytest

import csockserver
from tests.support import procs
from tests.support.clients import recv_line, stream_client
from tests.support.env import JOIN_TIMEOUT, needs_fork
from tests.support.servers import (ServerThread, handle_request, run_bounded,
                                   serving, wait_for)

pytestmark = needs_fork

PROMPT = 1.0         # "returns at once", on a busy two-core machine
STILL_BLOCKED = 0.3  # how long a blocked call must stay blocked
REAPED = 2.0         # how soon an exited child must be reaped

# The pure engine reaps through os.pidfd_open (3.9+); without it, it falls
# back to socketserver's reaping on poll_interval ticks.
PIDFDS = (csockserver.IMPLEMENTATION == "cython"
          or hasattr(os, "pidfd_open"))


def child_state(pid):
    """The /proc state letter of *pid* while it is a child of this process
    ("Z" for a zombie), or None once it is gone (reaped)."""
    found = procs.stat(pid)
    return found.state if found and found.ppid == os.getpid() else None


def children(pids):
    """Those of *pids* still children of this process: running or zombies."""
    return [pid for pid in pids if child_state(pid) is not None]


def wait_exit_status(pid, timeout=JOIN_TIMEOUT):
    """waitpid() one child ourselves, bounded; its exit status."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.WIFEXITED(status), status
            return os.WEXITSTATUS(status)
        assert time.monotonic() < deadline, "child %d did not exit" % pid
        time.sleep(0.01)


def test_no_zombies_after_200_requests(impl):
    """Children of 200 requests are all reaped, without zombies piling up
    and without the test calling collect_children."""
    class Pid(impl.StreamRequestHandler):
        def handle(self):
            self.rfile.readline()
            self.wfile.write(b"%d\n" % os.getpid())

    server = impl.ForkingTCPServer(("127.0.0.1", 0), Pid)
    # The stdlib reaps on poll_interval ticks; csockserver must not need
    # them, so it gets a tick far longer than the test.
    poll_interval = 0.05 if impl is socketserver or not PIDFDS else 60.0
    pids = []
    with serving(server, poll_interval=poll_interval):
        for i in range(200):
            with stream_client(server) as client:
                client.sendall(b"pid?\n")
                pids.append(int(recv_line(client)))
            if i % 20 == 19:
                # Exited children are reaped, not left to pile up.
                assert wait_for(lambda: not children(pids), timeout=REAPED), \
                    [(pid, child_state(pid)) for pid in children(pids)]
        assert wait_for(lambda: not server.active_children, timeout=REAPED), \
            server.active_children
        assert children(pids) == []
    assert len(set(pids)) == 200 and os.getpid() not in pids


@pytest.mark.parametrize("fail,status", [(False, 0), (True, 1)],
                         ids=["ok", "handler-raises"])
def test_child_exit_status(impl, tmp_path, fail, status):
    """A child exits with 0, or with 1 after calling handle_error (in the
    child) for its handler's exception."""
    marker = tmp_path / "handle_error"

    class MaybeFail(impl.StreamRequestHandler):
        def handle(self):
            if self.rfile.readline() == b"fail\n":
                raise ValueError("from the handler")
            self.wfile.write(b"ok\n")

    class Server(impl.ForkingTCPServer):
        def handle_error(self, request, client_address):
            marker.write_text("%d %s" % (os.getpid(),
                                         sys.exc_info()[0].__name__))

    server = Server(("127.0.0.1", 0), MaybeFail)
    try:
        with stream_client(server) as client:
            client.sendall(b"fail\n" if fail else b"hello\n")
            # handle_request() reaps nothing, so the status is still ours.
            handle_request(server)
            reply = recv_line(client)
        (pid,) = server.active_children
        assert wait_exit_status(pid) == status
    finally:
        run_bounded(server.server_close)
    if fail:
        assert reply == b""
        assert marker.read_text() == "%d ValueError" % pid
    else:
        assert reply == b"ok\n"
        assert not marker.exists()


def test_max_children_respected(impl, tmp_path):
    """With max_children=2, six requests of 0.3 s each never have more than
    two handlers running at once."""
    class Slow(impl.StreamRequestHandler):
        def handle(self):
            start = time.monotonic()
            line = self.rfile.readline()
            time.sleep(0.3)
            self.wfile.write(line.upper())
            (tmp_path / str(os.getpid())).write_text(
                "%r %r" % (start, time.monotonic()))

    class Server(impl.ForkingTCPServer):
        max_children = 2

    server = Server(("127.0.0.1", 0), Slow)
    clients = []
    try:
        with serving(server):
            for i in range(6):
                clients.append(stream_client(server))
                clients[-1].sendall(b"client %d\n" % i)
            for i, client in enumerate(clients):
                assert recv_line(client) == b"CLIENT %d\n" % i
    finally:
        for client in clients:
            client.close()
    spans = [tuple(map(float, path.read_text().split()))
             for path in tmp_path.iterdir()]
    assert len(spans) == 6
    overlaps = [sum(1 for start, end in spans if start <= moment < end)
                for moment, _ in spans]
    assert max(overlaps) == 2, sorted(spans)


def test_foreign_subprocess_keeps_its_exit_status():
    """A subprocess started by other code while the server forks and waits
    for free child slots is never reaped by the server (the stdlib's
    waitpid(-1) can steal it)."""
    class Slow(csockserver.StreamRequestHandler):
        def handle(self):
            line = self.rfile.readline()
            time.sleep(0.1)
            self.wfile.write(line.upper())

    class Server(csockserver.ForkingTCPServer):
        max_children = 1

    server = Server(("127.0.0.1", 0), Slow)
    clients = []
    try:
        with serving(server), subprocess.Popen(
                ["sh", "-c", "sleep 0.5; exit 7"]) as sleeper:
            # About 1 s of requests, one child at a time: the server is
            # waiting for a free slot when the sleeper exits.
            for i in range(10):
                clients.append(stream_client(server))
                clients[-1].sendall(b"client %d\n" % i)
            for i, client in enumerate(clients):
                assert recv_line(client) == b"CLIENT %d\n" % i
            assert sleeper.wait(JOIN_TIMEOUT) == 7
    finally:
        for client in clients:
            client.close()


@pytest.mark.parametrize("block", [True, False],
                         ids=["block_on_close", "no-block"])
def test_server_close_and_running_children(impl, block):
    """server_close() waits for a running child with block_on_close, and
    returns at once without it."""
    class TwoLines(impl.StreamRequestHandler):
        timeout = JOIN_TIMEOUT  # never outlive a failed test by much

        def handle(self):
            self.rfile.readline()
            self.wfile.write(b"%d\n" % os.getpid())
            self.rfile.readline()  # runs until the client says go
            self.wfile.write(b"bye\n")

    class Server(impl.ForkingTCPServer):
        block_on_close = block

    server = Server(("127.0.0.1", 0), TwoLines)
    runner = ServerThread(server).start()
    client = stream_client(server)
    pid = None
    try:
        client.sendall(b"hello\n")
        pid = int(recv_line(client))
        runner.shutdown()
        closer = threading.Thread(target=server.server_close, daemon=True)
        closer.start()
        if block:
            closer.join(STILL_BLOCKED)
            assert closer.is_alive(), "server_close() did not wait"
            client.sendall(b"go\n")
            closer.join(JOIN_TIMEOUT)
            assert not closer.is_alive()
            assert child_state(pid) is None  # exited and reaped
            assert not server.active_children
        else:
            closer.join(PROMPT)
            assert not closer.is_alive(), "server_close() waited"
            assert child_state(pid) not in (None, "Z")  # still running
            client.sendall(b"go\n")
        assert recv_line(client) == b"bye\n"
    finally:
        client.close()
        if not block and pid is not None and child_state(pid) is not None:
            wait_exit_status(pid)  # reaped by hand: the server let it go
        runner.stop()
