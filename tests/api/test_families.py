"""Every server family under every dispatch mode, with a real client.

Families: TCPServer, UDPServer, UnixStreamServer, UnixDatagramServer.
Dispatch: synchronous, ThreadingMixIn, ForkingMixIn.  A combination that
the running Python does not name (ForkingUnixStreamServer before 3.12) is
built from the mix-in, as users do.
"""

import ast
import json
import os
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.clients import recv_line, recv_until_eof, stream_client
from tests.support.env import CLIENT_TIMEOUT, HAVE_FORK, HAVE_UNIX, needs_fork
from tests.support.servers import handle_request, serving

FAMILIES = {
    "tcp": ("TCPServer", True),
    "udp": ("UDPServer", False),
    "unix_stream": ("UnixStreamServer", True),
    "unix_dgram": ("UnixDatagramServer", False),
}
DISPATCHES = ["sync", "threading", "forking"]


def server_class(impl, family, dispatch):
    base = getattr(impl, FAMILIES[family][0])
    if dispatch == "sync":
        return base
    mixin = getattr(impl, dispatch.capitalize() + "MixIn")
    name = dispatch.capitalize() + base.__name__
    return getattr(impl, name, None) or type(name, (mixin, base), {})


def is_stream(family):
    return FAMILIES[family][1]


@pytest.fixture(params=list(FAMILIES))
def family(request):
    if request.param.startswith("unix") and not HAVE_UNIX:
        pytest.skip("needs AF_UNIX")
    return request.param


@pytest.fixture(params=DISPATCHES)
def dispatch(request):
    if request.param == "forking" and not HAVE_FORK:
        pytest.skip("needs os.fork")
    return request.param


def server_address(family, unix_path):
    if family.startswith("unix"):
        return unix_path()
    return ("127.0.0.1", 0)


class DatagramClient:
    """A datagram client for an inet or unix datagram server.

    Unix datagram clients bind a path of their own, or the server could not
    answer them.  (IPv4 only: these families are served on 127.0.0.1.)
    """

    def __init__(self, server, unix_path):
        self.server_address = server.server_address
        self.sock = socket.socket(server.address_family, socket.SOCK_DGRAM)
        self.sock.settimeout(CLIENT_TIMEOUT)
        if server.address_family == getattr(socket, "AF_UNIX", None):
            self.sock.bind(unix_path("c"))
        else:
            # Bound explicitly so getsockname() names the loopback address.
            self.sock.bind(("127.0.0.1", 0))

    def ask(self, data):
        self.sock.sendto(data, self.server_address)
        reply, sender = self.sock.recvfrom(65536)
        assert sender == self.server_address
        return reply

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def echo_handler(impl, family):
    if is_stream(family):
        class UpperEcho(impl.StreamRequestHandler):
            def handle(self):
                for line in self.rfile:
                    self.wfile.write(line.upper())
    else:
        class UpperEcho(impl.DatagramRequestHandler):
            def handle(self):
                self.wfile.write(self.rfile.read().upper())
    return UpperEcho


def describe_handler(impl, family):
    """A handler that answers with what it saw, as JSON.

    It reports over the wire rather than into a list, so that it works the
    same when it runs in a forked child.
    """
    base = (impl.StreamRequestHandler if is_stream(family)
            else impl.DatagramRequestHandler)

    class Describe(base):
        def handle(self):
            if is_stream(family):
                self.rfile.readline()
                request_ok = type(self.request) is socket.socket
            else:
                data, sock = self.request
                request_ok = (type(self.request) is tuple
                              and len(self.request) == 2
                              and type(data) is bytes
                              and type(sock) is socket.socket
                              and sock is self.server.socket)
            report = {
                "request_ok": request_ok,
                "client_address": repr(self.client_address),
                "server_is_server": isinstance(self.server, impl.BaseServer),
                "pid": os.getpid(),
            }
            self.wfile.write(json.dumps(report).encode() + b"\n")

    return Describe


def expected_client_address(family, client_sock):
    if family in ("tcp", "udp"):
        return client_sock.getsockname()
    if family == "unix_stream":
        return ""  # an unbound unix stream client
    return client_sock.getsockname()  # the path the client bound


def test_upper_case_echo(impl, family, dispatch, unix_path):
    cls = server_class(impl, family, dispatch)
    server = cls(server_address(family, unix_path), echo_handler(impl, family))
    with serving(server):
        if is_stream(family):
            with stream_client(server) as client:
                client.sendall(b"hello\n")
                assert recv_line(client) == b"HELLO\n"
                client.sendall(b"second line\n")
                assert recv_line(client) == b"SECOND LINE\n"
                client.shutdown(socket.SHUT_WR)
                assert recv_until_eof(client) == b""
        else:
            with DatagramClient(server, unix_path) as client:
                assert client.ask(b"hello") == b"HELLO"
                assert client.ask(b"second") == b"SECOND"


def test_several_clients(impl, family, dispatch, unix_path):
    cls = server_class(impl, family, dispatch)
    server = cls(server_address(family, unix_path), echo_handler(impl, family))
    with serving(server):
        for i in range(5):
            payload = b"client %d" % i
            if is_stream(family):
                with stream_client(server) as client:
                    client.sendall(payload + b"\n")
                    # A forked child holds a copy of this very client socket
                    # (it is in our process): only shutdown() gives it EOF.
                    client.shutdown(socket.SHUT_WR)
                    assert recv_until_eof(client) == payload.upper() + b"\n"
            else:
                with DatagramClient(server, unix_path) as client:
                    assert client.ask(payload) == payload.upper()


def test_handler_sees_request_and_address(impl, family, dispatch, unix_path):
    cls = server_class(impl, family, dispatch)
    server = cls(server_address(family, unix_path),
                 describe_handler(impl, family))
    with serving(server):
        if is_stream(family):
            with stream_client(server) as client:
                client.sendall(b"who\n")
                report = json.loads(recv_line(client))
                expected = expected_client_address(family, client)
        else:
            with DatagramClient(server, unix_path) as client:
                report = json.loads(client.ask(b"who"))
                expected = expected_client_address(family, client.sock)
    assert report["request_ok"] is True
    assert report["server_is_server"] is True
    assert ast.literal_eval(report["client_address"]) == expected
    if dispatch == "forking":
        assert report["pid"] != os.getpid()
    else:
        assert report["pid"] == os.getpid()


@needs_fork
def test_forking_server_close_reaps_children(impl, family, unix_path):
    cls = server_class(impl, family, "forking")
    server = cls(server_address(family, unix_path),
                 describe_handler(impl, family))
    pids = []
    with serving(server):
        for _ in range(3):
            if is_stream(family):
                with stream_client(server) as client:
                    client.sendall(b"who\n")
                    pids.append(json.loads(recv_line(client))["pid"])
            else:
                with DatagramClient(server, unix_path) as client:
                    pids.append(json.loads(client.ask(b"who"))["pid"])
    # serving() ended with shutdown() and server_close().
    assert len(set(pids)) == 3
    assert os.getpid() not in pids
    assert server.active_children == set()
    for pid in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # already reaped by server_close


DATAGRAM_FAMILIES = [f for f in FAMILIES if not is_stream(f)]


@pytest.mark.parametrize("family", DATAGRAM_FAMILIES, indirect=True)
def test_long_datagram_truncated_to_max_packet_size(impl, family, dispatch,
                                                    unix_path):
    base = server_class(impl, family, dispatch)
    cls = type("Small" + base.__name__, (base,), {"max_packet_size": 16})
    server = cls(server_address(family, unix_path), echo_handler(impl, family))
    payload = bytes(range(97, 123)) * 4  # 104 bytes of a..z
    with serving(server):
        with DatagramClient(server, unix_path) as client:
            assert client.ask(payload) == payload[:16].upper()
            assert client.ask(b"short") == b"SHORT"


@pytest.mark.parametrize("family", DATAGRAM_FAMILIES, indirect=True)
def test_max_packet_size_read_per_request(impl, family, unix_path):
    # max_packet_size set on the instance, between requests, is honoured.
    server = server_class(impl, family, "sync")(
        server_address(family, unix_path), echo_handler(impl, family))
    with server, DatagramClient(server, unix_path) as client:
        for size in (1, 5, 8192, 3):
            server.max_packet_size = size
            client.sock.sendto(b"x" * 100, server.server_address)
            handle_request(server)
            assert client.sock.recv(65536) == b"X" * min(size, 100)


@pytest.mark.parametrize("family", DATAGRAM_FAMILIES, indirect=True)
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.binary(max_size=2000),
       max_packet_size=st.integers(min_value=0, max_value=2100))
def test_datagram_truncation_property(impl, family, unix_path, payload,
                                      max_packet_size):
    server = server_class(impl, family, "sync")(
        server_address(family, unix_path), echo_handler(impl, family))
    server.max_packet_size = max_packet_size
    with server, DatagramClient(server, unix_path) as client:
        client.sock.sendto(payload, server.server_address)
        handle_request(server)
        assert client.sock.recv(65536) == payload[:max_packet_size].upper()


# -- DatagramRequestHandler's files ---------------------------------------

def test_datagram_handler_files_are_bytesio(impl):
    """rfile holds the datagram, wfile gathers the reply, which leaves as
    one datagram when the handler finishes -- an empty one if nothing was
    written, as socketserver does."""
    import io
    seen = []

    class Files(impl.DatagramRequestHandler):
        def handle(self):
            seen.append((type(self.rfile), type(self.wfile), self.packet,
                         self.socket is self.server.socket))
            if self.rfile.readline() == b"quiet\n":
                return
            self.wfile.write(b"one ")
            self.wfile.write(self.rfile.read())

    server = impl.UDPServer(("127.0.0.1", 0), Files)
    with server, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(CLIENT_TIMEOUT)
        client.sendto(b"first\nrest", server.server_address)
        handle_request(server)
        assert client.recv(100) == b"one rest"
        client.sendto(b"quiet\n", server.server_address)
        handle_request(server)
        assert client.recv(100) == b""
    assert seen == [(io.BytesIO, io.BytesIO, b"first\nrest", True),
                    (io.BytesIO, io.BytesIO, b"quiet\n", True)]
