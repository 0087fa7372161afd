"""Every public class used as typed user code uses it.

This module is both a test and a type check: it must pass
``mypy --strict`` against csockserver's stubs (``tools/check_typing.py``
runs that), so each server, mix-in and handler appears here the way an
application with annotations would write it: handlers subclassed with
``setup``/``handle``/``finish``, servers as context managers, served by
``serve_forever`` in a thread or by ``handle_request``.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import http.client
import http.server
import importlib
import os
import pathlib
import socket
import socketserver
import sys
import threading
from typing import Any, Callable, ContextManager, Protocol

import pytest

import csockserver
import csockserver.http as chttp

# The suite's helpers (tests.support) are untyped, and naming them in an
# import would make ``mypy --strict`` check them as well: take them at run
# time and state here the types this module relies on.
_env: Any = importlib.import_module("tests.support.env")
_servers: Any = importlib.import_module("tests.support.servers")
_clients: Any = importlib.import_module("tests.support.clients")
CLIENT_TIMEOUT: float = _env.CLIENT_TIMEOUT
JOIN_TIMEOUT: float = _env.JOIN_TIMEOUT
serving: Callable[[csockserver.BaseServer], ContextManager[object]] = (
    _servers.serving)
wait_for: Callable[[Callable[[], object]], object] = _servers.wait_for
stream_client: Callable[[csockserver.TCPServer], socket.socket] = (
    _clients.stream_client)
recv_until_eof: Callable[[socket.socket], bytes] = _clients.recv_until_eof
recv_line: Callable[[socket.socket], bytes] = _clients.recv_line

UnixPath = Callable[..., str]   # the unix_path fixture: a path factory

HAVE_FORK = hasattr(os, "fork")
needs_fork = pytest.mark.skipif(not HAVE_FORK, reason="needs os.fork")


class LeakCheck(Protocol):
    """The ``leak_check`` fixture (tests/conftest.py), as far as this
    module uses it."""

    def check(self, timeout: float = ...) -> None: ...


# -- handlers -----------------------------------------------------------------

class UpperEcho(csockserver.StreamRequestHandler):
    """Greets with its pid, echoes lines upper-cased, says bye."""

    def setup(self) -> None:
        super().setup()
        self.wfile.write(b"hi %d\n" % os.getpid())

    def handle(self) -> None:
        for line in self.rfile:
            self.wfile.write(line.upper())

    def finish(self) -> None:
        self.wfile.write(b"bye\n")
        super().finish()


class UpperDatagram(csockserver.DatagramRequestHandler):
    """Answers a datagram with its pid and the datagram upper-cased."""

    def setup(self) -> None:
        super().setup()
        self.wfile.write(b"%d " % os.getpid())

    def handle(self) -> None:
        packet, sock = self.request
        data: bytes = self.rfile.read()
        if data == packet and sock is self.socket:
            self.wfile.write(data.upper())

    def finish(self) -> None:
        self.wfile.write(b"!")
        super().finish()


class DocsStyleStream(csockserver.BaseRequestHandler):
    """The socketserver documentation's TCP handler: the raw socket."""

    def handle(self) -> None:
        data = self.request.recv(1024).strip()
        self.request.sendall(data.upper())


class DocsStyleDatagram(csockserver.BaseRequestHandler):
    """The socketserver documentation's UDP handler: ``(data, socket)``."""

    def handle(self) -> None:
        data = self.request[0].strip()
        sock = self.request[1]
        sock.sendto(data.upper(), self.client_address)


class OptionsReport(csockserver.StreamRequestHandler):
    """Reports what its stream attributes did to the connection."""

    def handle(self) -> None:
        conn: socket.socket = self.connection
        nodelay = conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        self.wfile.write(b"%d %r %d\n" % (
            nodelay, conn.gettimeout(),
            isinstance(self.wfile, csockserver._SocketWriter)))


class SocketOptions(OptionsReport):
    timeout = CLIENT_TIMEOUT
    read_deadline = 2 * CLIENT_TIMEOUT
    disable_nagle_algorithm = False
    wbufsize = 4096
    rbufsize = 1024


class StockOptions(OptionsReport):
    """csockserver's defaults: TCP_NODELAY, no timeout, a _SocketWriter."""


# -- clients ------------------------------------------------------------------

def talk(server: csockserver.TCPServer, *lines: bytes) -> list[bytes]:
    """Send lines, close our side, return every line the server sent."""
    with stream_client(server) as client:
        for line in lines:
            client.sendall(line)
        # A forked child holds a copy of this socket: only shutdown()
        # gives its handler EOF.
        client.shutdown(socket.SHUT_WR)
        return recv_until_eof(client).splitlines()


def ask_datagram(server: csockserver.UDPServer, payload: bytes,
                 unix_path: UnixPath) -> bytes:
    """Send one datagram and return the reply."""
    with socket.socket(server.address_family, socket.SOCK_DGRAM) as client:
        client.settimeout(CLIENT_TIMEOUT)
        if server.address_family == socket.AF_UNIX:
            client.bind(unix_path("client"))  # so that a reply can come back
        client.sendto(payload, server.server_address)
        reply, _ = client.recvfrom(65536)
        return reply


def in_child(server: csockserver.BaseServer) -> bool:
    """Whether the server's handlers run in another process."""
    if isinstance(server, csockserver.PreforkMixIn):
        return True
    return HAVE_FORK and isinstance(server, csockserver.ForkingMixIn)


# -- every server family, served ----------------------------------------------

class PreforkTCP(csockserver.PreforkTCPServer):
    processes = 1


class PreforkThreadingTCP(csockserver.PreforkThreadingTCPServer):
    processes = 1
    max_threads = 8
    # The lifecycle's settings, as a user sets them (typed in the stubs).
    graceful_timeout = 10.0
    max_requests = 100000
    max_requests_jitter = 100
    reuse_port_per_worker = True


class PreforkUDP(csockserver.PreforkUDPServer):
    processes = 1


INET_STREAM: list[type[csockserver.TCPServer]] = [
    csockserver.TCPServer, csockserver.ThreadingTCPServer]
INET_DATAGRAM: list[type[csockserver.UDPServer]] = [
    csockserver.UDPServer, csockserver.ThreadingUDPServer]
UNIX_STREAM: list[type[csockserver.UnixStreamServer]] = [
    csockserver.UnixStreamServer, csockserver.ThreadingUnixStreamServer]
UNIX_DATAGRAM: list[type[csockserver.UnixDatagramServer]] = [
    csockserver.UnixDatagramServer,
    csockserver.ThreadingUnixDatagramServer]
if HAVE_FORK:
    INET_STREAM += [csockserver.ForkingTCPServer, PreforkTCP,
                    PreforkThreadingTCP]
    INET_DATAGRAM += [csockserver.ForkingUDPServer, PreforkUDP]
    if sys.version_info >= (3, 12):
        UNIX_STREAM.append(csockserver.ForkingUnixStreamServer)
        UNIX_DATAGRAM.append(csockserver.ForkingUnixDatagramServer)


def _name(cls: type) -> str:
    return cls.__name__


def check_stream_echo(server: csockserver.TCPServer) -> None:
    with server, serving(server):
        greeting, *echoed, bye = talk(server, b"one\n", b"two words\n")
    pid = int(greeting.split()[1])
    assert (pid != os.getpid()) == in_child(server)
    assert echoed == [b"ONE", b"TWO WORDS"]
    assert bye == b"bye"


def check_datagram_echo(server: csockserver.UDPServer,
                        unix_path: UnixPath) -> None:
    with server, serving(server):
        replies = [ask_datagram(server, b"ping %d" % i, unix_path)
                   for i in range(3)]
    for i, reply in enumerate(replies):
        pid, text = reply.split(b" ", 1)
        assert (int(pid) != os.getpid()) == in_child(server)
        assert text == b"PING %d!" % i


@pytest.mark.parametrize("server_class", INET_STREAM, ids=_name)
def test_tcp_servers_echo(server_class: type[csockserver.TCPServer],
                          leak_check: LeakCheck) -> None:
    check_stream_echo(server_class(("127.0.0.1", 0), UpperEcho))
    leak_check.check()


@pytest.mark.parametrize("server_class", INET_DATAGRAM, ids=_name)
def test_udp_servers_echo(server_class: type[csockserver.UDPServer],
                          unix_path: UnixPath,
                          leak_check: LeakCheck) -> None:
    check_datagram_echo(server_class(("127.0.0.1", 0), UpperDatagram),
                        unix_path)
    leak_check.check()


@pytest.mark.parametrize("server_class", UNIX_STREAM, ids=_name)
def test_unix_stream_servers_echo(
        server_class: type[csockserver.UnixStreamServer],
        unix_path: UnixPath, leak_check: LeakCheck) -> None:
    path = unix_path()
    server = server_class(path, UpperEcho)
    assert server.server_address == path
    check_stream_echo(server)
    leak_check.check()


@pytest.mark.parametrize("server_class", UNIX_DATAGRAM, ids=_name)
def test_unix_datagram_servers_echo(
        server_class: type[csockserver.UnixDatagramServer],
        unix_path: UnixPath, leak_check: LeakCheck) -> None:
    check_datagram_echo(server_class(unix_path(), UpperDatagram), unix_path)
    leak_check.check()


# -- handle_request, timeouts, the documentation's handlers -------------------

def test_handle_request_serves_one_connection() -> None:
    with csockserver.TCPServer(("127.0.0.1", 0), DocsStyleStream) as server:
        server.timeout = JOIN_TIMEOUT   # bounds handle_request()
        host, port = server.server_address
        with socket.create_connection((host, port),
                                      timeout=CLIENT_TIMEOUT) as client:
            client.sendall(b"  hello  ")
            server.handle_request()
            assert client.recv(1024) == b"HELLO"


def test_handle_request_times_out() -> None:
    class Patient(csockserver.UDPServer):
        timeouts = 0

        def handle_timeout(self) -> None:
            self.timeouts += 1

    with Patient(("127.0.0.1", 0), DocsStyleDatagram) as server:
        server.timeout = 0.01
        server.handle_request()
        assert server.timeouts == 1
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(CLIENT_TIMEOUT)
            client.sendto(b" quiet ", server.server_address)
            server.timeout = JOIN_TIMEOUT
            server.handle_request()
            assert client.recv(1024) == b"QUIET"
        assert server.timeouts == 1


@pytest.mark.parametrize("handler, expected", [
    (SocketOptions, b"0 %r 0" % CLIENT_TIMEOUT),
    (StockOptions, b"1 None 1"),
], ids=["set", "stock"])
def test_stream_handler_attributes(
        handler: type[csockserver.StreamRequestHandler],
        expected: bytes) -> None:
    with csockserver.ThreadingTCPServer(("127.0.0.1", 0), handler) as server, \
            serving(server):
        assert server.RequestHandlerClass is handler
        assert talk(server) == [expected]


# -- hooks --------------------------------------------------------------------

class FailingEcho(UpperEcho):
    def handle(self) -> None:
        line = self.rfile.readline()
        if line == b"boom\n":
            raise ValueError("boom")
        self.wfile.write(line.upper())


class HookedServer(csockserver.ThreadingTCPServer):
    """Overrides every hook, counting the calls, and calls up."""

    allow_reuse_address = True
    request_queue_size = 16
    daemon_threads = False
    block_on_close = True
    max_threads = 4
    max_queued = 8
    thread_idle_timeout = 1.0

    def __init__(self) -> None:
        self.calls: collections.Counter[str] = collections.Counter()
        self.errors: list[BaseException | None] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), FailingEcho)

    def count(self, hook: str) -> None:
        with self.lock:
            self.calls[hook] += 1

    def server_bind(self) -> None:
        self.count("server_bind")
        super().server_bind()

    def server_activate(self) -> None:
        self.count("server_activate")
        super().server_activate()

    def get_request(self) -> tuple[socket.socket, Any]:
        self.count("get_request")
        return super().get_request()

    def verify_request(
            self, request: socket.socket | tuple[bytes, socket.socket],
            client_address: Any) -> bool:
        self.count("verify_request")
        # The first connection is refused, the others are served.
        return self.calls["verify_request"] > 1

    def process_request(
            self, request: socket.socket | tuple[bytes, socket.socket],
            client_address: Any) -> None:
        self.count("process_request")
        super().process_request(request, client_address)

    def finish_request(
            self, request: socket.socket | tuple[bytes, socket.socket],
            client_address: Any) -> None:
        self.count("finish_request")
        super().finish_request(request, client_address)

    def handle_error(
            self, request: socket.socket | tuple[bytes, socket.socket],
            client_address: Any) -> None:
        with self.lock:
            self.errors.append(sys.exc_info()[1])

    def shutdown_request(
            self,
            request: socket.socket | tuple[bytes, socket.socket]) -> None:
        self.count("shutdown_request")
        super().shutdown_request(request)

    def close_request(
            self,
            request: socket.socket | tuple[bytes, socket.socket]) -> None:
        self.count("close_request")
        super().close_request(request)

    def service_actions(self) -> None:
        self.count("service_actions")
        super().service_actions()


def test_every_hook_can_be_overridden(leak_check: LeakCheck) -> None:
    server = HookedServer()
    assert server.fileno() == server.socket.fileno()
    with server, serving(server):
        assert talk(server) == []                    # refused
        assert talk(server, b"ok\n")[1:] == [b"OK", b"bye"]
        assert talk(server, b"boom\n")[1:] == [b"bye"]
        assert wait_for(lambda: len(server.errors) == 1)
        assert wait_for(lambda: server.calls["service_actions"] > 0)
    calls = dict(server.calls)
    assert calls["server_bind"] == calls["server_activate"] == 1
    assert calls["get_request"] == calls["verify_request"] == 3
    assert calls["process_request"] == calls["finish_request"] == 2
    assert calls["shutdown_request"] == calls["close_request"] == 3
    assert isinstance(server.errors[0], ValueError)
    leak_check.check()


def test_threading_serves_connections_at_once(leak_check: LeakCheck) -> None:
    class Server(csockserver.ThreadingTCPServer):
        daemon_threads = True
        max_threads = 3
        thread_idle_timeout = None

    with Server(("127.0.0.1", 0), UpperEcho) as server, serving(server):
        with contextlib.ExitStack() as stack:
            clients = [stack.enter_context(stream_client(server))
                       for _ in range(3)]
            # Every greeting arrives while all three connections are open.
            assert {recv_line(c) for c in clients} == {
                b"hi %d\n" % os.getpid()}
            for client in clients:
                client.shutdown(socket.SHUT_WR)
                assert recv_until_eof(client) == b"bye\n"
        assert isinstance(server._threads, (csockserver._Threads,
                                            csockserver._NoThreads))
    leak_check.check()


def test_shutdown_flag_stops_serve_forever() -> None:
    with csockserver.TCPServer(("127.0.0.1", 0), UpperEcho) as server:
        thread = threading.Thread(target=server.serve_forever,
                                  kwargs={"poll_interval": 0.05})
        thread.start()
        server._BaseServer__shutdown_request = True
        thread.join(JOIN_TIMEOUT)
        assert not thread.is_alive()
        assert server._BaseServer__is_shut_down.is_set()
        assert server._BaseServer__shutdown_request is False


# -- forking and prefork ------------------------------------------------------

@needs_fork
def test_forking_children_are_collected(leak_check: LeakCheck) -> None:
    class Server(csockserver.ForkingTCPServer):
        max_children = 2
        block_on_close = True

    with Server(("127.0.0.1", 0), UpperEcho) as server:
        server.timeout = JOIN_TIMEOUT
        with stream_client(server) as client:
            server.handle_request()
            client.shutdown(socket.SHUT_WR)
            lines = recv_until_eof(client).splitlines()
        assert lines[0] != b"hi %d" % os.getpid()
        server.collect_children(blocking=True)
        assert not server.active_children
    leak_check.check()


@needs_fork
def test_prefork_workers_serve(leak_check: LeakCheck) -> None:
    with PreforkTCP(("127.0.0.1", 0), UpperEcho) as server, serving(server):
        assert wait_for(lambda: len(server.worker_pids) == 1)
        greeting = talk(server, b"x\n")[0]
        assert int(greeting.split()[1]) in server.worker_pids
    assert server.worker_pids == frozenset()
    leak_check.check()


class NotifyingThreadingTCP(csockserver.ThreadingTCPServer):
    systemd_notify = True


def test_from_systemd_outside_systemd() -> None:
    # The classmethod returns the class it is called on (Self).
    def activated() -> NotifyingThreadingTCP:
        return NotifyingThreadingTCP.from_systemd(UpperEcho, index=0)
    with pytest.raises(RuntimeError):
        activated()


# -- csockserver.http ---------------------------------------------------------

class Hello(chttp.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    request_timeout = CLIENT_TIMEOUT
    keepalive_timeout = CLIENT_TIMEOUT

    def do_GET(self) -> None:
        body = ("hello %s" % self.path).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class QuietFiles(chttp.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def get(server: chttp.HTTPServer, *paths: str) -> list[tuple[int, bytes]]:
    """GET each path on one connection: (status, body) pairs."""
    conn = http.client.HTTPConnection("127.0.0.1", server.server_port,
                                      timeout=CLIENT_TIMEOUT)
    try:
        results = []
        for path in paths:
            conn.request("GET", path)
            response = conn.getresponse()
            results.append((response.status, response.read()))
        return results
    finally:
        conn.close()


def test_threading_http_server_keep_alive(leak_check: LeakCheck) -> None:
    with chttp.ThreadingHTTPServer(("127.0.0.1", 0), Hello) as server, \
            serving(server):
        assert server.disable_nagle_algorithm is True
        assert server.daemon_threads is True
        assert get(server, "/a", "/b") == [(200, b"hello /a"),
                                           (200, b"hello /b")]
    leak_check.check()


def test_http_server_files(tmp_path: pathlib.Path,
                           leak_check: LeakCheck) -> None:
    (tmp_path / "f.txt").write_bytes(b"contents")
    handler = functools.partial(QuietFiles, directory=str(tmp_path))
    with chttp.HTTPServer(("127.0.0.1", 0), handler) as server, \
            serving(server):
        assert isinstance(server.server_name, str)
        assert get(server, "/f.txt") == [(200, b"contents")]
        assert [status for status, _ in get(server, "/missing")] == [404]
    leak_check.check()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_cgi_handler_serves_plain_files(tmp_path: pathlib.Path) -> None:
    if sys.version_info >= (3, 15):
        pytest.skip("http.server has no CGIHTTPRequestHandler")
    (tmp_path / "f.txt").write_bytes(b"plain")
    cgi = chttp.CGIHTTPRequestHandler  # type: ignore[deprecated,unused-ignore]
    handler = functools.partial(cgi, directory=str(tmp_path))
    with chttp.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server, \
            serving(server):
        assert get(server, "/f.txt") == [(200, b"plain")]


def test_stdlib_handler_on_csockserver_server(tmp_path: pathlib.Path) -> None:
    """A handler derived straight from http.server's works with
    csockserver's servers too (with the standard library's files)."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    (tmp_path / "f.txt").write_bytes(b"stdlib")
    handler = functools.partial(Quiet, directory=str(tmp_path))
    with chttp.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server, \
            serving(server):
        assert get(server, "/f.txt") == [(200, b"stdlib")]
    with csockserver.TCPServer(("127.0.0.1", 0), Quiet) as plain:
        assert plain.RequestHandlerClass is Quiet
    assert callable(chttp.main)


# -- the module itself --------------------------------------------------------

def test_module_attributes() -> None:
    implementation: str = csockserver.IMPLEMENTATION
    assert implementation in ("cython", "python")
    version: str = csockserver.VERSION
    assert version.count(".") >= 2
    assert sorted(csockserver.__all__) == sorted(socketserver.__all__)
    assert sorted(chttp.__all__) == sorted(
        name for name in ("HTTPServer", "ThreadingHTTPServer",
                          "HTTPSServer", "ThreadingHTTPSServer",
                          "BaseHTTPRequestHandler",
                          "SimpleHTTPRequestHandler",
                          "CGIHTTPRequestHandler")
        if hasattr(chttp, name))
    assert issubclass(chttp.HTTPServer, csockserver.TCPServer)
    assert csockserver.StreamRequestHandler.disable_nagle_algorithm is True


def test_install_and_uninstall() -> None:
    before = sys.modules.get("socketserver")
    csockserver.install()
    try:
        assert importlib.import_module("socketserver") is csockserver
        assert csockserver.TCPServer.__module__ == "socketserver"
    finally:
        csockserver.uninstall()
    assert sys.modules.get("socketserver") is before
    assert csockserver.TCPServer.__module__ != "socketserver"
