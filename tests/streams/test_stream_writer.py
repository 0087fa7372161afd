"""wfile: the writers against the standard library's ``_SocketWriter``.

StreamRequestHandler's stock wfile is ``socketserver._SocketWriter``.
csockserver's pure-Python ``_SocketWriter`` is the stdlib's, under the same
name, and with the compiled engine ``_streams._CompiledSocketWriter`` is
that class with ``write()`` in C.  The three run side by side over real
sockets and must send the same bytes and raise the same exceptions and
messages: there is no deliberate difference, so even a closed writer still
sends, as the stdlib's does.

Only the compiled writer skips on the pure-Python engine; the stdlib's and
ours are tested on both.
"""

import array
import io
import os
import socket
import socketserver
import threading
import time

import pytest

import csockserver
from csockserver._engine import streams as _streams
from tests.support.clients import recv_exactly
from tests.support.sockets import KINDS, reset_by_peer
from tests.support.streams import (COMPILED, SHORT, WRITERS,
                                   CompiledSocketWriter, Interrupted, MiB,
                                   implementations, interrupt_main_thread,
                                   outcome, sigusr1_handler)

# Every test gives back the fds and threads it took.
pytestmark = pytest.mark.usefixtures("no_leaks")


# -- resets, timeouts, signals -----------------------------------------------

def test_reset_while_writing(pair, make_writer):
    """Writing to a connection the peer reset fails as sendall() fails."""
    a = reset_by_peer(pair)
    writer = make_writer(a)
    with pytest.raises((ConnectionResetError, BrokenPipeError)):
        for _ in range(100):
            writer.write(b"x" * 65536)


@pytest.mark.parametrize("kind", KINDS)
def test_write_timeout_bounds_the_whole_send(pair, make_writer, kind):
    """The socket's timeout bounds a whole write(), as with sendall()."""
    a, b = pair(kind, timeout=SHORT)
    writer = make_writer(a)
    started = time.monotonic()
    with pytest.raises(socket.timeout) as caught:
        writer.write(b"x" * (64 * MiB))
    assert caught.type is socket.timeout
    assert time.monotonic() - started < SHORT + 2.0


def test_write_on_a_nonblocking_socket(pair, make_writer):
    """Timeout 0.0: a write that does not fit raises BlockingIOError, as
    sendall() does."""
    a, b = pair("unix")
    a.setblocking(False)
    writer = make_writer(a)
    assert writer.write(b"fits") == 4
    with pytest.raises(BlockingIOError):
        writer.write(b"x" * (8 * MiB))
    with pytest.raises(BlockingIOError):
        writer.write(b"x")


@pytest.mark.parametrize("timeout", [None, 10.0])
def test_write_interrupted_by_a_signal_sends_everything(pair, make_writer,
                                                        timeout):
    """A signal while write() waits for the peer: the Python handler runs
    then and there, and the write goes on to send every byte."""
    data = os.urandom(8 * MiB)
    a, b = pair("unix")
    a.settimeout(timeout)
    draining = threading.Event()
    handled = []

    def drain():
        draining.set()
        return recv_exactly(b, len(data))

    def handler(signum, frame):
        handled.append(draining.is_set())

    with sigusr1_handler(handler):
        helper = interrupt_main_thread(0.2, drain)
        try:
            assert make_writer(a).write(data) == len(data)
        finally:
            got = helper.join()
    assert handled == [False], "the handler did not run during the write"
    assert got == data


def test_signal_handler_that_raises_stops_the_write(pair, make_writer):
    a, b = pair("unix")

    def handler(signum, frame):
        raise Interrupted()

    with sigusr1_handler(handler):
        helper = interrupt_main_thread(0.2)
        try:
            with pytest.raises(Interrupted):
                make_writer(a).write(b"x" * (8 * MiB))
        finally:
            helper.join()


# -- writing -----------------------------------------------------------------

@pytest.mark.parametrize("payload", [
    b"bytes",
    bytearray(b"bytearray"),
    memoryview(b"a memoryview"),
    memoryview(b"0123456789")[2:7],
    array.array("i", [1, -2, 3, 1 << 30]),
    memoryview(bytearray(range(12))).cast("B", (3, 4)),
    b"",
], ids=["bytes", "bytearray", "memoryview", "sliced memoryview",
        "array_i", "memoryview2d", "empty"])
def test_write_any_bytes_like(pair, make_writer, payload):
    a, b = pair()
    writer = make_writer(a)
    expected = memoryview(payload).tobytes()
    assert writer.write(payload) == memoryview(payload).nbytes == len(expected)
    a.sendall(b"|")
    assert recv_exactly(b, len(expected) + 1) == expected + b"|"


@pytest.mark.parametrize("bad", ["text", None, 3, [b"x"]],
                         ids=["str", "None", "int", "list"])
def test_write_refuses_what_is_not_bytes_like(pair, make_writer, bad):
    a, b = pair()
    with pytest.raises(TypeError):
        make_writer(a).write(bad)


def test_write_non_contiguous_is_refused_like_sendall(pair, make_writer):
    a, b = pair()
    with pytest.raises(BufferError):
        make_writer(a).write(memoryview(b"abcdef")[::2])


def test_writelines(pair, make_writer):
    a, b = pair()
    writer = make_writer(a)
    assert writer.writelines([b"one ", bytearray(b"two "),
                              memoryview(b"three")]) is None
    assert recv_exactly(b, 13) == b"one two three"


def test_writer_reports_like_the_stdlib_one(pair, make_writer):
    a, b = pair()
    writer = make_writer(a)
    assert isinstance(writer, io.BufferedIOBase)
    assert writer.writable()
    assert not writer.readable()
    assert not writer.seekable()
    assert not writer.isatty()
    assert writer.fileno() == a.fileno()
    assert writer.flush() is None
    assert not writer.closed
    with writer as entered:
        assert entered is writer
    assert writer.closed
    b.sendall(b"the socket stays open")
    assert a.recv(100) == b"the socket stays open"


def test_write_after_close_still_sends(pair, make_writer):
    """Closing the writer only marks it closed: write() goes on sending,
    as the stdlib's _SocketWriter does, and refuses what it refuses."""
    a, b = pair()
    writer = make_writer(a)
    writer.close()
    assert writer.closed
    assert writer.write(b"after ") == 6
    assert writer.write(bytearray(b"close")) == 5
    assert writer.write(b"") == 0
    with pytest.raises(TypeError):
        writer.write("not bytes")
    a.close()
    assert recv_exactly(b, 100) == b"after close"


@pytest.fixture(params=implementations(["python", "compiled"]))
def our_writer(request):
    """Our writer classes (not the stdlib's reference)."""
    return WRITERS[request.param]


# All of the io.BufferedIOBase interface, on a write-only file.
WRITER_CALLS = {
    "write": lambda f: f.write(b"x"),
    "write str": lambda f: f.write("x"),
    "writelines": lambda f: f.writelines([b"x"]),
    "flush": lambda f: f.flush(),
    "isatty": lambda f: f.isatty(),
    "with": lambda f: f.__enter__() is f,
    "fileno": lambda f: f.fileno() > 0,
    "writable": lambda f: f.writable(),
    "readable": lambda f: f.readable(),
    "seekable": lambda f: f.seekable(),
    "read": lambda f: f.read(),
    "read1": lambda f: f.read1(),
    "readinto": lambda f: f.readinto(bytearray(1)),
    "readinto1": lambda f: f.readinto1(bytearray(1)),
    "readline": lambda f: f.readline(),
    "readlines": lambda f: f.readlines(),
    "iter": lambda f: iter(f) is f,
    "next": lambda f: next(f),
    "tell": lambda f: f.tell(),
    "seek": lambda f: f.seek(0),
    "truncate": lambda f: f.truncate(),
    "detach": lambda f: f.detach(),
    "closed": lambda f: f.closed,
    "close again": lambda f: f.close(),
}


@pytest.mark.parametrize("closed", [False, True], ids=["open", "closed"])
@pytest.mark.parametrize("call", list(WRITER_CALLS))
def test_writer_answers_like_the_stdlib_one(pair, our_writer, closed, call):
    """Every method, open or closed: the stdlib's _SocketWriter's result,
    exception and message."""
    def scenario(make):
        a, b = pair()
        writer = make(a)
        if closed:
            writer.close()
        return outcome(WRITER_CALLS[call], writer)

    assert scenario(our_writer) == scenario(socketserver._SocketWriter)


def test_compiled_writer_is_our_writer_with_a_c_write():
    """What the compiled engine adds to _SocketWriter is write(), no more."""
    assert csockserver._SocketWriter is _streams._SocketWriter
    if not COMPILED:
        assert CompiledSocketWriter is None
        return
    from csockserver import _cengine
    assert issubclass(CompiledSocketWriter, csockserver._SocketWriter)
    assert CompiledSocketWriter.write is _cengine.socket_writer_write
    assert {name for name in vars(CompiledSocketWriter)
            if not name.startswith("_")} == {"write"}


@pytest.mark.parametrize("kind", KINDS)
def test_big_write_with_a_concurrent_reader(pair, make_writer, background,
                                            kind):
    data = os.urandom(6 * MiB)
    a, b = pair(kind)
    receiver = background(recv_exactly, b, len(data) + 1)
    writer = make_writer(a)
    assert writer.write(data) == len(data)
    assert writer.write(memoryview(data)[:1]) == 1
    assert receiver.join() == data + data[:1]
