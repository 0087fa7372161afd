"""What the stream-file tests share: socket pairs, the files under test and
small helpers.

test_stream_reader, test_stream_fuzz, test_stream_writer and
test_handler_files import its helpers as a plain module, as they import
conftest (pytest puts tests/ on sys.path).  conftest loads it as a plugin,
so its fixtures are found by name like conftest's own; none is autouse, and
those four modules ask for the leak check with
``pytestmark = pytest.mark.usefixtures("no_leaks")``.

Every socket carries a timeout and every thread is joined under a deadline,
so a failure cannot hang; ``no_leaks`` makes sure each test gives back the
fds and threads it took.
"""

import contextlib
import select
import signal
import socket
import socketserver
import threading
import time

import pytest

import csockserver
from csockserver._engine import streams as _streams
from conftest import (CLIENT_TIMEOUT, HAVE_UNIX, JOIN_TIMEOUT, LeakCheck,
                      reset_on_close)


COMPILED = csockserver.IMPLEMENTATION == "cython"
if COMPILED:
    from csockserver._cengine import SocketReader
else:
    SocketReader = None
# csockserver._SocketWriter with write() in C; None on the pure engine.
CompiledSocketWriter = _streams._CompiledSocketWriter

needs_compiled = pytest.mark.skipif(
    not COMPILED, reason="the compiled engine is not loaded")

# The buffer size these tests give readers (both kinds, explicitly): one
# refill's size.  8 KiB, io.DEFAULT_BUFFER_SIZE up to Python 3.13, on every
# interpreter, so that the data a test queues (100,000 bytes fit a unix
# socket's buffer) spans several refills; the stock size, which follows
# io.DEFAULT_BUFFER_SIZE, is tested on its own.
CHUNK = 8192
# A short socket timeout, for tests that wait for one to pass.
SHORT = 0.2
MiB = 1 << 20


@pytest.fixture
def no_leaks():
    """Every test gives back the fds and threads it took."""
    leaks = LeakCheck()
    yield
    leaks.check()


# -- sockets, files and threads that clean up after themselves ---------------

def socket_pair(kind, timeout=CLIENT_TIMEOUT):
    """Two connected stream sockets: "unix" (socketpair) or "tcp" (loopback).

    Both are plain ``socket.socket`` objects and both carry *timeout*.
    """
    if kind == "unix":
        a, b = socket.socketpair()
    else:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.settimeout(CLIENT_TIMEOUT)
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            b = socket.create_connection(listener.getsockname(),
                                         CLIENT_TIMEOUT)
            try:
                a, _ = listener.accept()
            except BaseException:
                b.close()
                raise
        finally:
            listener.close()
    a.settimeout(timeout)
    b.settimeout(timeout)
    return a, b


KINDS = ["unix", "tcp"] if HAVE_UNIX else ["tcp"]

# Sizes where a buffer of 16, 100 or 8192 bytes fills up or runs out.
EDGES = sorted({edge + delta for edge in (16, 100, CHUNK, 2 * CHUNK)
                for delta in (-1, 0, 1)} | {0, 1, 2})


def send_and_close(sock, data, chunks=None, pauses=()):
    """Send data (in *chunks*, pausing after the indexes in *pauses*), then
    shut the write side down so the reader sees end of file."""
    chunks = chunks or [data]
    for index, chunk in enumerate(chunks):
        sock.sendall(chunk)
        if index in pauses:
            time.sleep(0.001)
    sock.shutdown(socket.SHUT_WR)


class Background:
    """fn() in a thread; ``join()`` waits (bounded) and re-raises."""

    def __init__(self, fn, *args):
        self.result = None
        self.error = None
        self.thread = threading.Thread(target=self._run, args=(fn,) + args,
                                       name="stream-test-helper",
                                       daemon=True)
        self.thread.start()

    def _run(self, fn, *args):
        try:
            self.result = fn(*args)
        except BaseException as exc:  # re-raised by join()
            self.error = exc

    def join(self, timeout=JOIN_TIMEOUT, reraise=True):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "helper thread hung"
        if reraise and self.error is not None:
            raise self.error
        return self.result


@pytest.fixture
def stack():
    """An ExitStack unwound at teardown (last registered, first closed)."""
    with contextlib.ExitStack() as exits:
        yield exits


@pytest.fixture
def pair(stack):
    """``pair(kind="unix", timeout=...)``: a socket pair closed at teardown."""
    def make(kind="unix", timeout=CLIENT_TIMEOUT):
        a, b = socket_pair(kind, timeout)
        stack.callback(b.close)
        stack.callback(a.close)
        return a, b
    return make


@pytest.fixture
def background(stack):
    """``background(fn, *args)``: a Background joined at teardown."""
    def start(fn, *args):
        helper = Background(fn, *args)
        stack.callback(helper.join, JOIN_TIMEOUT, False)
        return helper
    return start


def recv_exactly(sock, size):
    """*size* bytes from sock (fewer only if the peer closes first)."""
    got = bytearray()
    while len(got) < size:
        chunk = sock.recv(min(size - len(got), 1 << 18))
        if not chunk:
            break
        got += chunk
    return bytes(got)


def outcome(fn, *args):
    """What fn(*args) did: ("ok", result) or (exception type, message)."""
    try:
        return ("ok", fn(*args))
    except Exception as exc:
        return (type(exc), str(exc))


# -- resets and signals, for readers and writers alike -----------------------

def reset_by_peer(pair):
    """A TCP pair whose peer has just reset the connection (RST)."""
    a, b = pair("tcp")
    a.sendall(b"never read by the peer")
    reset_on_close(b)
    b.close()
    readable, _, _ = select.select([a], [], [], CLIENT_TIMEOUT)
    assert readable, "no reset arrived"
    return a


class Interrupted(Exception):
    """Raised by a signal handler to stop a blocking call."""


@contextlib.contextmanager
def sigusr1_handler(handler):
    previous = signal.signal(signal.SIGUSR1, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGUSR1, previous)


def interrupt_main_thread(delay, then=None):
    """A thread that sends SIGUSR1 to this (main) thread after *delay*,
    waits a little for the handler to run, then calls then()."""
    main = threading.main_thread().ident
    assert threading.get_ident() == main, "signals need the main thread"

    def run():
        time.sleep(delay)
        signal.pthread_kill(main, signal.SIGUSR1)
        time.sleep(0.3)
        return then() if then else None
    return Background(run)


# -- the implementations -----------------------------------------------------

def makefile_reader(sock, buffer_size=CHUNK):
    return sock.makefile("rb", buffer_size)


def compiled_reader(sock, buffer_size=CHUNK):
    return SocketReader(sock, buffer_size)


READERS = {"makefile": makefile_reader, "compiled": compiled_reader}
WRITERS = {"stdlib": socketserver._SocketWriter,
           "python": csockserver._SocketWriter,
           "compiled": CompiledSocketWriter}


def implementations(names):
    """*names* as fixture params, "compiled" skipped without the engine."""
    return [pytest.param(name, marks=needs_compiled) if name == "compiled"
            else name for name in names]


@pytest.fixture(params=implementations(READERS))
def make_reader(request):
    """Opens a reader: ``sock.makefile('rb')`` or the compiled SocketReader."""
    return READERS[request.param]


@pytest.fixture(params=implementations(WRITERS))
def make_writer(request):
    """Opens a writer: the stdlib's _SocketWriter, ours or the compiled one."""
    return WRITERS[request.param]
