"""Misbehaving clients and exhausted resources leave the server healthy.

After a stream of bad clients, the server still serves, and once it is
closed the process has exactly the fds and threads it had before.
"""

import json
import resource
import socket
import subprocess
import sys

import pytest

import csockserver
from tests.support.clients import recv_line, reset_on_close
from tests.support.env import (CLIENT_TIMEOUT, JOIN_TIMEOUT, PYTHON, REPO_ROOT,
                               child_env)
from tests.support.leaks import LeakCheck
from tests.support.servers import ServerThread, wait_for

CLIENTS = 50
HANDLER_TIMEOUT = 0.2


def robust_server(impl, dispatch):
    """An echo server that counts handler runs and errors instead of
    printing tracebacks."""
    base = impl.TCPServer if dispatch == "sync" else impl.ThreadingTCPServer

    class Server(base):
        # Room for a burst of clients with both implementations (the
        # stdlib's default backlog is 5).
        request_queue_size = 128

        def __init__(self, *args, **kwargs):
            self.finished = []
            self.errors = []
            super().__init__(*args, **kwargs)

        def handle_error(self, request, client_address):
            self.errors.append(sys.exc_info()[0])

    class Echo(impl.StreamRequestHandler):
        timeout = HANDLER_TIMEOUT

        def handle(self):
            for line in self.rfile:
                self.wfile.write(line.upper())

        def finish(self):
            try:
                super().finish()
            finally:
                self.server.finished.append(True)

    return Server(("127.0.0.1", 0), Echo)


def connect(server):
    client = socket.create_connection(server.server_address, CLIENT_TIMEOUT)
    return client


def closes_at_once(server):
    connect(server).close()


def resets_mid_request(server):
    client = connect(server)
    client.sendall(b"half a li")
    reset_on_close(client)
    client.close()


BAD_CLIENTS = {"close": closes_at_once, "reset": resets_mid_request}


def check_still_serves(server):
    with connect(server) as client:
        client.sendall(b"still there?\n")
        assert recv_line(client) == b"STILL THERE?\n"


@pytest.mark.parametrize("dispatch", ["sync", "threading"])
@pytest.mark.parametrize("behaviour", list(BAD_CLIENTS))
def test_bad_clients_leak_nothing(impl, dispatch, behaviour):
    leaks = LeakCheck()
    server = robust_server(impl, dispatch)
    with ServerThread(server):
        for _ in range(CLIENTS):
            BAD_CLIENTS[behaviour](server)
        assert wait_for(lambda: len(server.finished) >= CLIENTS,
                        timeout=JOIN_TIMEOUT), len(server.finished)
        check_still_serves(server)
    assert len(server.finished) == CLIENTS + 1
    if behaviour == "close":
        assert server.errors == []  # a closed connection is just EOF
    else:
        assert server.errors == [ConnectionResetError] * CLIENTS
    leaks.check()


def silent_clients(impl, dispatch):
    leaks = LeakCheck()
    server = robust_server(impl, dispatch)
    clients = []
    try:
        with ServerThread(server):
            for _ in range(CLIENTS):
                clients.append(connect(server))
            # Each handler gives up after its own timeout.
            assert wait_for(lambda: len(server.errors) >= CLIENTS,
                            timeout=CLIENTS * HANDLER_TIMEOUT + JOIN_TIMEOUT)
            for client in clients:
                assert client.recv(1) == b""  # the server hung up
            check_still_serves(server)
    finally:
        for client in clients:
            client.close()
    # socket.timeout: TimeoutError itself from 3.10, a subclass of OSError
    # before.
    assert server.errors == [socket.timeout] * CLIENTS
    assert len(server.finished) == CLIENTS + 1
    leaks.check()


def test_silent_clients_threading(impl):
    silent_clients(impl, "threading")


@pytest.mark.slow  # 50 handler timeouts of 0.2 s, one after the other
def test_silent_clients_sync(impl):
    silent_clients(impl, "sync")


@pytest.mark.parametrize("dispatch", ["sync", "threading"])
def test_mixed_bad_and_good_clients(impl, dispatch):
    leaks = LeakCheck()
    server = robust_server(impl, dispatch)
    with ServerThread(server):
        for i in range(CLIENTS):
            if i % 3 == 0:
                closes_at_once(server)
            elif i % 3 == 1:
                resets_mid_request(server)
            else:
                check_still_serves(server)
        assert wait_for(lambda: len(server.finished) >= CLIENTS,
                        timeout=JOIN_TIMEOUT)
    assert len(server.finished) == CLIENTS
    assert all(issubclass(e, ConnectionResetError) for e in server.errors)
    leaks.check()


def test_many_servers_leak_nothing(impl):
    leaks = LeakCheck()
    for dispatch in ("sync", "threading") * 10:
        server = robust_server(impl, dispatch)
        with ServerThread(server):
            check_still_serves(server)
    leaks.check()


# -- out of file descriptors -----------------------------------------------

EMFILE_CHILD = r"""
import errno, json, os, resource, socket, sys, threading, time
import csockserver

class Echo(csockserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.readline().upper())

# "high": the server's fds (listening socket, the workers' pipes) are made
# above FD_SETSIZE (1024), where select() cannot watch them.
high = sys.argv[2] == "high"
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
want = 1400 if high else 256
limit = want if hard == resource.RLIM_INFINITY else min(want, hard)
resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
below = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100 if high else 0)]

def server_end_closed(server_port, client_port):
    # Whether the server's end of a loopback connection has been closed: its
    # /proc/net/tcp entry is gone, or orphaned (inode 0: no fd holds it).
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            local, remote = fields[1], fields[2]
            if (int(local.split(":")[1], 16) == server_port
                    and int(remote.split(":")[1], 16) == client_port):
                return int(fields[9]) == 0
    return True

server = getattr(csockserver, sys.argv[1])(("127.0.0.1", 0), Echo)
assert server.fileno() >= 1024 or not high, server.fileno()
thread = threading.Thread(target=server.serve_forever,
                          kwargs={"poll_interval": 0.05})
thread.start()
with socket.create_connection(server.server_address, 5) as first:
    first.sendall(b"up\n")
    assert first.makefile("rb").readline() == b"UP\n"
    # The server closes its end just after replying: wait for that, or its
    # fd would come free in the middle of the exhaustion below.
    deadline = time.monotonic() + 5
    while not server_end_closed(server.server_address[1],
                                first.getsockname()[1]):
        assert time.monotonic() < deadline, "first request never closed"
        time.sleep(0.005)

pending = socket.socket()        # made while fds are still to be had
pending.settimeout(5)
hog = [os.open(os.devnull, os.O_RDONLY)]
try:
    while True:
        hog.append(os.dup(hog[0]))
except OSError as exc:
    assert exc.errno == errno.EMFILE, exc
pending.connect(server.server_address)   # completes in the kernel backlog
pending.sendall(b"late\n")
time.sleep(0.1)                  # the loop has seen it and failed to accept

cpu = time.process_time()
wall = time.monotonic()
time.sleep(1.0)
cpu = time.process_time() - cpu
wall = time.monotonic() - wall

pending.settimeout(0)
try:
    early = pending.recv(100)
except BlockingIOError:
    early = b""
pending.settimeout(5)

for fd in hog:
    os.close(fd)
start = time.monotonic()
reply = pending.makefile("rb").readline()
served_in = time.monotonic() - start

server.shutdown()
thread.join(5)
server.server_close()
print(json.dumps({"cpu": cpu, "wall": wall, "hogged": len(hog),
                  "early": early.decode(), "reply": reply.decode(),
                  "served_in": served_in,
                  "threads": [t.name for t in threading.enumerate()],
                  "engine": csockserver.IMPLEMENTATION}))
"""


@pytest.mark.parametrize("fds", ["low", "high"])
@pytest.mark.parametrize("cls_name", ["TCPServer", "ThreadingTCPServer"])
def test_out_of_fds_backs_off_then_recovers(cls_name, fds):
    # csockserver only: the stdlib's loop retries the failing accept() at
    # once, forever, at 100% CPU.  Run in a child so that the low fd limit
    # cannot hurt this process.  With fds "high" the server's own fds are
    # above 1024: the pure engine's workers once backed off with select(),
    # which raised there and killed the worker that held the listener.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if fds == "high" and hard != resource.RLIM_INFINITY and hard < 1400:
        pytest.skip("needs a hard RLIMIT_NOFILE of 1400 (it is %d)" % hard)
    done = subprocess.run([PYTHON, "-c", EMFILE_CHILD, cls_name, fds],
                          cwd=REPO_ROOT, env=child_env(),
                          capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    result = json.loads(done.stdout.decode().splitlines()[-1])
    assert result["engine"] == csockserver.IMPLEMENTATION
    assert result["hogged"] > 10
    assert result["early"] == ""  # it could not be accepted meanwhile
    assert result["wall"] >= 1.0
    assert result["cpu"] < 0.5, "busy-looped: %.2f s CPU in %.2f s" % (
        result["cpu"], result["wall"])
    assert result["reply"] == "LATE\n"
    assert result["served_in"] < 2.0
    assert b"Traceback" not in done.stderr, done.stderr.decode(
        errors="replace")
