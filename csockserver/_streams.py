"""The files StreamRequestHandler reads and writes its connection through.

With the compiled engine, a plain ``socket.socket`` and the stock buffer
sizes (``rbufsize == -1``, ``wbufsize == 0``):

- ``rfile`` is the engine's SocketReader, which does what
  ``makefile('rb')`` does with the buffer and the syscalls in C;
- ``wfile`` is a ``_SocketWriter`` whose ``write()`` sends in C.

Anything else -- another buffer size, a socket subclass such as
``ssl.SSLSocket``, a non-blocking socket, an object that only looks like a
socket, the pure-Python engine -- gets exactly the standard library's files.
"""

import _socket
import socket
from io import BufferedIOBase

from ._engine import engine

STOCK_RBUFSIZE = -1
STOCK_WBUFSIZE = 0
_TCP_FAMILIES = (socket.AF_INET, socket.AF_INET6)
# The C-level attributes under socket.socket's enum-building properties:
# this runs once per connection.
_family_of = _socket.socket.family.__get__
_type_of = _socket.socket.type.__get__


class _SocketWriter(BufferedIOBase):
    """An unbuffered, write-only file over a socket: each write is sent whole
    (socketserver's ``_SocketWriter``, under the same name)."""

    def __init__(self, sock):
        self._sock = sock

    def writable(self):
        return True

    def write(self, b):
        self._sock.sendall(b)
        with memoryview(b) as view:
            return view.nbytes

    def fileno(self):
        return self._sock.fileno()


# None with the pure engine: then the standard library's files serve.
_CompiledReader = engine.SocketReader
_compiled_write = engine.socket_writer_write

if _compiled_write is not None:
    class _CompiledSocketWriter(_SocketWriter):
        """_SocketWriter with write() in C; all else is inherited."""

        write = _compiled_write
else:
    _CompiledSocketWriter = None


def open_reader(sock, bufsize):
    """``rfile`` for *sock*: what ``sock.makefile('rb', bufsize)`` gives."""
    if (_CompiledReader is not None and bufsize == STOCK_RBUFSIZE
            and type(sock) is socket.socket and sock.gettimeout() != 0.0):
        return _CompiledReader(sock)
    return sock.makefile("rb", bufsize)


def open_writer(sock, bufsize):
    """``wfile`` for *sock*: a _SocketWriter when *bufsize* is 0 (as the
    stdlib's handler), else ``sock.makefile('wb', bufsize)``."""
    if bufsize != STOCK_WBUFSIZE:
        return sock.makefile("wb", bufsize)
    if _CompiledSocketWriter is not None and type(sock) is socket.socket:
        return _CompiledSocketWriter(sock)
    return _SocketWriter(sock)


def disable_nagle(sock):
    """Set TCP_NODELAY on a TCP socket; other kinds of socket have no Nagle
    algorithm to turn off, and are left alone."""
    if (isinstance(sock, socket.socket) and _family_of(sock) in _TCP_FAMILIES
            and _type_of(sock) == socket.SOCK_STREAM):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
