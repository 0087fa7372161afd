"""The files StreamRequestHandler reads and writes its connection through.

With the compiled engine, a plain ``socket.socket`` and the stock buffer
sizes (``rbufsize == -1``, ``wbufsize == 0``), ``rfile`` and ``wfile`` are
the engine's SocketReader and SocketWriter: the same behaviour as
``makefile('rb')`` and ``_SocketWriter``, in C.  Anything else -- another
buffer size, a socket subclass such as ``ssl.SSLSocket``, a non-blocking
socket, the pure-Python engine -- gets exactly the standard library's files.
"""

import _socket
import socket

from ._engine import engine

_CompiledReader = getattr(engine, "SocketReader", None)
_CompiledWriter = getattr(engine, "SocketWriter", None)

STOCK_RBUFSIZE = -1
STOCK_WBUFSIZE = 0
_TCP_FAMILIES = (socket.AF_INET, socket.AF_INET6)
# The C-level attributes under socket.socket's enum-building properties:
# this runs once per connection.
_family_of = _socket.socket.family.__get__
_type_of = _socket.socket.type.__get__


def open_reader(sock, bufsize):
    """``rfile`` for *sock*: what ``sock.makefile('rb', bufsize)`` gives."""
    if (_CompiledReader is not None and bufsize == STOCK_RBUFSIZE
            and type(sock) is socket.socket and sock.gettimeout() != 0.0):
        return _CompiledReader(sock)
    return sock.makefile("rb", bufsize)


def open_writer(sock, bufsize, python_writer):
    """``wfile`` for *sock*: unbuffered when *bufsize* is 0, as the stdlib.

    *python_writer* is the pure-Python unbuffered writer class, used where
    the compiled one is not.
    """
    if bufsize != STOCK_WBUFSIZE:
        return sock.makefile("wb", bufsize)
    if _CompiledWriter is not None and type(sock) is socket.socket:
        return _CompiledWriter(sock)
    return python_writer(sock)


def disable_nagle(sock):
    """Set TCP_NODELAY on a TCP connection; other kinds of socket have no
    Nagle algorithm to turn off, and are left alone."""
    if (isinstance(sock, socket.socket) and _family_of(sock) in _TCP_FAMILIES
            and _type_of(sock) == socket.SOCK_STREAM):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
