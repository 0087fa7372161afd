"""The PROXY protocol on receive (``proxy_protocol``), on either engine.

A client here plays the load balancer: it connects, sends a v1 or v2
header naming some client, then the request.  The handler reports what the
server made of it.  Headers are built by hand from the spec (HAProxy's
proxy-protocol.txt); tests with a real HAProxy are in test_haproxy.py.
"""

import errno
import http.server
import logging
import os
import pickle
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import csockserver
import csockserver.http as chttp
from csockserver import _proxy
from tests.support.clients import recv_until_eof, stream_client
from tests.support.env import (CLIENT_TIMEOUT, HAVE_FORK, HAVE_UNIX,
                               JOIN_TIMEOUT, needs_fork, needs_unix)
from tests.support.leaks import LeakCheck
from tests.support.servers import handle_request, serving, wait_for

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def v2_header(command=0x1, family=0x1, transport=0x1, addresses=b"",
              tlvs=b"", version=0x2):
    body = addresses + tlvs
    return (SIGNATURE + bytes([version << 4 | command,
                               family << 4 | transport])
            + struct.pack("!H", len(body)) + body)


def v2_inet(source, sport, destination, dport, **kwargs):
    addresses = (socket.inet_aton(source) + socket.inet_aton(destination)
                 + struct.pack("!HH", sport, dport))
    return v2_header(family=0x1, addresses=addresses, **kwargs)


def v2_inet6(source, sport, destination, dport, **kwargs):
    addresses = (socket.inet_pton(socket.AF_INET6, source)
                 + socket.inet_pton(socket.AF_INET6, destination)
                 + struct.pack("!HH", sport, dport))
    return v2_header(family=0x2, addresses=addresses, **kwargs)


def tlv(kind, value):
    return bytes([kind]) + struct.pack("!H", len(value)) + value


class Report(csockserver.StreamRequestHandler):
    """Answers one line with what the server says about the connection."""

    def handle(self):
        line = self.rfile.readline()
        self.server.seen.append((self.client_address,
                                 csockserver.proxy_info(self.client_address),
                                 line))
        self.wfile.write(b"ok " + line)


def make_server(base=csockserver.ThreadingTCPServer, address=None,
                handler=Report, **attrs):
    attrs.setdefault("proxy_protocol", "any")
    attrs.setdefault("proxy_protocol_timeout", 1.0)
    cls = type("ProxiedServer", (base,), attrs)
    if address is None:
        address = ("127.0.0.1", 0)
    server = cls(address, handler)
    server.seen = []
    return server


def exchange(server, data, pieces=None):
    """Send *data* (optionally in *pieces*), return all the server said."""
    with stream_client(server) as client:
        if client.family != socket.AF_UNIX:
            # Each piece in a segment of its own.
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            for piece in pieces or [data]:
                client.sendall(piece)
                if pieces:
                    time.sleep(0.01)
            client.shutdown(socket.SHUT_WR)
            return recv_until_eof(client)
        except (ConnectionResetError, BrokenPipeError):
            return b""      # refused: closed with our bytes unread
        except OSError as exc:
            if exc.errno != errno.ENOTCONN:
                raise
            return b""


# -- what the handler sees --------------------------------------------------

@pytest.mark.parametrize("header, address, destination", [
    (b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 80\r\n",
     ("192.0.2.7", 40000), ("198.51.100.1", 80)),
    (b"PROXY TCP6 2001:DB8:0:0::7 2001:db8::1 65535 443\r\n",
     ("2001:db8::7", 65535, 0, 0), ("2001:db8::1", 443, 0, 0)),
    (v2_inet("192.0.2.9", 1234, "198.51.100.2", 8080),
     ("192.0.2.9", 1234), ("198.51.100.2", 8080)),
    (v2_inet6("2001:db8::9", 4321, "::1", 8443),
     ("2001:db8::9", 4321, 0, 0), ("::1", 8443, 0, 0)),
], ids=["v1-tcp4", "v1-tcp6", "v2-inet", "v2-inet6"])
def test_client_address_is_the_one_the_header_names(header, address,
                                                    destination):
    with make_server() as server, serving(server):
        assert exchange(server, header + b"hello\n") == b"ok hello\n"
    [(client_address, info, line)] = server.seen
    assert client_address == address
    assert client_address[0] == address[0]    # what http.server logs
    assert info.source == address and info.destination == destination
    assert info.version == (1 if header.startswith(b"PROXY") else 2)
    assert info.command == "PROXY"
    assert info.proxy_address[0] == "127.0.0.1"
    assert line == b"hello\n"


@pytest.mark.parametrize("header", [
    b"PROXY UNKNOWN\r\n",
    b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n",
    v2_header(command=0x0, family=0x0, transport=0x0),         # LOCAL
    v2_inet("10.1.1.1", 1, "10.2.2.2", 2, command=0x0),        # LOCAL
    v2_header(command=0x1, family=0x0, transport=0x0),         # UNSPEC
], ids=["v1-unknown", "v1-unknown-args", "v2-local", "v2-local-inet",
        "v2-unspec"])
def test_headers_without_a_client_keep_the_proxy_address(header):
    with make_server() as server, serving(server):
        with stream_client(server) as client:
            client.sendall(header + b"check\n")
            assert client.recv(100) == b"ok check\n"
            proxy_side = client.getsockname()
    [(client_address, info, _)] = server.seen
    assert client_address == proxy_side
    assert info.proxy_address == proxy_side
    assert info.source is None
    if header.startswith(SIGNATURE) and header[12] & 0xF == 0:
        assert info.command == "LOCAL"


def test_v2_tlvs_are_kept():
    tlvs = (tlv(0x02, b"example.com") + tlv(0x05, b"unique-id")
            + tlv(0x04, b"\0" * 700))   # NOOP padding: a header > 256 bytes
    header = v2_inet("192.0.2.1", 5, "192.0.2.2", 6, tlvs=tlvs)
    with make_server() as server, serving(server):
        assert exchange(server, header + b"x\n") == b"ok x\n"
    info = server.seen[0][1]
    assert info.tlvs == {0x02: b"example.com", 0x05: b"unique-id",
                         0x04: b"\0" * 700}


@needs_unix
def test_v2_unix_addresses_and_a_unix_stream_server(unix_path):
    addresses = (b"/run/client.sock".ljust(108, b"\0")
                 + b"\0abstract".ljust(108, b"\0"))
    header = v2_header(family=0x3, transport=0x1, addresses=addresses)
    with make_server(csockserver.ThreadingUnixStreamServer,
                     address=unix_path()) as server, serving(server):
        assert exchange(server, header + b"u\n") == b"ok u\n"
    client_address, info, _ = server.seen[0]
    assert client_address == "/run/client.sock"
    assert info.destination == b"\0abstract"


@pytest.mark.parametrize("mode", ["v1", "v2", "any"])
def test_bytes_after_the_header_are_the_requests(mode):
    """Whether they come with the header, later, or in one-byte pieces."""
    header = (b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\n" if mode != "v2"
              else v2_inet("192.0.2.1", 1, "192.0.2.2", 2))
    with make_server(proxy_protocol=mode) as server, serving(server):
        assert exchange(server, header + b"same segment\n") \
            == b"ok same segment\n"
        assert exchange(server, None, pieces=[header, b"later\n"]) \
            == b"ok later\n"
        data = header + b"trickled\n"
        assert exchange(server, None, pieces=[data[i:i + 1]
                                              for i in range(len(data))]) \
            == b"ok trickled\n"
    assert [line for _, _, line in server.seen] == [
        b"same segment\n", b"later\n", b"trickled\n"]
    assert all(address == ("192.0.2.1", 1) for address, _, _ in server.seen)


# -- where the header is read, for each dispatch -----------------------------

def dispatch_bases():
    bases = [csockserver.TCPServer, csockserver.ThreadingTCPServer]
    if HAVE_FORK:
        bases.append(csockserver.ForkingTCPServer)
    return bases


class Verifying:
    """verify_request and shutdown_request overridden, to watch the order."""

    def verify_request(self, request, client_address):
        self.verified.append(client_address)
        return True

    def shutdown_request(self, request):
        self.shut_down.append(True)
        super().shutdown_request(request)


@pytest.mark.parametrize("base", dispatch_bases(),
                         ids=lambda base: base.__name__)
@pytest.mark.parametrize("verifying", [False, True],
                         ids=["stock-verify", "own-verify"])
def test_every_dispatch_sees_the_real_client(base, verifying):
    bases = (Verifying, base) if verifying else (base,)
    cls = type("Server", bases, {"proxy_protocol": "v1",
                                 "proxy_protocol_timeout": 1.0,
                                 "block_on_close": True})
    server = cls(("127.0.0.1", 0), Report)
    server.seen, server.verified, server.shut_down = [], [], []
    with server, serving(server):
        for n in range(3):
            header = b"PROXY TCP4 192.0.2.%d 192.0.2.99 %d 80\r\n" % (n, n)
            assert exchange(server, header + b"hi\n") == b"ok hi\n"
        # A refused connection: the handler never runs.
        assert exchange(server, b"NOT A HEADER\r\nhi\n") == b""
    if verifying:
        # verify_request saw the client the header named, so the header
        # was read before it; it never saw the refused connection.
        assert server.verified == [("192.0.2.%d" % n, n) for n in range(3)]
        if base is not csockserver.ForkingTCPServer:
            assert len(server.shut_down) == 4
    if base is not csockserver.ForkingTCPServer:
        assert [address for address, _, _ in server.seen] == [
            ("192.0.2.%d" % n, n) for n in range(3)]


def test_handle_request_reads_the_header_too():
    with make_server(csockserver.TCPServer) as server:
        with stream_client(server) as client:
            client.sendall(b"PROXY TCP4 192.0.2.5 192.0.2.6 7 8\r\none\n")
            handle_request(server)
            assert client.recv(100) == b"ok one\n"
    assert server.seen[0][0] == ("192.0.2.5", 7)


def test_http_server_logs_the_real_client():
    from csockserver import http

    class Handler(http.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format, *args):
            self.server.logged.append(self.address_string())

    class Server(http.HTTPServer):
        proxy_protocol = "v2"

    with Server(("127.0.0.1", 0), Handler) as server, serving(server):
        server.logged = []
        reply = exchange(server, v2_inet("203.0.113.4", 999, "127.0.0.1", 80)
                         + b"GET / HTTP/1.0\r\n\r\n")
    assert reply.startswith(b"HTTP/1.0 200")
    assert server.logged == ["203.0.113.4"]


# -- a proxy's own checks (LOCAL) that it drops ------------------------------

# HAProxy's check-send-proxy health check: this header, then a reset.
LOCAL = v2_header(command=0x0, family=0x0, transport=0x0)
PROXIED = v2_inet("192.0.2.50", 5050, "127.0.0.1", 80)


class LineHandler(csockserver.StreamRequestHandler):
    """A plain handler: reads a line, answers it."""

    def handle(self):
        line = self.rfile.readline()
        if line:
            self.wfile.write(b"ok " + line)


class _Hello:
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format, *args):
        pass


class StdlibHTTPHandler(_Hello, http.server.BaseHTTPRequestHandler):
    pass


class CsockHTTPHandler(_Hello, chttp.BaseHTTPRequestHandler):
    pass


HANDLERS = {"stream": LineHandler, "http.server": StdlibHTTPHandler,
            "csockserver.http": CsockHTTPHandler}
REQUESTS = {LineHandler: (b"hi\n", b"ok hi\n"),
            StdlibHTTPHandler: (b"GET / HTTP/1.0\r\n\r\n", b"HTTP/1.0 200"),
            CsockHTTPHandler: (b"GET / HTTP/1.0\r\n\r\n", b"HTTP/1.0 200")}


class Noting:
    """Notes each handle_error call and each request's end in a file, which
    a forking or prefork server's children write to as well."""

    notes = None

    def note(self, what):
        fd = os.open(self.notes, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, what.encode() + b"\n")
        finally:
            os.close(fd)

    def handle_error(self, request, client_address):
        self.note("error " + type(sys.exc_info()[1]).__name__)
        super().handle_error(request, client_address)

    def shutdown_request(self, request):
        super().shutdown_request(request)
        self.note("done")

    def read_notes(self):
        try:
            with open(self.notes) as notes:
                return notes.read().split("\n")[:-1]
        except FileNotFoundError:
            return []

    def wait_until_serving(self):
        """Until a prefork server's worker runs (nothing else to wait for)."""
        if isinstance(self, csockserver.PreforkMixIn):
            assert wait_for(lambda: len(self.worker_pids) == self.processes)

    def wait_for_done(self, count):
        assert wait_for(lambda: self.read_notes().count("done") >= count), \
            self.read_notes()
        return [note for note in self.read_notes() if note != "done"]


def dispatches():
    found = {"in-place": (csockserver.TCPServer,),
             "thread": (csockserver.ThreadingTCPServer,),
             "thread-own-verify": (Verifying, csockserver.ThreadingTCPServer)}
    if HAVE_FORK:
        found["fork"] = (csockserver.ForkingTCPServer,)
        found["fork-own-verify"] = (Verifying, csockserver.ForkingTCPServer)
        found["prefork"] = (type("Prefork", (csockserver.PreforkTCPServer,),
                                 {"processes": 1}),)
    return found


DISPATCHES = dispatches()


def noting_server(tmp_path, dispatch, handler, **attrs):
    attrs = dict({"proxy_protocol": "v2", "proxy_protocol_timeout": 1.0,
                  "notes": str(tmp_path / "notes")}, **attrs)
    cls = type("Server", (Noting,) + DISPATCHES[dispatch], attrs)
    server = cls(("127.0.0.1", 0), handler)
    server.verified, server.shut_down = [], []
    return server


# hang_up()'s client.  It runs in a process of its own: a child that a
# forking server forked meanwhile would hold a copy of a client socket of
# this process, and its close would then send nothing.  (Start it only
# while the server forks nothing: a child forked meanwhile would hold
# subprocess's pipe open, and subprocess.run() would wait on it.)
HANG_UP = """
import socket, struct, sys
host, port, data, reset = sys.argv[1:]
with socket.create_connection((host, int(port)), 5.0) as client:
    client.sendall(bytes.fromhex(data))
    if reset == "reset":
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                          struct.pack("ii", 1, 0))
"""


def hang_up(server, data, reset):
    """Connect, send *data*, and close: with a reset (SO_LINGER 0), as
    HAProxy ends its checks, or with a FIN."""
    host, port = server.server_address[:2]
    subprocess.run([sys.executable, "-I", "-S", "-c", HANG_UP, host,
                    str(port), data.hex(), "reset" if reset else "close"],
                   check=True, timeout=JOIN_TIMEOUT)


@pytest.mark.parametrize("dispatch", sorted(DISPATCHES))
@pytest.mark.parametrize("handler", sorted(HANDLERS))
def test_a_dropped_local_check_ends_quietly(tmp_path, capfd, dispatch,
                                            handler):
    handler = HANDLERS[handler]
    with noting_server(tmp_path, dispatch, handler) as server, \
            serving(server):
        server.wait_until_serving()
        for done, reset in enumerate((True, False, True, False), 1):
            hang_up(server, LOCAL, reset)
            server.wait_for_done(done)
        request, reply = REQUESTS[handler]
        assert exchange(server, LOCAL + request).startswith(reply)
        errors = server.wait_for_done(5)
    assert errors == []
    assert "Traceback" not in capfd.readouterr().err


def test_a_dropped_local_check_is_a_debug_record(tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="csockserver")
    with noting_server(tmp_path, "thread", LineHandler) as server, \
            serving(server):
        hang_up(server, LOCAL, reset=True)
        assert server.wait_for_done(1) == []
    [record] = [r for r in caplog.records if r.name == "csockserver"]
    assert record.levelno == logging.DEBUG
    assert "PROXY LOCAL" in record.getMessage()


@pytest.mark.parametrize("dispatch", sorted(DISPATCHES))
@pytest.mark.parametrize("handler, reported", [
    ("stream", True), ("http.server", True),
    # csockserver.http's own rule: nothing of a request had come.
    ("csockserver.http", False)])
def test_a_reset_of_a_proxied_client_is_reported_as_by_socketserver(
        tmp_path, dispatch, handler, reported):
    with noting_server(tmp_path, dispatch, HANDLERS[handler]) as server, \
            serving(server):
        server.wait_until_serving()
        hang_up(server, PROXIED, reset=True)
        errors = server.wait_for_done(1)
    assert errors == (["error ConnectionResetError"] if reported else [])


@pytest.mark.parametrize("dispatch", ["in-place", "thread"])
def test_a_reset_without_the_proxy_protocol_is_reported(tmp_path, dispatch):
    with noting_server(tmp_path, dispatch, LineHandler,
                       proxy_protocol=None) as server, serving(server):
        hang_up(server, b"", reset=True)
        assert server.wait_for_done(1) == ["error ConnectionResetError"]


class Failing(csockserver.StreamRequestHandler):
    """Fails on a connection whose peer is still there."""

    def handle(self):
        if self.rfile.readline() == b"reset\n":
            raise ConnectionResetError("another socket's")
        raise ValueError("a bug")


@pytest.mark.parametrize("line, error", [
    (b"bug\n", "ValueError"), (b"reset\n", "ConnectionResetError")])
def test_errors_of_a_live_local_connection_are_reported(tmp_path, line,
                                                        error):
    with noting_server(tmp_path, "thread", Failing) as server, \
            serving(server):
        assert exchange(server, LOCAL + line) == b""
        assert server.wait_for_done(1) == ["error " + error]


# -- what is refused, and how -------------------------------------------------

BAD_HEADERS = {
    "not-proxy": b"GET / HTTP/1.0\r\n\r\n",
    "v1-lowercase": b"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
    "v1-bad-ip": b"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",
    "v1-v6-as-v4": b"PROXY TCP4 ::1 ::2 1 2\r\n",
    "v1-bad-port": b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
    "v1-leading-zero": b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
    "v1-missing-field": b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
    "v1-double-space": b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
    "v1-bad-protocol": b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
    "v1-too-long": b"PROXY TCP4 " + b"1" * 120 + b"\r\n",
    "v1-not-ascii": b"PROXY TCP4 1.2.3.4 5.6.7.\xff 1 2\r\n",
    "v2-version-1": v2_inet("1.2.3.4", 1, "5.6.7.8", 2, version=0x1),
    "v2-command-2": v2_inet("1.2.3.4", 1, "5.6.7.8", 2, command=0x2),
    "v2-family-4": v2_header(family=0x4, addresses=b"\0" * 12),
    "v2-transport-3": v2_header(transport=0x3, addresses=b"\0" * 12),
    "v2-short-block": v2_header(family=0x1, addresses=b"\0" * 11),
    "v2-bad-tlv": v2_inet("1.2.3.4", 1, "5.6.7.8", 2, tlvs=b"\x02\x00\x09ab"),
    "v2-bad-signature": b"\r\n\r\n\x00\r\nQUIT\r" + b"\x21\x11\x00\x00",
}


@pytest.mark.parametrize("name", sorted(BAD_HEADERS))
def test_bad_headers_close_the_connection_and_serving_goes_on(name):
    leaks = LeakCheck()
    with make_server() as server, serving(server):
        assert exchange(server, BAD_HEADERS[name] + b"hi\n") == b""
        good = b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\nnext\n"
        assert exchange(server, good) == b"ok next\n"
    leaks.check()
    assert [line for _, _, line in server.seen] == [b"next\n"]


@pytest.mark.parametrize("mode, header", [
    ("v1", v2_inet("1.2.3.4", 1, "5.6.7.8", 2)),
    ("v2", b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"),
])
def test_only_the_configured_version_is_taken(mode, header):
    with make_server(proxy_protocol=mode) as server, serving(server):
        assert exchange(server, header + b"hi\n") == b""
    assert server.seen == []


def test_a_connection_closed_mid_header_is_dropped():
    with make_server() as server, serving(server):
        assert exchange(server, b"PROXY TCP4 1.2.3.4") == b""
        assert exchange(server, SIGNATURE[:9]) == b""
        assert exchange(server, v2_inet("1.2.3.4", 1, "5.6.7.8", 2)[:20]) \
            == b""
        assert exchange(server, b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\nx\n") \
            == b"ok x\n"
    assert len(server.seen) == 1


def test_a_silent_connection_is_closed_after_the_timeout():
    leaks = LeakCheck()
    with make_server(proxy_protocol_timeout=0.3) as server, serving(server):
        with stream_client(server) as silent:
            started = time.monotonic()
            assert silent.recv(10) == b""
            waited = time.monotonic() - started
        assert 0.25 <= waited < 0.3 + 2.0
    leaks.check()
    assert server.seen == []


def test_silent_connections_do_not_hold_up_a_threading_server():
    """The header is read on the request's worker thread, so clients that
    connect and send nothing do not delay the others."""
    with make_server(proxy_protocol_timeout=2.0) as server, serving(server):
        silent = [stream_client(server) for _ in range(5)]
        try:
            started = time.monotonic()
            good = b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\nprompt\n"
            assert exchange(server, good) == b"ok prompt\n"
            assert time.monotonic() - started < 1.5
        finally:
            for sock in silent:
                sock.close()


def test_a_slow_header_on_a_plain_server_delays_the_next_client():
    """The documented cost of a TCPServer (one request at a time): the
    header wait is part of the request."""
    with make_server(csockserver.TCPServer,
                     proxy_protocol_timeout=0.5) as server, serving(server):
        with stream_client(server):
            time.sleep(0.05)  # let the server take the silent one first
            started = time.monotonic()
            good = b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\nlater\n"
            assert exchange(server, good) == b"ok later\n"
            assert time.monotonic() - started >= 0.3


@pytest.mark.parametrize("allowed, served", [
    (None, True),
    (["127.0.0.0/8"], True),
    ("127.0.0.1", True),
    (("10.0.0.0/8", "192.168.0.0/16"), False),
    (["::1/128"], False),
])
def test_proxy_protocol_from(allowed, served):
    with make_server(proxy_protocol_from=allowed) as server, serving(server):
        reply = exchange(server, b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\nx\n")
    assert reply == (b"ok x\n" if served else b"")
    assert len(server.seen) == (1 if served else 0)


@pytest.mark.parametrize("attrs, message", [
    ({"proxy_protocol": "v3"}, "proxy_protocol must be"),
    ({"proxy_protocol": True}, "proxy_protocol must be"),
    ({"proxy_protocol_from": ["not a network"]}, "does not appear"),
])
def test_settings_are_checked_when_serving_starts(attrs, message):
    with make_server(**attrs) as server:
        with pytest.raises(ValueError, match=message):
            handle_request(server)


def test_datagram_servers_refuse_the_setting():
    server = make_server(csockserver.UDPServer)
    with server, pytest.raises(ValueError, match="stream servers"):
        handle_request(server)


def test_off_by_default_a_header_is_just_data():
    class Server(csockserver.ThreadingTCPServer):
        pass
    assert Server.proxy_protocol is None
    with Server(("127.0.0.1", 0), Report) as server, serving(server):
        server.seen = []
        reply = exchange(server, b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n")
    assert reply == b"ok PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"
    client_address, info, _ = server.seen[0]
    assert info is None and type(client_address) is tuple


@needs_fork
def test_forking_server_child_reads_the_header():
    class Handler(csockserver.StreamRequestHandler):
        def handle(self):
            self.rfile.readline()
            self.wfile.write(repr(self.client_address).encode())

    with make_server(csockserver.ForkingTCPServer,
                     handler=Handler) as server, serving(server):
        reply = exchange(server, b"PROXY TCP4 192.0.2.8 192.0.2.9 11 12\r\n"
                         b"fork\n")
        assert exchange(server, b"junk\r\n") == b""
    assert reply == b"('192.0.2.8', 11)"


# -- the address object and the parser ---------------------------------------

def test_the_client_address_is_a_plain_tuple_to_its_users():
    address = _proxy.apply(b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\n",
                           ("127.0.0.1", 5000))
    assert isinstance(address, tuple) and address == ("192.0.2.1", 1)
    assert repr(address) == "('192.0.2.1', 1)"
    host, port = address
    assert (host, port) == ("192.0.2.1", 1)
    copy = pickle.loads(pickle.dumps(address))
    assert copy == address and csockserver.proxy_info(copy) == \
        csockserver.proxy_info(address)
    assert csockserver.proxy_info(("192.0.2.1", 1)) is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.sampled_from([1, 2, 3]))
def test_any_bytes_frame_or_fail_cleanly(data, versions):
    """header_length and apply raise nothing but ProxyHeaderError."""
    for start in (data, b"PROXY " + data, SIGNATURE + data):
        try:
            length = _proxy.header_length(start, versions)
        except _proxy.ProxyHeaderError:
            continue
        if length and length <= len(start):
            try:
                _proxy.apply(bytes(start[:length]), ("127.0.0.1", 1))
            except _proxy.ProxyHeaderError:
                pass


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=120), st.sampled_from(["v1", "v2", "any"]))
def test_random_input_never_reaches_the_handler_unparsed(data, mode):
    """Over a real connection: the server either serves the request with a
    header it could parse, or closes; it never crashes or hangs."""
    if data.startswith((b"PROXY ", SIGNATURE[:1])):
        return  # may be a valid header: covered above
    server = _fuzz_server_for(mode)
    assert exchange(server, data + b"\n") == b""


_fuzz_servers = {}


def _fuzz_server_for(mode):
    """One server per mode for the whole fuzz run (closed at exit)."""
    if mode not in _fuzz_servers:
        server = make_server(proxy_protocol=mode, proxy_protocol_timeout=0.5)
        runner = serving(server).start()
        _fuzz_servers[mode] = (server, runner)
    return _fuzz_servers[mode][0]


@pytest.fixture(autouse=True, scope="module")
def _close_fuzz_servers():
    yield
    for server, runner in _fuzz_servers.values():
        runner.stop()
    _fuzz_servers.clear()


def test_threads_and_fds_come_back_after_many_refusals():
    leaks = LeakCheck()
    with make_server() as server, serving(server):
        clients = []
        for n in range(50):
            clients.append(threading.Thread(
                target=exchange, args=(server, b"bad %d\r\n" % n)))
            clients[-1].start()
        for thread in clients:
            thread.join(CLIENT_TIMEOUT)
    leaks.check()
    assert server.seen == []


def test_unix_peers_are_always_allowed():
    if not HAVE_UNIX:
        pytest.skip("needs AF_UNIX")

    class Server:
        proxy_protocol_from = ["10.0.0.0/8"]
    assert _proxy.allowed(Server(), "")
    assert not _proxy.allowed(Server(), ("127.0.0.1", 1))
    assert _proxy.allowed(Server(), ("::ffff:10.1.2.3", 1, 0, 0))
