"""csockserver.http against slow clients: request_timeout, keepalive_timeout.

A handler with ``request_timeout`` answers 408 to a request whose line and
headers did not all come in time, and closes; one that sent nothing is
closed without a word.  With ``keepalive_timeout``, a keep-alive connection
that stays idle between requests is closed without a word.  The clients
are raw sockets over loopback, so that what arrives (or does not) is seen
byte for byte.  Each test here fails without the feature, except those
under "unchanged", which pin that nothing else of http.server moved.
"""

import contextlib
import http.server
import select
import socket
import threading
import time

import pytest

import csockserver.http as chttp
from csockserver._engine import workers as _workers
from tests.support.env import CLIENT_TIMEOUT
from tests.support.servers import serving, wait_for

pytestmark = pytest.mark.usefixtures("no_leaks")

LIMIT = 0.6
# How late a cut-off may come, on a busy two-core machine.
MARGIN = 0.75
REQUEST = b"GET /hello HTTP/1.1\r\nHost: test\r\n\r\n"


class Log(list):
    """The handlers' log lines (kept off stderr)."""


def handler_class(log, base=chttp.BaseHTTPRequestHandler, **attrs):
    """An HTTP/1.1 handler answering GET and POST with a short body."""

    class Hello(base):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            self.reply(b"hello")

        def do_POST(self):
            length = int(self.headers["Content-Length"])
            self.reply(b"got " + self.rfile.read(length))

        def reply(self, body):
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args):
            log.append(format % args)

    for name, value in attrs.items():
        setattr(Hello, name, value)
    return Hello


def make_server(handler):
    return chttp.ThreadingHTTPServer(("127.0.0.1", 0), handler)


def connect(server):
    return socket.create_connection(server.server_address, CLIENT_TIMEOUT)


def read_response(sock):
    """(status line, body) of one response, read with recv() so that
    nothing after it is taken; (b"", b"") if the server closed first."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(1)
        if not chunk:
            assert not data, data
            return b"", b""
        data += chunk
    head = data.decode("latin-1").split("\r\n")
    length = 0
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name.lower() == "content-length":
            length = int(value)
    body = b""
    while len(body) < length:
        chunk = sock.recv(length - len(body))
        assert chunk, "closed in the middle of a body"
        body += chunk
    return head[0].encode(), body


def closed_silently(sock, within):
    """Whether the server closed within *within* seconds, sending nothing."""
    ready, _, _ = select.select([sock], [], [], within)
    if not ready:
        return False
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True


def trickle(sock, data, pause=0.1, stop=None):
    """Send data a byte at a time, *pause* seconds apart, while the server
    takes it; stops early once *stop* is set."""
    for index in range(len(data)):
        if stop is not None and stop.is_set():
            return
        try:
            sock.sendall(data[index:index + 1])
        except OSError:
            return
        time.sleep(pause)


# -- a request begun but not finished in time: 408 --------------------------

STALLS = {
    "line": b"GET /hel",
    "headers": b"GET /hello HTTP/1.1\r\nHost: te",
}


@pytest.mark.parametrize("rbufsize", [-1, 0])
@pytest.mark.parametrize("stall", list(STALLS))
def test_stalled_request_is_answered_408(stall, rbufsize):
    """A client sends part of a request and goes silent: 408 at the
    deadline, then the connection is closed."""
    log = Log()
    server = make_server(handler_class(log, request_timeout=LIMIT,
                                       rbufsize=rbufsize))
    with serving(server), connect(server) as client:
        start = time.monotonic()
        client.sendall(STALLS[stall])
        status, body = read_response(client)
        took = time.monotonic() - start
        assert status == b"HTTP/1.1 408 Request Timeout", status
        assert LIMIT - 0.05 <= took < LIMIT + MARGIN, took
        assert closed_silently(client, CLIENT_TIMEOUT)
    assert any("code 408" in line for line in log), log


def test_trickled_request_is_answered_408():
    """A slowloris: the headers come a byte every 0.1 s, each byte well
    inside any per-wait timeout, and never end; 408 at the deadline."""
    log = Log()
    server = make_server(handler_class(log, request_timeout=LIMIT,
                                       timeout=0.5))
    endless = b"GET / HTTP/1.1\r\nX-Slow: " + b"a" * 100
    stop = threading.Event()
    with serving(server), connect(server) as client:
        start = time.monotonic()
        sender = threading.Thread(target=trickle,
                                  args=(client, endless, 0.1, stop))
        sender.start()
        try:
            status, _ = read_response(client)
            took = time.monotonic() - start
        finally:
            stop.set()
            sender.join(CLIENT_TIMEOUT)
        assert status == b"HTTP/1.1 408 Request Timeout", status
        assert took < LIMIT + MARGIN, took


def test_connection_that_sends_nothing_is_closed_silently():
    """No byte of a request within request_timeout: closed, no answer."""
    log = Log()
    server = make_server(handler_class(log, request_timeout=LIMIT))
    with serving(server), connect(server) as client:
        start = time.monotonic()
        assert closed_silently(client, LIMIT + MARGIN)
        assert time.monotonic() - start >= LIMIT - 0.05
    assert log == []


def test_request_in_time_is_served_and_its_body_is_not_cut():
    """A request whose head comes in time is served, even when its body
    then trickles in past request_timeout (the handler's own reads are not
    bound by it); the next request on the connection must come in time."""
    log = Log()
    server = make_server(handler_class(log, request_timeout=LIMIT))
    body = b"0123456789"
    with serving(server), connect(server) as client:
        client.sendall(b"POST /form HTTP/1.1\r\nHost: test\r\n"
                       b"Content-Length: %d\r\n\r\n" % len(body))
        trickle(client, body, pause=LIMIT / 4)      # 2.5 x LIMIT in all
        assert read_response(client) == (b"HTTP/1.1 200 OK", b"got " + body)
        client.sendall(b"GET /")
        status, _ = read_response(client)
        assert status == b"HTTP/1.1 408 Request Timeout"


# -- keep-alive connections ---------------------------------------------------

@pytest.mark.parametrize("rbufsize", [-1, 0])
def test_idle_keepalive_connection_is_closed_silently(rbufsize):
    """After a request, keepalive_timeout without a new one: closed, with
    no 408 (the client started nothing)."""
    log = Log()
    server = make_server(handler_class(log, keepalive_timeout=LIMIT,
                                       request_timeout=5.0,
                                       rbufsize=rbufsize))
    with serving(server), connect(server) as client:
        client.sendall(REQUEST)
        assert read_response(client) == (b"HTTP/1.1 200 OK", b"hello")
        idle_since = time.monotonic()
        assert closed_silently(client, LIMIT + MARGIN)
        assert time.monotonic() - idle_since >= LIMIT - 0.05
    assert not any("408" in line for line in log), log


def test_keepalive_client_that_comes_back_in_time_is_served():
    """Requests each sent within keepalive_timeout of the last answer are
    all served on the one connection, however long the connection lives;
    then it idles out."""
    log = Log()
    server = make_server(handler_class(log, keepalive_timeout=LIMIT,
                                       request_timeout=LIMIT))
    with serving(server), connect(server) as client:
        start = time.monotonic()
        for _ in range(4):
            client.sendall(REQUEST)
            assert read_response(client) == (b"HTTP/1.1 200 OK", b"hello")
            time.sleep(LIMIT / 2)
        assert time.monotonic() - start > 1.5 * LIMIT
        assert closed_silently(client, LIMIT + MARGIN)


def test_pipelined_requests_are_served():
    """Requests already buffered count as begun: all are answered."""
    log = Log()
    server = make_server(handler_class(log, keepalive_timeout=LIMIT,
                                       request_timeout=LIMIT))
    with serving(server), connect(server) as client:
        client.sendall(REQUEST * 3)
        for _ in range(3):
            assert read_response(client) == (b"HTTP/1.1 200 OK", b"hello")
        assert closed_silently(client, LIMIT + MARGIN)


def test_later_request_stalling_is_answered_408():
    """On a keep-alive connection, a later request's deadline counts from
    its first byte: begun and stalled, it gets 408."""
    log = Log()
    server = make_server(handler_class(log, keepalive_timeout=5.0,
                                       request_timeout=LIMIT))
    with serving(server), connect(server) as client:
        client.sendall(REQUEST)
        assert read_response(client)[0] == b"HTTP/1.1 200 OK"
        time.sleep(LIMIT)           # idle, within keepalive_timeout
        begun = time.monotonic()
        client.sendall(b"GET /again HTTP/1.1\r\n")
        status, _ = read_response(client)
        took = time.monotonic() - begun
        assert status == b"HTTP/1.1 408 Request Timeout"
        assert LIMIT - 0.05 <= took < LIMIT + MARGIN, took


# -- many slowloris clients ---------------------------------------------------

def test_slowloris_clients_do_not_stop_a_normal_one(fds_for_connections):
    """300 clients each send half a request and stall; a normal client is
    answered at once, and every stalled one gets 408 at the deadline."""
    count = 300
    limit = 3.0
    fds_for_connections(count)
    log = Log()
    server = make_server(handler_class(log, request_timeout=limit))
    slow = []
    # Closed before the server is (serving's exit joins the threads).
    with serving(server), contextlib.ExitStack() as closing:
        start = time.monotonic()
        for _ in range(count):
            client = connect(server)
            slow.append(client)
            closing.callback(client.close)
            client.sendall(b"GET / HTTP/1.1\r\nHost:")
        with connect(server) as client:
            asked = time.monotonic()
            client.sendall(REQUEST)
            assert read_response(client) == (b"HTTP/1.1 200 OK",
                                             b"hello")
            assert time.monotonic() - asked < 2.0
        assert time.monotonic() - start < limit, "too slow to test"
        for client in slow:
            status, _ = read_response(client)
            assert status == b"HTTP/1.1 408 Request Timeout"
            assert closed_silently(client, CLIENT_TIMEOUT)
        assert time.monotonic() - start < limit + 3 * MARGIN
        workers = _workers.workers_of(server)
        assert wait_for(lambda: not any(workers.values()))


# -- unchanged: http.server's own answers, with the deadlines set ------------

ANSWERS = {
    b"GET /" + b"a" * 65536 + b" HTTP/1.1\r\n\r\n": b"414",
    b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 101 + b"\r\n": b"431",
    b"BREW / HTTP/1.1\r\nHost: test\r\n\r\n": b"501",
    b"GET / HTTP/1.0\r\n\r\n": b"200",
}


@pytest.mark.parametrize("request_bytes", list(ANSWERS), ids=[
    "414", "431", "501", "200"])
def test_http_server_answers_are_kept(request_bytes):
    """With the deadlines set, each request gets what http.server's own
    handler answers (status and whether the connection closes)."""
    results = []
    for base, attrs in [(http.server.BaseHTTPRequestHandler, {}),
                        (chttp.BaseHTTPRequestHandler,
                         {"request_timeout": 5.0,
                          "keepalive_timeout": 5.0})]:
        server = make_server(handler_class(Log(), base, **attrs))
        with serving(server), connect(server) as client:
            client.sendall(request_bytes)
            status, _ = read_response(client)
            results.append((status.split(b" ")[:2],
                            closed_silently(client, 2.0)))
    assert results[0] == results[1]
    assert results[0][0][1] == ANSWERS[request_bytes]
