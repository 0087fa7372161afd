"""Which rfile and wfile StreamRequestHandler gets, and a protocol through
them.

``_streams.open_reader`` and ``open_writer`` give the compiled files only
for the stock buffer sizes on a plain socket; setup() in a real server's
handler gets those (the stdlib's files on the pure-Python engine or with
other sizes) and turns TCP_NODELAY on; and a small framing protocol gets
the same answers from a socketserver and a csockserver server, whichever
files the handler ends up with.  These run on both engines.
"""

import io
import os
import socket
import socketserver

import pytest

import csockserver
from csockserver._engine import streams as _streams
from tests.support.clients import recv_exactly, recv_line, stream_client
from tests.support.env import HAVE_UNIX, needs_unix
from tests.support.servers import serving
from tests.support.streams import (CHUNK, COMPILED, SHORT, Background,
                                   CompiledSocketWriter, MiB, SocketReader)

# Every test gives back the fds and threads it took.
pytestmark = pytest.mark.usefixtures("no_leaks")


# -- which files StreamRequestHandler gets -----------------------------------

def stock_files():
    """rfile and wfile types for the stock sizes on a plain socket."""
    if COMPILED:
        return SocketReader, CompiledSocketWriter
    return io.BufferedReader, csockserver._SocketWriter


def test_open_reader_picks_the_compiled_reader_only_when_stock(pair):
    a, b = pair()
    stock = stock_files()[0]

    class Sub(socket.socket):
        pass

    plain = _streams.open_reader(a, -1)
    assert type(plain) is stock
    for bufsize, expected in ((8192, io.BufferedReader), (0, socket.SocketIO),
                              (1, io.BufferedReader)):
        reader = _streams.open_reader(a, bufsize)
        assert type(reader) is expected
        reader.close()
    a.settimeout(0.0)
    nonblocking = _streams.open_reader(a, -1)
    assert type(nonblocking) is io.BufferedReader
    a.settimeout(SHORT)
    assert type(_streams.open_reader(a, -1)) is stock
    sub = Sub(socket.AF_INET, socket.SOCK_STREAM)
    try:
        reader = _streams.open_reader(sub, -1)
        assert type(reader) is io.BufferedReader
        reader.close()
    finally:
        sub.close()
    for reader in (plain, nonblocking):
        reader.close()


def test_open_writer_picks_the_compiled_writer_only_when_stock(pair):
    a, b = pair()
    assert type(_streams.open_writer(a, 0)) is stock_files()[1]
    for bufsize in (-1, 1, 8192):
        writer = _streams.open_writer(a, bufsize)
        assert type(writer) is io.BufferedWriter
        writer.close()

    class Sub(socket.socket):
        pass

    sub = Sub(socket.AF_INET, socket.SOCK_STREAM)
    try:
        assert type(_streams.open_writer(sub, 0)) is csockserver._SocketWriter
    finally:
        sub.close()


def test_disable_nagle_only_touches_tcp(pair):
    a, b = pair("tcp")
    assert not a.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    _streams.disable_nagle(a)
    assert a.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    # No Nagle to turn off on these, and no error either.
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        _streams.disable_nagle(udp)
    finally:
        udp.close()
    if HAVE_UNIX:
        u, v = pair("unix")
        _streams.disable_nagle(u)


SERVERS = {
    "tcp": "TCPServer",
    "threading_tcp": "ThreadingTCPServer",
    "unix": "UnixStreamServer",
}


@pytest.fixture(params=[pytest.param(kind, marks=needs_unix)
                        if kind == "unix" else kind for kind in SERVERS])
def server_kind(request):
    return request.param


def probe_server(impl, kind, unix_path, **attrs):
    """impl's *kind* server whose handler notes what setup() gave it.

    The handler reads one line and answers it upper-cased; what it saw goes
    to ``server.seen`` before the answer, so it is there once the client
    has its answer.
    """
    class Probe(impl.StreamRequestHandler):
        def handle(self):
            line = self.rfile.readline()
            conn = self.connection
            info = {"rfile": type(self.rfile), "wfile": type(self.wfile),
                    "timeout": conn.gettimeout()}
            if conn.family in (socket.AF_INET, socket.AF_INET6):
                info["nodelay"] = bool(conn.getsockopt(
                    socket.IPPROTO_TCP, socket.TCP_NODELAY))
            self.server.seen.append(info)
            self.wfile.write(line.upper())
            self.wfile.flush()

    handler = type("Probe", (Probe,), attrs)
    address = unix_path() if kind == "unix" else ("127.0.0.1", 0)
    server = getattr(impl, SERVERS[kind])(address, handler)
    server.seen = []
    return server


def ask_probe(server, line=b"hello\n"):
    with serving(server):
        client = stream_client(server)
        try:
            client.sendall(line)
            assert recv_line(client) == line.upper()
        finally:
            client.close()
    assert len(server.seen) == 1
    return server.seen[0]


def expected_types(attrs):
    reader, writer = stock_files()
    rbufsize = attrs.get("rbufsize", -1)
    wbufsize = attrs.get("wbufsize", 0)
    if rbufsize == 0:
        reader = socket.SocketIO
    elif rbufsize != -1:
        reader = io.BufferedReader
    if wbufsize != 0:
        writer = io.BufferedWriter
    return reader, writer


HANDLER_SETTINGS = {
    "stock": {},
    "timeout": {"timeout": 5.0},
    "rbufsize 8192": {"rbufsize": 8192},
    "rbufsize 0": {"rbufsize": 0},
    "rbufsize 1": {"rbufsize": 1},
    "wbufsize 8192": {"wbufsize": 8192},
    "wbufsize -1": {"wbufsize": -1},
    "both changed": {"rbufsize": 4096, "wbufsize": 4096},
    "nagle left alone": {"disable_nagle_algorithm": False},
}


@pytest.mark.parametrize("setting", list(HANDLER_SETTINGS))
def test_handler_files(server_kind, unix_path, setting):
    """Stock sizes (with or without a timeout) get the compiled files on
    the compiled engine; changed sizes and the pure engine get the stdlib's
    files."""
    attrs = HANDLER_SETTINGS[setting]
    seen = ask_probe(probe_server(csockserver, server_kind, unix_path,
                                  **attrs))
    assert (seen["rfile"], seen["wfile"]) == expected_types(attrs)
    assert seen["timeout"] == attrs.get("timeout")


@pytest.mark.parametrize("server_kind", ["tcp", "threading_tcp"])
@pytest.mark.parametrize("disable", [None, True, False])
def test_tcp_nodelay(unix_path, server_kind, disable):
    """TCP_NODELAY is on by default (the stdlib leaves it off); a handler
    with disable_nagle_algorithm = False keeps the kernel's default."""
    attrs = {} if disable is None else {"disable_nagle_algorithm": disable}
    seen = ask_probe(probe_server(csockserver, server_kind, unix_path,
                                  **attrs))
    assert seen["nodelay"] is (disable is not False)
    stdlib = ask_probe(probe_server(socketserver, server_kind, unix_path,
                                    **attrs))
    assert stdlib["nodelay"] is (disable is True)


@needs_unix
def test_unix_handler_with_the_nagle_default(unix_path):
    assert csockserver.StreamRequestHandler.disable_nagle_algorithm is True
    seen = ask_probe(probe_server(csockserver, "unix", unix_path))
    assert "nodelay" not in seen
    assert (seen["rfile"], seen["wfile"]) == stock_files()


# -- a real protocol through a real server -----------------------------------

def framing_handler(impl, **attrs):
    """A small protocol that uses most of rfile: a header line with a size,
    a body of that size, the answer back reversed; b"L<limit>" asks for the
    next line in readline(limit) pieces; b"Q" reads everything left."""
    class Framing(impl.StreamRequestHandler):
        def handle(self):
            while True:
                header = self.rfile.readline(64)
                if not header:
                    return
                if header.startswith(b"L"):
                    limit = int(header[1:])
                    pieces = [self.rfile.readline(limit)]
                    while pieces[-1] and not pieces[-1].endswith(b"\n"):
                        pieces.append(self.rfile.readline(limit))
                    self.wfile.write(b"|".join(pieces))
                elif header.startswith(b"Q"):
                    rest = self.rfile.read()
                    self.wfile.write(b"%d\n" % len(rest))
                    self.wfile.writelines([rest[:10], rest[10:]])
                    return
                else:
                    body = self.rfile.read(int(header))
                    self.wfile.write(memoryview(body[::-1]))
                    self.wfile.write(bytearray(b"\n"))
                # A buffered wfile (wbufsize != 0) holds replies until then.
                self.wfile.flush()

    return type("Framing", (Framing,), attrs)


def talk_framing(server, sizes):
    """Send each body as header + body in awkward pieces; check replies."""
    client = stream_client(server)
    try:
        for size in sizes:
            body = os.urandom(size).replace(b"\n", b"-")
            message = b"%d\n" % size + body
            sender = Background(
                lambda m=message: [client.sendall(m[i:i + 7777])
                                   for i in range(0, len(m), 7777)])
            reply = recv_exactly(client, size + 1)
            sender.join()
            assert reply == body[::-1] + b"\n"
        client.sendall(b"L4\n0123456789\n")
        assert recv_line(client) == b"0123|4567|89\n"
        client.sendall(b"L100\n" + b"x" * 300 + b"\n")
        assert recv_exactly(client, 304) == b"|".join([b"x" * 100] * 3
                                                      + [b"\n"])
        client.sendall(b"Q\nthe rest, then end of file")
        client.shutdown(socket.SHUT_WR)
        assert recv_line(client) == b"26\n"
        assert recv_exactly(client, 27) == b"the rest, then end of file"
    finally:
        client.close()


@pytest.mark.parametrize("impl_name", ["stdlib", "csock"])
@pytest.mark.parametrize("setting", ["stock", "timeout", "rbufsize 8192",
                                     "wbufsize 8192"])
def test_framing_protocol(server_kind, unix_path, impl_name, setting):
    """The same conversation gets the same answers from socketserver and
    from csockserver, whichever files the handler ends up with."""
    impl = socketserver if impl_name == "stdlib" else csockserver
    address = unix_path() if server_kind == "unix" else ("127.0.0.1", 0)
    handler = framing_handler(impl, **HANDLER_SETTINGS[setting])
    server = getattr(impl, SERVERS[server_kind])(address, handler)
    with serving(server):
        talk_framing(server, [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 100000,
                              2 * MiB])
