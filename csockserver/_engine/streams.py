"""The files StreamRequestHandler reads and writes its connection through.

With the compiled engine, a plain ``socket.socket`` and the stock buffer
sizes (``rbufsize == -1``, ``wbufsize == 0``):

- ``rfile`` is the engine's SocketReader, which does what
  ``makefile('rb')`` does with the buffer and the syscalls in C;
- ``wfile`` is a ``_SocketWriter`` whose ``write()`` sends in C.

Anything else -- another buffer size, a socket subclass such as
``ssl.SSLSocket``, a non-blocking socket, an object that only looks like a
socket, the pure-Python engine -- gets exactly the standard library's files.

A read deadline (StreamRequestHandler.read_deadline, and the HTTP handlers'
request_timeout and keepalive_timeout) needs a reader whose waits stop at a
given time.  The compiled SocketReader has one built in; elsewhere the
reader is makefile()'s, over a ``_DeadlineSocketIO`` instead of a
``socket.SocketIO``.  Either way ``deadline_holder(rfile)`` is the object
whose ``deadline`` (a ``time.monotonic()`` time, or None) can be moved and
whose ``timed_out`` says whether a read timed out.
"""

import _socket
import io
import math
import select
import socket
from io import BufferedIOBase
from time import monotonic

from .selection import engine

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


# The least timeout a wait at or past a deadline is given: a positive
# one, so that queued data is still taken (a timeout of 0 would make the
# socket non-blocking, and ssl's sockets say so in errors of their own).
_LEAST_WAIT = 1e-6


class _DeadlineSocketIO(socket.SocketIO):
    """socket.SocketIO whose waits for data end by ``deadline``.

    Before each recv the socket's timeout is cut to the time left until
    ``deadline`` (a ``time.monotonic()`` time, or None for none), and put
    back afterwards, so a read that would wait past it raises the socket's
    own timeout exception, and SocketIO refuses to read on, as after any
    timeout.  A non-blocking socket never waits, and is left alone.
    """

    deadline = None

    def readinto(self, b):
        deadline = self.deadline
        if deadline is None:
            return socket.SocketIO.readinto(self, b)
        sock = self._sock
        timeout = sock.gettimeout()
        left = deadline - monotonic()
        if timeout == 0.0 or (timeout is not None and timeout <= left):
            return socket.SocketIO.readinto(self, b)
        sock.settimeout(left if left > _LEAST_WAIT else _LEAST_WAIT)
        try:
            return socket.SocketIO.readinto(self, b)
        finally:
            sock.settimeout(timeout)

    @property
    def timed_out(self):
        """Whether a read timed out (the reader refuses to read since)."""
        return self._timeout_occurred


def open_reader(sock, bufsize, deadline=None, movable=False):
    """``rfile`` for *sock*: what ``sock.makefile('rb', bufsize)`` gives.

    With *deadline* (a ``time.monotonic()`` time), or *movable* (a deadline
    will be set later), the reader's waits for data end by its deadline:
    see deadline_holder().  That needs a ``socket.socket`` (or a subclass);
    an object that only looks like one gets its own makefile(), without.
    """
    if (_CompiledReader is not None and bufsize == STOCK_RBUFSIZE
            and type(sock) is socket.socket and sock.gettimeout() != 0.0):
        # makefile('rb') reads io.DEFAULT_BUFFER_SIZE at each call.
        reader = _CompiledReader(sock, io.DEFAULT_BUFFER_SIZE)
        if deadline is not None:
            reader.deadline = deadline
        return reader
    if (deadline is None and not movable) or not isinstance(
            sock, socket.socket):
        return sock.makefile("rb", bufsize)
    # sock.makefile('rb', bufsize), step for step, over _DeadlineSocketIO.
    raw = _DeadlineSocketIO(sock, "rb")
    raw.deadline = deadline
    sock._io_refs += 1
    if bufsize < 0:
        bufsize = io.DEFAULT_BUFFER_SIZE
    if bufsize == 0:
        return raw
    return io.BufferedReader(raw, bufsize)


def deadline_holder(rfile):
    """What carries *rfile*'s read deadline, or None if it has none.

    The holder has ``deadline`` (read and write: a ``time.monotonic()``
    time, or None) and ``timed_out`` (read only).
    """
    if _CompiledReader is not None and type(rfile) is _CompiledReader:
        return rfile
    if isinstance(rfile, _DeadlineSocketIO):
        return rfile
    raw = getattr(rfile, "raw", None)
    if isinstance(raw, _DeadlineSocketIO):
        return raw
    return None


def wait_readable(rfile):
    """Wait until *rfile* has data or is at end of file, consuming nothing.

    The reader's deadline and its socket's timeout bound the wait, which
    raises the socket's timeout exception when they pass first.
    """
    peek = getattr(rfile, "peek", None)
    if peek is not None:
        peek(1)
        return
    # An unbuffered _DeadlineSocketIO (rbufsize 0) has no buffer to fill:
    # peek at the socket itself, under the reader's deadline.
    sock = rfile._sock
    if getattr(sock, "pending", None) is not None and sock.pending():
        return      # ssl has decrypted bytes waiting
    wait = sock.gettimeout()
    if wait == 0.0:
        return
    if rfile.deadline is not None:
        left = max(rfile.deadline - monotonic(), 0.0)
        wait = left if wait is None else min(wait, left)
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    if not poller.poll(None if wait is None else math.ceil(wait * 1e3)):
        rfile._timeout_occurred = True    # as a timed-out read would
        raise socket.timeout("timed out")


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
