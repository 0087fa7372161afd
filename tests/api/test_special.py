"""Less common but real uses: TLS, manual bind, timeouts, address forms."""

import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time

import pytest

from tests.support.clients import recv_line, recv_until_eof, stream_client
from tests.support.env import CLIENT_TIMEOUT, needs_unix
from tests.support.servers import ServerThread, handle_request
from tests.support.sockets import have_ipv6_loopback


def upper_line_handler(impl):
    class UpperLine(impl.StreamRequestHandler):
        def handle(self):
            for line in self.rfile:
                self.wfile.write(line.upper())
    return UpperLine


# -- TLS -------------------------------------------------------------------

@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A throw-away self-signed certificate for CN=localhost."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    where = tmp_path_factory.mktemp("tls")
    key, cert = where / "k.pem", where / "c.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1",
         "-subj", "/CN=localhost"],
        check=True, capture_output=True, timeout=60)
    return str(cert), str(key)


def tls_server(impl, certificate, cls_name="TCPServer"):
    cert, key = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = getattr(impl, cls_name)(("127.0.0.1", 0),
                                     upper_line_handler(impl))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    return server


def tls_client(server, certificate):
    context = ssl.create_default_context(cafile=certificate[0])
    raw = socket.create_connection(server.server_address, CLIENT_TIMEOUT)
    return context.wrap_socket(raw, server_hostname="localhost")


class PendingTLSClient:
    """A TLS client whose handshake runs while the server is being served
    by handle_request() in the caller (the handshake needs both sides)."""

    def __init__(self, server, certificate):
        self.outcome = {}

        def connect():
            try:
                tls = tls_client(server, certificate)
                tls.sendall(b"hello tls\n")
                self.outcome["tls"] = tls
            except BaseException as exc:
                self.outcome["error"] = exc

        self.thread = threading.Thread(target=connect, daemon=True)
        self.thread.start()

    def result(self):
        self.thread.join(CLIENT_TIMEOUT)
        assert not self.thread.is_alive()
        if "error" in self.outcome:
            raise self.outcome["error"]
        return self.outcome["tls"]


@pytest.mark.parametrize("cls_name", ["TCPServer", "ThreadingTCPServer"])
def test_tls_echo_serve_forever(impl, certificate, cls_name):
    server = tls_server(impl, certificate, cls_name)
    assert isinstance(server.socket, ssl.SSLSocket)
    with ServerThread(server):
        for text in (b"secret\n", b"again\n"):
            with tls_client(server, certificate) as client:
                client.sendall(text)
                assert recv_line(client) == text.upper()
                assert client.version() is not None


def test_tls_echo_handle_request(impl, certificate):
    seen = []

    class Recording(impl.StreamRequestHandler):
        def handle(self):
            seen.append(type(self.request))
            self.wfile.write(self.rfile.readline().upper())

    server = tls_server(impl, certificate)
    server.RequestHandlerClass = Recording
    try:
        client = PendingTLSClient(server, certificate)
        handle_request(server)
        with client.result() as tls:
            assert recv_line(tls) == b"HELLO TLS\n"
    finally:
        server.server_close()
    assert seen == [ssl.SSLSocket]


# -- bind_and_activate=False -----------------------------------------------

def test_manual_bind_and_activate(impl):
    class ReusingServer(impl.TCPServer):
        def server_bind(self):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            super().server_bind()

    server = ReusingServer(("127.0.0.1", 0), upper_line_handler(impl),
                           bind_and_activate=False)
    try:
        assert server.server_address == ("127.0.0.1", 0)
        server.server_bind()
        assert server.server_address[1] != 0
        assert server.socket.getsockopt(socket.SOL_SOCKET,
                                        socket.SO_REUSEADDR) != 0
        server.server_activate()
        with ServerThread(server):
            with stream_client(server) as client:
                client.sendall(b"manual\n")
                assert recv_line(client) == b"MANUAL\n"
    finally:
        server.server_close()


def test_unactivated_server_refuses_connections(impl):
    server = impl.TCPServer(("127.0.0.1", 0), upper_line_handler(impl),
                            bind_and_activate=False)
    try:
        server.server_bind()
        with pytest.raises(ConnectionRefusedError):
            stream_client(server)
    finally:
        server.server_close()


def test_allow_reuse_address_applied(impl):
    class Reusing(impl.TCPServer):
        allow_reuse_address = True

    with Reusing(("127.0.0.1", 0), impl.BaseRequestHandler) as server:
        assert server.socket.getsockopt(socket.SOL_SOCKET,
                                        socket.SO_REUSEADDR) != 0
    with impl.TCPServer(("127.0.0.1", 0), impl.BaseRequestHandler) as server:
        assert server.socket.getsockopt(socket.SOL_SOCKET,
                                        socket.SO_REUSEADDR) == 0


# -- handle_request's timeout ----------------------------------------------

def timing_out_server(impl):
    class Server(impl.TCPServer):
        timeouts = 0

        def handle_timeout(self):
            self.timeouts += 1
            return "timed out"

    return Server(("127.0.0.1", 0), upper_line_handler(impl))


def test_handle_request_honours_server_timeout(impl):
    with timing_out_server(impl) as server:
        server.timeout = 0.05
        start = time.monotonic()
        assert handle_request(server) == "timed out"
        elapsed = time.monotonic() - start
        assert server.timeouts == 1
        assert 0.04 <= elapsed < 2.0


def test_handle_request_honours_socket_timeout(impl):
    with timing_out_server(impl) as server:
        server.socket.settimeout(0.05)
        assert server.timeout is None
        assert handle_request(server) == "timed out"
        assert server.timeouts == 1


def test_handle_request_takes_the_smaller_timeout(impl):
    with timing_out_server(impl) as server:
        server.timeout = 30
        server.socket.settimeout(0.05)
        start = time.monotonic()
        assert handle_request(server) == "timed out"
        assert time.monotonic() - start < 2.0
        server.timeout = 0.05
        server.socket.settimeout(30)
        start = time.monotonic()
        assert handle_request(server) == "timed out"
        assert time.monotonic() - start < 2.0
        assert server.timeouts == 2


def test_handle_request_with_timeout_still_serves(impl):
    with timing_out_server(impl) as server:
        server.timeout = CLIENT_TIMEOUT
        server.socket.settimeout(CLIENT_TIMEOUT)
        with stream_client(server) as client:
            client.sendall(b"in time\n")
            client.shutdown(socket.SHUT_WR)
            assert handle_request(server) is None
            assert recv_until_eof(client) == b"IN TIME\n"
        assert server.timeouts == 0


def test_handle_request_zero_timeout(impl):
    with timing_out_server(impl) as server:
        server.timeout = 0
        assert handle_request(server) == "timed out"
        assert server.timeouts == 1


# -- accepted sockets' timeout and blocking state ---------------------------

def reference_accept(listen_timeout):
    """What plain socket.accept() gives under the current default timeout:
    the accepted socket's timeout, and whether its fd is blocking."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(listen_timeout)
        with socket.create_connection(listener.getsockname(), CLIENT_TIMEOUT):
            conn, _ = listener.accept()
            with conn:
                return conn.gettimeout(), os.get_blocking(conn.fileno())


def accepted_state(impl, listen_timeout, mode):
    seen = []

    class Recording(impl.BaseRequestHandler):
        def handle(self):
            # The timeout, and whether the fd itself is in blocking mode
            # (a socket with a timeout is O_NONBLOCK underneath).
            seen.append((self.request.gettimeout(),
                         os.get_blocking(self.request.fileno())))

    server = impl.TCPServer(("127.0.0.1", 0), Recording)
    try:
        server.socket.settimeout(listen_timeout)
        if mode == "handle_request":
            with socket.create_connection(server.server_address,
                                          CLIENT_TIMEOUT) as client:
                handle_request(server)
                assert recv_until_eof(client) == b""
        else:
            with ServerThread(server, poll_interval=0.05):
                with socket.create_connection(server.server_address,
                                              CLIENT_TIMEOUT) as client:
                    assert recv_until_eof(client) == b""
    finally:
        server.server_close()
    assert len(seen) == 1
    return seen[0]


@pytest.mark.parametrize("mode", ["handle_request", "serve_forever"])
@pytest.mark.parametrize("listen_timeout", [None, 0.0, 2.0],
                         ids=["blocking", "nonblocking", "timeout"])
@pytest.mark.parametrize("default", [None, 3.0],
                         ids=["default-none", "default-3"])
def test_accepted_socket_timeout_like_accept(impl, default, listen_timeout,
                                             mode, restore_default_timeout):
    socket.setdefaulttimeout(default)
    expected = reference_accept(listen_timeout)
    assert accepted_state(impl, listen_timeout, mode) == expected


def test_accepted_socket_timeout_literal_cases(impl, restore_default_timeout):
    socket.setdefaulttimeout(None)
    assert accepted_state(impl, 2.0, "handle_request") == (None, True)
    socket.setdefaulttimeout(3.0)
    assert accepted_state(impl, 2.0, "handle_request") == (3.0, False)
    assert accepted_state(impl, None, "serve_forever") == (3.0, False)


# -- client_address forms --------------------------------------------------

def address_recording_handler(impl, seen):
    class Recording(impl.BaseRequestHandler):
        def handle(self):
            seen.append(self.client_address)
    return Recording


def stream_address_seen(impl, cls, address, client_bind=None):
    seen = []
    server = cls(address, address_recording_handler(impl, seen))
    try:
        with socket.socket(server.address_family) as client:
            client.settimeout(CLIENT_TIMEOUT)
            if client_bind is not None:
                client.bind(client_bind)
            client.connect(server.server_address)
            handle_request(server)
            assert recv_until_eof(client) == b""
            mine = client.getsockname()
    finally:
        server.server_close()
    return seen, mine


def test_client_address_ipv4(impl):
    seen, mine = stream_address_seen(impl, impl.TCPServer, ("127.0.0.1", 0))
    assert seen == [mine]
    assert type(seen[0]) is tuple and len(seen[0]) == 2


@pytest.mark.skipif(not have_ipv6_loopback(), reason="needs IPv6 on ::1")
def test_client_address_ipv6(impl):
    class Server6(impl.TCPServer):
        address_family = socket.AF_INET6

    seen, mine = stream_address_seen(impl, Server6, ("::1", 0))
    assert seen == [mine]
    assert type(seen[0]) is tuple and len(seen[0]) == 4
    assert seen[0][0] == "::1"


@pytest.mark.skipif(not have_ipv6_loopback(), reason="needs IPv6 on ::1")
def test_client_address_ipv6_datagram(impl):
    class Server6(impl.UDPServer):
        address_family = socket.AF_INET6

    seen = []
    server = Server6(("::1", 0), address_recording_handler(impl, seen))
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as client:
            client.bind(("::1", 0))
            client.sendto(b"x", server.server_address)
            handle_request(server)
            mine = client.getsockname()
    finally:
        server.server_close()
    assert seen == [mine]


@needs_unix
def test_client_address_unix_stream_unbound(impl, unix_path):
    seen, _ = stream_address_seen(impl, impl.UnixStreamServer, unix_path())
    assert seen == [""]


@needs_unix
def test_client_address_unix_stream_bound(impl, unix_path):
    client_path = unix_path("c")
    seen, mine = stream_address_seen(impl, impl.UnixStreamServer, unix_path(),
                                     client_bind=client_path)
    assert seen == [client_path] == [mine]


@needs_unix
def test_client_address_unix_datagram_unbound(impl, unix_path):
    # An unbound unix datagram client has no address: socketserver hands
    # the handler None.
    seen = []
    server = impl.UnixDatagramServer(unix_path(),
                                     address_recording_handler(impl, seen))
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as client:
            client.sendto(b"x", server.server_address)
            handle_request(server)
    finally:
        server.server_close()
    assert seen == [None]


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="abstract unix sockets are Linux-only")
def test_client_address_abstract_unix(impl):
    # Linux's abstract namespace: the address is bytes with a leading NUL.
    name = b"\0csockserver-test-%d-%d" % (os.getpid(), id(impl))
    seen = []
    server = impl.UnixStreamServer(name, address_recording_handler(impl,
                                                                   seen))
    try:
        assert server.server_address == name
        with socket.socket(socket.AF_UNIX) as client:
            client.settimeout(CLIENT_TIMEOUT)
            client.bind(name + b"-client")
            client.connect(name)
            handle_request(server)
    finally:
        server.server_close()
    assert seen == [name + b"-client"]
