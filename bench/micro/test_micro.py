"""Micro-benchmarks of the per-request path: socketserver vs csockserver.

Each benchmark runs once per ``impl`` (ids ``stdlib`` / ``csock``, see
conftest.py) and is in a group named after its function, so the table shows
the two side by side.  How to run (from the project root)::

    PYTHONPATH=. python3 -m pytest bench/micro -q -p no:cacheprovider
    CSOCKSERVER_NO_EXTENSIONS=1 PYTHONPATH=. python3 -m pytest bench/micro -q

These are benchmarks, not tests: nothing asserts a speed.  Each one does
assert that its handler really ran once per timed call (a counter), so a
broken server fails loudly instead of timing nothing.  Every blocking call is
bounded (server timeouts, socket timeouts, queue timeouts) and the round
counts are fixed (``benchmark.pedantic``) so the whole directory runs in a
few seconds.

What is timed:

* test_tcp_connect_handle_close -- client connect + ``handle_request()``
  (accept, verify, trivial handler, shutdown/close) + client close.
* test_tcp_handle_request_batch -- 50 connections are queued in the listen
  backlog outside the timing, then 50 ``handle_request()`` calls are timed;
  the timer is scaled by 1/50 so the table shows the per-request time.
* test_stream_handler_readline -- ``Handler(sock, addr, stub)`` for a
  StreamRequestHandler subclass over a socketpair: ``setup()`` (makefile),
  100 x ``rfile.readline()`` of 64-byte lines (pre-sent by the peer outside
  the timing), ``finish()``.
* test_threading_dispatch -- ``ThreadingTCPServer.process_request()`` on a
  socketpair half, until the handler (in its new thread) has run.
* test_udp_handle_request -- ``UDPServer.handle_request()`` on a datagram
  sent outside the timing.
"""

import queue
import socket
import struct
import time
import types

import pytest

pytest.importorskip("pytest_benchmark")

# A bound on every wait: far above what a passing round needs.
WAIT = 5.0

LINE = b"x" * 63 + b"\n"        # 64 bytes
N_LINES = 100
BATCH = 50

# RST on close: the client's close() does not leave a TIME_WAIT socket behind
# (the server closes first, so without this the server side of every
# connection would sit in TIME_WAIT).  Identical for both implementations.
_LINGER_RST = struct.pack("ii", 1, 0)


def _per_request_timer(_clock=time.perf_counter, _n=float(BATCH)):
    """perf_counter scaled by 1/BATCH: a timed batch reads as one request."""
    return _clock() / _n


class _Counted:
    """Wraps the timed function and counts how often it actually ran."""

    def __init__(self, fn):
        self.fn = fn
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.fn(*args, **kwargs)


def _tcp_server(impl, handler_class, **attrs):
    """A TCPServer of *impl* on 127.0.0.1:0 with a bounded handle_request."""
    attrs.setdefault("timeout", WAIT)
    cls = type("BenchTCPServer", (impl.TCPServer,), attrs)
    return cls(("127.0.0.1", 0), handler_class)


def _counting_handler(impl, counter):
    class Handler(impl.BaseRequestHandler):
        def handle(self):
            counter[0] += 1
    return Handler


def _connect(addr):
    client = socket.create_connection(addr, timeout=WAIT)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    return client


# -- 1. accept -> handler -> close -------------------------------------------

@pytest.mark.benchmark(group="tcp_connect_handle_close")
def test_tcp_connect_handle_close(bench, impl):
    counter = [0]
    server = _tcp_server(impl, _counting_handler(impl, counter))
    addr = server.server_address

    def one_request():
        # The handshake completes in the kernel (listen backlog), so
        # handle_request() finds the connection ready and does not block.
        client = _connect(addr)
        server.handle_request()
        client.close()

    timed = _Counted(one_request)
    try:
        bench.pedantic(timed, rounds=5000, iterations=1, warmup_rounds=200)
    finally:
        server.server_close()
    assert timed.calls > 0
    assert counter[0] == timed.calls


@pytest.mark.benchmark(group="tcp_handle_request_batch50(per request)",
                       timer=_per_request_timer)
def test_tcp_handle_request_batch(bench, impl):
    counter = [0]
    # stdlib's request_queue_size is 5: 50 queued connections would overflow
    # the accept queue and stall connect() on SYN retransmits.  Give both the
    # same backlog so only the per-request path is compared.
    server = _tcp_server(impl, _counting_handler(impl, counter),
                         request_queue_size=128)
    addr = server.server_address
    open_clients = []

    def close_clients():
        for client in open_clients:
            client.close()
        del open_clients[:]

    def setup():
        close_clients()
        open_clients.extend(_connect(addr) for _ in range(BATCH))

    def batch():
        handle = server.handle_request
        for _ in range(BATCH):
            handle()

    timed = _Counted(batch)
    try:
        bench.pedantic(timed, setup=setup, rounds=200, iterations=1,
                       warmup_rounds=3)
    finally:
        close_clients()
        server.server_close()
    assert timed.calls > 0
    assert counter[0] == timed.calls * BATCH


# -- 2. StreamRequestHandler: setup (makefile) + rfile.readline ---------------

@pytest.mark.benchmark(group="stream_handler_readline100")
def test_stream_handler_readline(bench, impl):
    counter = [0]

    class ReadLines(impl.StreamRequestHandler):
        def handle(self):
            readline = self.rfile.readline
            for _ in range(N_LINES):
                if readline() != LINE:
                    raise AssertionError("short or wrong line")
                counter[0] += 1

    server_stub = types.SimpleNamespace()
    sock, peer = socket.socketpair()
    sock.settimeout(WAIT)        # a missing line fails instead of hanging
    payload = LINE * N_LINES     # 6400 bytes: fits the socket buffer

    def setup():
        peer.sendall(payload)

    def run_handler():
        # What finish_request() does; finish() closes rfile/wfile but not
        # the socket, so the pair is reused across rounds.
        ReadLines(sock, ("127.0.0.1", 0), server_stub)

    timed = _Counted(run_handler)
    try:
        bench.pedantic(timed, setup=setup, rounds=5000, iterations=1,
                       warmup_rounds=200)
    finally:
        sock.close()
        peer.close()
    assert timed.calls > 0
    assert counter[0] == timed.calls * N_LINES


# -- 3. dispatch to a worker thread ------------------------------------------

@pytest.mark.benchmark(group="threading_dispatch")
def test_threading_dispatch(bench, impl):
    done = queue.SimpleQueue()

    class Handler(impl.BaseRequestHandler):
        def handle(self):
            done.put(None)

    server = impl.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    peers = []

    def close_peers():
        for peer in peers:
            peer.close()
        del peers[:]

    def setup():
        close_peers()
        request, peer = socket.socketpair()
        request.settimeout(WAIT)
        peers.append(peer)
        return (request, ("127.0.0.1", 0)), {}

    ran = [0]

    def dispatch(request, client_address):
        server.process_request(request, client_address)
        done.get(timeout=WAIT)   # raises queue.Empty if the handler never ran
        ran[0] += 1

    timed = _Counted(dispatch)
    try:
        bench.pedantic(timed, setup=setup, rounds=3000, iterations=1,
                       warmup_rounds=50)
    finally:
        server.server_close()    # joins the request threads
        close_peers()
    assert timed.calls > 0
    assert ran[0] == timed.calls
    assert done.empty()


# -- 4. UDP ------------------------------------------------------------------

@pytest.mark.benchmark(group="udp_handle_request")
def test_udp_handle_request(bench, impl):
    counter = [0]
    payload = b"ping" * 16

    class Handler(impl.BaseRequestHandler):
        def handle(self):
            data, _sock = self.request
            if data != payload:
                raise AssertionError("wrong datagram")
            counter[0] += 1

    cls = type("BenchUDPServer", (impl.UDPServer,), {"timeout": WAIT})
    server = cls(("127.0.0.1", 0), Handler)
    addr = server.server_address
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.settimeout(WAIT)

    def setup():
        client.sendto(payload, addr)

    timed = _Counted(server.handle_request)
    try:
        bench.pedantic(timed, setup=setup, rounds=5000, iterations=1,
                       warmup_rounds=200)
    finally:
        client.close()
        server.server_close()
    assert timed.calls > 0
    assert counter[0] == timed.calls
