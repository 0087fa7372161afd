"""csockserver.http: http.server's servers and handlers on csockserver.

The command line (``python -m csockserver.http``) is run as a user runs it,
in a subprocess serving a temporary directory to urllib and http.client;
the classes are checked in-process.
"""

import http.client
import http.server
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import urllib.request

import pytest

import csockserver
import csockserver.http as chttp

from tests.support.env import CLIENT_TIMEOUT, JOIN_TIMEOUT, TREE
from tests.support.servers import wait_for

ROOT = TREE
COMPILED = csockserver.IMPLEMENTATION == "cython"
# http.server's -p/--protocol option arrived in Python 3.11.
HAS_PROTOCOL_OPTION = sys.version_info >= (3, 11)


# -- the command line ---------------------------------------------------------

@pytest.fixture
def site(tmp_path):
    (tmp_path / "hello.txt").write_bytes(b"hello from csockserver\n")
    (tmp_path / "big.bin").write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    return tmp_path


class CommandLineServer:
    """``python -m csockserver.http ARGS`` in a subprocess, on port 0."""

    def __init__(self, *args):
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [ROOT, env.get("PYTHONPATH")]))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "csockserver.http", "--bind", "127.0.0.1",
             *args, "0"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL)
        banner = self._banner()
        match = re.search(r"port (\d+)", banner)
        assert match, banner
        self.port = int(match.group(1))

    def _banner(self):
        # The banner is the first line on stdout; bound the wait for it.
        line = []
        reader = threading.Thread(
            target=lambda: line.append(self.proc.stdout.readline()),
            daemon=True)
        reader.start()
        reader.join(JOIN_TIMEOUT)
        if not line:
            self.proc.kill()
            pytest.fail("no banner from python -m csockserver.http")
        return line[0].decode()

    def interrupt(self):
        """Ctrl-C: the server must exit promptly, and cleanly."""
        self.proc.send_signal(signal.SIGINT)
        out, err = self.proc.communicate(timeout=JOIN_TIMEOUT)
        return self.proc.returncode, out.decode() + err.decode()

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=JOIN_TIMEOUT)


@pytest.fixture
def command_line():
    started = []

    def start(*args):
        server = CommandLineServer(*args)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


def test_command_line_serves_a_directory_to_urllib(command_line, site):
    server = command_line("--directory", str(site))
    url = "http://127.0.0.1:%d/" % server.port
    with urllib.request.urlopen(url + "hello.txt",
                                timeout=CLIENT_TIMEOUT) as reply:
        assert reply.status == 200
        assert reply.read() == b"hello from csockserver\n"
    with urllib.request.urlopen(url + "big.bin",
                                timeout=CLIENT_TIMEOUT) as reply:
        assert reply.read() == (site / "big.bin").read_bytes()
    with urllib.request.urlopen(url, timeout=CLIENT_TIMEOUT) as reply:
        listing = reply.read().decode()
    assert "hello.txt" in listing and "big.bin" in listing
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(url + "absent", timeout=CLIENT_TIMEOUT)
    assert missing.value.code == 404
    missing.value.close()

    returncode, output = server.interrupt()
    assert returncode == 0, output
    assert "GET /hello.txt" in output      # http.server's own request log


def test_command_line_with_an_http_client_connection(command_line, site):
    # The default protocol is HTTP/1.0: the server closes after each reply
    # and http.client reconnects by itself.
    server = command_line("--directory", str(site))
    conn = http.client.HTTPConnection("127.0.0.1", server.port,
                                      timeout=CLIENT_TIMEOUT)
    try:
        for _ in range(3):
            conn.request("GET", "/hello.txt")
            reply = conn.getresponse()
            assert reply.status == 200
            assert reply.read() == b"hello from csockserver\n"
    finally:
        conn.close()


@pytest.mark.skipif(not HAS_PROTOCOL_OPTION,
                    reason="http.server has --protocol from Python 3.11")
def test_command_line_keeps_http11_connections_alive(command_line, site):
    server = command_line("--directory", str(site), "--protocol", "HTTP/1.1")
    conn = http.client.HTTPConnection("127.0.0.1", server.port,
                                      timeout=CLIENT_TIMEOUT)
    try:
        conn.request("GET", "/hello.txt")
        first = conn.getresponse()
        assert first.read() == b"hello from csockserver\n"
        connection = conn.sock
        for name in ("big.bin", "hello.txt"):
            conn.request("GET", "/" + name)
            reply = conn.getresponse()
            assert reply.status == 200
            assert reply.read() == (site / name).read_bytes()
            assert conn.sock is connection, "the connection was not kept"
    finally:
        conn.close()


# -- the classes --------------------------------------------------------------

def test_public_names_follow_http_server():
    assert set(chttp.__all__) == set(http.server.__all__)
    for name in chttp.__all__:
        ours, theirs = getattr(chttp, name), getattr(http.server, name)
        assert issubclass(ours, theirs) or name.endswith("Server"), name


SERVERS = [name for name in http.server.__all__ if name.endswith("Server")]


def test_servers_are_built_from_csockserver():
    assert issubclass(chttp.HTTPServer, csockserver.TCPServer)
    assert issubclass(chttp.ThreadingHTTPServer, csockserver.ThreadingMixIn)
    assert issubclass(chttp.ThreadingHTTPServer, chttp.HTTPServer)
    for name in SERVERS:
        assert issubclass(getattr(chttp, name), chttp.HTTPServer), name


@pytest.mark.parametrize("name", SERVERS)
def test_servers_have_http_servers_attributes(name):
    import inspect
    ours, theirs = getattr(chttp, name), getattr(http.server, name)
    assert ([c.__name__ for c in ours.__mro__]
            == [c.__name__ for c in theirs.__mro__])
    assert inspect.signature(ours) == inspect.signature(theirs)
    for attr in ("allow_reuse_address", "allow_reuse_port",
                 "daemon_threads"):
        assert (getattr(ours, attr, None), type(getattr(ours, attr, None))
                ) == (getattr(theirs, attr, None),
                      type(getattr(theirs, attr, None))), attr


# -- HTTPS (Python 3.14+) -----------------------------------------------------

def _test_certificate():
    """The interpreter's test certificate for localhost (its own key in the
    file), or None without CPython's test package."""
    try:
        import test
    except ImportError:
        return None
    path = os.path.join(os.path.dirname(test.__file__), "certdata",
                        "keycert.pem")
    return path if os.path.exists(path) else None


needs_https = pytest.mark.skipif(
    not hasattr(http.server, "HTTPSServer") or _test_certificate() is None,
    reason="http.server has HTTPS servers from Python 3.14; the test"
           " certificate comes with CPython's test package")


@needs_https
@pytest.mark.parametrize("module", [http.server, chttp],
                         ids=["stdlib", "csock"])
def test_https_server_serves_over_tls(serve, module):
    import ssl
    certificate = _test_certificate()
    server = module.ThreadingHTTPSServer(("127.0.0.1", 0), Recorder,
                                         certfile=certificate)
    assert (server.certfile, server.keyfile, server.password,
            server.alpn_protocols) == (certificate, None, None, ["http/1.1"])
    assert isinstance(server.socket, ssl.SSLSocket)
    serve(server)
    context = ssl.create_default_context(cafile=certificate)
    context.set_alpn_protocols(["http/1.1"])
    conn = http.client.HTTPSConnection("localhost", server.server_port,
                                       timeout=CLIENT_TIMEOUT,
                                       context=context)
    try:
        conn.request("GET", "/")
        reply = conn.getresponse()
        body = reply.read().decode()
        assert conn.sock.selected_alpn_protocol() == "http/1.1"
    finally:
        conn.close()
    # A TLS connection gets the standard library's files; Nagle is off
    # all the same.
    assert (reply.status, body) == (200, "BufferedReader _SocketWriter 1")


@needs_https
def test_https_server_reports_a_bad_certificate_as_http_server(tmp_path):
    missing = str(tmp_path / "missing.pem")
    errors = []
    for module in (http.server, chttp):
        with pytest.raises(OSError) as caught:
            module.HTTPSServer(("127.0.0.1", 0), Recorder, certfile=missing)
        errors.append((type(caught.value), caught.value.errno))
    assert errors[0] == errors[1]


class Recorder(chttp.BaseHTTPRequestHandler):
    """Replies with what the handler saw of its connection."""

    protocol_version = "HTTP/1.1"

    def do_GET(self):
        nodelay = self.connection.getsockopt(socket.IPPROTO_TCP,
                                             socket.TCP_NODELAY)
        body = ("%s %s %d" % (type(self.rfile).__name__,
                              type(self.wfile).__name__,
                              bool(nodelay))).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass


class StdlibRecorder(http.server.BaseHTTPRequestHandler):
    """The same, derived straight from http.server (stdlib files)."""

    protocol_version = "HTTP/1.1"
    do_GET = Recorder.do_GET
    log_message = Recorder.log_message


def _get_twice(server):
    """Two GETs on one kept-alive connection; the two bodies."""
    conn = http.client.HTTPConnection(*server.server_address[:2],
                                      timeout=CLIENT_TIMEOUT)
    try:
        bodies = []
        for _ in range(2):
            conn.request("GET", "/")
            bodies.append(conn.getresponse().read().decode())
        return bodies
    finally:
        conn.close()


def test_handlers_get_compiled_files_and_nodelay(serve):
    server = chttp.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    serve(server)
    assert server.server_port == server.server_address[1]
    assert server.server_name
    expected = ("SocketReader _CompiledSocketWriter 1" if COMPILED
                else "BufferedReader _SocketWriter 1")
    assert _get_twice(server) == [expected, expected]


def test_stdlib_handlers_work_and_get_nodelay_from_the_listener(serve):
    server = chttp.ThreadingHTTPServer(("127.0.0.1", 0), StdlibRecorder)
    serve(server)
    expected = "BufferedReader _SocketWriter 1"
    assert _get_twice(server) == [expected, expected]


def test_server_can_keep_nagle(serve):
    class NagleServer(chttp.ThreadingHTTPServer):
        disable_nagle_algorithm = False

    server = NagleServer(("127.0.0.1", 0), StdlibRecorder)
    serve(server)
    assert _get_twice(server)[0] == "BufferedReader _SocketWriter 0"


def test_simple_handler_serves_files(serve, site):
    class Quiet(chttp.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(site), **kwargs)

        def log_message(self, format, *args):
            pass

    assert issubclass(Quiet, http.server.SimpleHTTPRequestHandler)
    server = chttp.HTTPServer(("127.0.0.1", 0), Quiet)
    serve(server)
    url = "http://127.0.0.1:%d/big.bin" % server.server_port
    with urllib.request.urlopen(url, timeout=CLIENT_TIMEOUT) as reply:
        assert reply.read() == (site / "big.bin").read_bytes()


# -- connections that end before a request, or in the middle of one ----------

class Counting:
    """Records handle_error calls (the exception's name) and ended
    requests, in place of the traceback on stderr."""

    def handle_error(self, request, client_address):
        self.errors.append(type(sys.exc_info()[1]).__name__)

    def shutdown_request(self, request):
        super().shutdown_request(request)
        self.ended.append(True)


class Ok:
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format, *args):
        self.server.logged.append(format % args)


HTTP_HANDLERS = {
    "http.server": type("Handler", (Ok, http.server.BaseHTTPRequestHandler),
                        {}),
    "csockserver.http": type("Handler", (Ok, chttp.BaseHTTPRequestHandler),
                             {}),
    "csockserver.http-deadlines": type(
        "Handler", (Ok, chttp.BaseHTTPRequestHandler),
        {"request_timeout": 5.0, "keepalive_timeout": 5.0}),
}


def counting_server(handler, serve, **attrs):
    cls = type("Server", (Counting, chttp.ThreadingHTTPServer), {})
    server = cls(("127.0.0.1", 0),
                 type("Handler", (HTTP_HANDLERS[handler],), attrs))
    server.errors, server.ended, server.logged = [], [], []
    serve(server)
    return server


def reset(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                    struct.pack("ii", 1, 0))
    sock.close()


# What the client sends before it hangs up.
BEFORE = {
    "first-request": b"",
    "between-requests": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
}
MIDWAY = {
    "in-the-request-line": b"GET /hel",
    "in-the-headers": b"GET / HTTP/1.1\r\nHost: x\r\n",
    "between-requests-and-in-one": b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET",
}


def hang_up_after(server, data, with_reset):
    """Send *data*, read the replies it asks for, then close (with a reset,
    or a FIN); wait until the server has ended the connection."""
    with socket.create_connection(server.server_address,
                                  CLIENT_TIMEOUT) as client:
        client.sendall(data)
        reply = b""
        while reply.count(b"\r\n\r\nok") < data.count(b"\r\n\r\n"):
            chunk = client.recv(4096)
            assert chunk, reply
            reply += chunk
        if with_reset:
            reset(client)
    assert wait_for(lambda: server.ended, timeout=JOIN_TIMEOUT)


@pytest.mark.parametrize("handler", sorted(HTTP_HANDLERS))
@pytest.mark.parametrize("where", sorted(BEFORE))
@pytest.mark.parametrize("with_reset", [True, False], ids=["reset", "close"])
def test_a_connection_that_ends_before_a_request_ends_quietly(
        serve, handler, where, with_reset):
    """csockserver.http, like nginx and gunicorn; http.server reports a
    reset through handle_error."""
    server = counting_server(handler, serve)
    hang_up_after(server, BEFORE[where], with_reset)
    reported = with_reset and handler == "http.server"
    assert server.errors == (["ConnectionResetError"] if reported else [])


@pytest.mark.parametrize("handler", sorted(HTTP_HANDLERS))
@pytest.mark.parametrize("where", sorted(MIDWAY))
def test_a_reset_in_the_middle_of_a_request_is_reported(serve, handler,
                                                        where):
    """As by http.server: the error reaches handle_error."""
    server = counting_server(handler, serve)
    hang_up_after(server, MIDWAY[where], with_reset=True)
    assert server.errors == ["ConnectionResetError"]


@pytest.mark.parametrize("handler", sorted(HTTP_HANDLERS))
def test_a_socket_timeout_before_a_request_is_logged_as_by_http_server(
        serve, handler):
    server = counting_server(handler, serve, timeout=0.2)
    with socket.create_connection(server.server_address,
                                  CLIENT_TIMEOUT) as client:
        assert client.recv(10) == b""
    assert wait_for(lambda: server.ended, timeout=JOIN_TIMEOUT)
    assert server.errors == []
    assert server.logged == ["Request timed out: %r"
                             % socket.timeout("timed out")]


# -- the Date header, made once per second ----------------------------------

def stdlib_and_csockserver_dates(monkeypatch, now, timestamp=None):
    monkeypatch.setattr("time.time", lambda: now)
    ours = chttp.BaseHTTPRequestHandler.__new__(chttp.BaseHTTPRequestHandler)
    theirs = http.server.BaseHTTPRequestHandler.__new__(
        http.server.BaseHTTPRequestHandler)
    return (theirs.date_time_string(timestamp),
            ours.date_time_string(timestamp))


@pytest.mark.parametrize("fraction", [0.0, 0.25, 0.999998, 0.999999,
                                      0.9999994, 0.9999995, 0.9999999])
def test_the_date_is_http_servers_at_every_point_of_a_second(
        monkeypatch, fraction):
    # formatdate() rounds to the microsecond: the end of a second may be
    # the next one's text; calls in between must not reuse a stale one.
    for second in (1_700_000_000, 1_700_000_001, 1_700_000_000, 86399):
        for now in (second + 0.25, second + fraction):  # cached, then not
            expected, got = stdlib_and_csockserver_dates(monkeypatch, now)
            assert got == expected, now


def test_a_given_timestamp_is_formatted_as_http_server_does(monkeypatch):
    for timestamp in (0, 1.5, 1_700_000_000.9999997, 2**31):
        expected, got = stdlib_and_csockserver_dates(monkeypatch, 5.0,
                                                     timestamp)
        assert got == expected
