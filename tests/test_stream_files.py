"""rfile and wfile: the compiled stream files against the standard library's.

With the compiled engine, StreamRequestHandler reads through the engine's
SocketReader and writes through ``_streams._CompiledSocketWriter``.  They
stand in for ``sock.makefile('rb')`` (a BufferedReader over
socket.SocketIO) and for ``socketserver._SocketWriter``, so every test here
runs the standard library's file beside ours over real sockets
(``socket.socketpair()`` and loopback TCP) and expects the same bytes, the
same exceptions and the same messages.  The writers have no deliberate
difference: ``_CompiledSocketWriter`` is csockserver's pure-Python
``_SocketWriter`` (the stdlib's, under the same name) with ``write()`` in C,
so even a closed writer still sends, as the stdlib's does.

Tests of the compiled classes themselves skip on the pure-Python engine;
the handler-level tests (which files setup() picks, TCP_NODELAY, a real
server's behaviour) and the writer tests of our pure-Python _SocketWriter
run on both.

Accepted differences between SocketReader and makefile('rb'), pinned by
``test_accepted_differences`` rather than compared:

- SocketReader has no ``.raw`` (there is no SocketIO under it), and its
  ``detach()`` raises io.UnsupportedOperation instead of handing one over;
- after a ``read(n)`` larger than the buffer, how much is left buffered can
  differ: BufferedReader reads whole buffers straight from the socket and
  refills for the rest, SocketReader reads the exact remainder.  Neither
  takes more than one buffer (8 KiB) ahead of what it returns.

Every socket carries a timeout and every thread is joined under a deadline,
so a failure cannot hang; an autouse check makes sure each test gives back
the fds and threads it took.
"""

import array
import contextlib
import errno
import fcntl
import gc
import io
import os
import random
import select
import signal
import socket
import socketserver
import struct
import subprocess
import termios
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import csockserver
from csockserver import _streams
from conftest import (CLIENT_TIMEOUT, HAVE_UNIX, JOIN_TIMEOUT, PYTHON,
                      LeakCheck, child_env, needs_unix, recv_line, serving,
                      stream_client)

COMPILED = csockserver.IMPLEMENTATION == "cython"
if COMPILED:
    from csockserver._cengine import SocketReader
else:
    SocketReader = None
# csockserver._SocketWriter with write() in C; None on the pure engine.
CompiledSocketWriter = _streams._CompiledSocketWriter

needs_compiled = pytest.mark.skipif(
    not COMPILED, reason="the compiled engine is not loaded")

# BufferedReader's default, and SocketReader's: one refill's size.
CHUNK = io.DEFAULT_BUFFER_SIZE
# A short socket timeout, for tests that wait for one to pass.
SHORT = 0.2
MiB = 1 << 20


@pytest.fixture(autouse=True)
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


class Background:
    """fn() in a thread; ``join()`` waits (bounded) and re-raises."""

    def __init__(self, fn, *args):
        self.result = None
        self.error = None
        self.thread = threading.Thread(target=self._run, args=(fn,) + args,
                                       name="stream-files-helper",
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


def send_and_close(sock, data, chunks=None, pauses=()):
    """Send data (in *chunks*, pausing after the indexes in *pauses*), then
    shut the write side down so the reader sees end of file."""
    chunks = chunks or [data]
    for index, chunk in enumerate(chunks):
        sock.sendall(chunk)
        if index in pauses:
            time.sleep(0.001)
    sock.shutdown(socket.SHUT_WR)


def recv_exactly(sock, size):
    """*size* bytes from sock (fewer only if the peer closes first)."""
    got = bytearray()
    while len(got) < size:
        chunk = sock.recv(min(size - len(got), 1 << 18))
        if not chunk:
            break
        got += chunk
    return bytes(got)


def queued(sock):
    """How many bytes wait in sock's receive queue (not yet recv()'d)."""
    raw = fcntl.ioctl(sock.fileno(), termios.FIONREAD, struct.pack("i", 0))
    return struct.unpack("i", raw)[0]


def outcome(fn, *args):
    """What fn(*args) did: ("ok", result) or (exception type, message)."""
    try:
        return ("ok", fn(*args))
    except Exception as exc:
        return (type(exc), str(exc))


# -- the implementations -----------------------------------------------------

def makefile_reader(sock, buffer_size=CHUNK):
    return sock.makefile("rb", buffer_size)


def compiled_reader(sock, buffer_size=CHUNK):
    return SocketReader(sock, buffer_size)


READERS = {"makefile": makefile_reader, "compiled": compiled_reader}
WRITERS = {"stdlib": socketserver._SocketWriter,
           "python": csockserver._SocketWriter,
           "compiled": CompiledSocketWriter}


@pytest.fixture(params=list(READERS))
def make_reader(request):
    """Opens a reader: ``sock.makefile('rb')`` or the compiled SocketReader."""
    if request.param == "compiled" and not COMPILED:
        pytest.skip("the compiled engine is not loaded")
    return READERS[request.param]


@pytest.fixture(params=list(WRITERS))
def make_writer(request):
    """Opens a writer: the stdlib's _SocketWriter, ours or the compiled one."""
    if request.param == "compiled" and not COMPILED:
        pytest.skip("the compiled engine is not loaded")
    return WRITERS[request.param]


@pytest.fixture
def reader_on(stack, make_reader):
    """``reader_on(sock, buffer_size=8192)``: a reader closed at teardown."""
    def open_(sock, buffer_size=CHUNK):
        reader = make_reader(sock, buffer_size)
        stack.callback(reader.close)
        return reader
    return open_


def twins(scenario):
    """scenario(make_reader) run on makefile() and on SocketReader.

    Returns both results (reference first), for a test to compare.
    """
    return [scenario(makefile_reader), scenario(compiled_reader)]


# -- random scripts: the same reads on both readers --------------------------

def random_bytes(rng, size):
    """size reproducible bytes without a newline (3.8 has no randbytes)."""
    if size == 0:
        return b""
    return rng.getrandbits(8 * size).to_bytes(size, "little").replace(
        b"\n", b"~")


# Sizes where a buffer of 16, 100 or 8192 bytes fills up or runs out.
EDGES = sorted({edge + delta for edge in (16, 100, CHUNK, 2 * CHUNK)
                for delta in (-1, 0, 1)} | {0, 1, 2})


@st.composite
def streams(draw):
    """What the peer sends: lines of random sizes, some longer than a
    buffer, the last one maybe without its newline."""
    sizes = draw(st.lists(st.one_of(st.integers(0, 64), st.sampled_from(EDGES),
                                    st.integers(65, 3 * CHUNK)),
                          max_size=10))
    rng = random.Random(draw(st.integers(0, 2 ** 32 - 1)))
    lines = [random_bytes(rng, size) + b"\n" for size in sizes]
    if draw(st.booleans()):
        lines.append(random_bytes(rng, draw(st.integers(1, 2 * CHUNK))))
    return b"".join(lines)


@st.composite
def chunkings(draw, data):
    """How the peer cuts the stream into sends, and where it pauses."""
    cuts = sorted(set(draw(st.lists(st.integers(0, len(data)),
                                    max_size=20))))
    bounds = [0] + cuts + [len(data)]
    chunks = [data[start:end] for start, end in zip(bounds, bounds[1:])
              if end > start]
    pauses = draw(st.sets(st.integers(0, 20), max_size=5))
    return chunks, pauses


SIZES = st.one_of(st.integers(0, 40), st.sampled_from(EDGES),
                  st.integers(0, 3 * CHUNK))

OPS = st.one_of(
    st.tuples(st.just("read"), SIZES),
    st.tuples(st.just("read1"), st.one_of(SIZES, st.just(-1))),
    st.tuples(st.just("readline"), st.one_of(SIZES, st.just(-1),
                                             st.none())),
    st.tuples(st.just("readinto"), SIZES),
    st.tuples(st.just("readinto1"), SIZES),
    st.tuples(st.just("peek_read"), st.tuples(st.integers(0, 100), SIZES)),
    st.tuples(st.just("next"), st.integers(1, 3)),
    st.tuples(st.just("readlines"), st.integers(1, 2 * CHUNK)),
)
# The last step reads to end of file, one way or another.
READ_TO_END_ARGS = {"read()": (), "read(None)": (None,), "read(-1)": (-1,)}
TAILS = st.sampled_from(list(READ_TO_END_ARGS) + [
    "readlines()", "list(f)", "readline loop"])


class Script:
    """Plays read operations on a reader and logs what they returned.

    The log is the same on both readers for anything the io contract pins
    down.  How much read1(), readinto1() and peek() return depends on what
    has arrived and on the buffering strategy, so those are checked against
    the stream (a non-empty prefix of what is left, unless at end of file)
    and then topped up with read() to the size asked for: both readers then
    stand at the same point of the stream again.
    """

    def __init__(self, reader, data, buffer_size):
        self.f = reader
        self.data = data
        self.buffer_size = buffer_size
        self.pos = 0
        self.log = []

    def took(self, chunk):
        assert self.data[self.pos:self.pos + len(chunk)] == chunk
        self.pos += len(chunk)
        return chunk

    def check_partial(self, got, asked):
        """One raw read at most: some bytes unless at end of file."""
        assert len(got) <= asked
        if asked > 0:
            assert got or self.pos == len(self.data), "empty before EOF"
        assert self.data[self.pos:self.pos + len(got)] == got

    def play(self, op, arg):
        f = self.f
        if op == "read":
            self.log.append(self.took(f.read(arg)))
        elif op == "read1":
            asked = self.buffer_size if arg < 0 else arg
            got = f.read1(arg)
            self.check_partial(got, asked)
            if len(got) < asked:
                got += f.read(asked - len(got))
            self.log.append(("read1", self.took(got)))
        elif op == "readline":
            self.log.append(self.took(f.readline(arg)))
        elif op in ("readinto", "readinto1"):
            buffer = bytearray(arg)
            count = getattr(f, op)(buffer)
            if op == "readinto1":
                self.check_partial(bytes(buffer[:count]), arg)
                if count < arg:
                    count += f.readinto(memoryview(buffer)[count:])
            self.log.append((op, count, self.took(bytes(buffer[:count]))))
        elif op == "peek_read":
            size, then = arg
            peeked = f.peek(size)
            self.check_partial(peeked, self.buffer_size)
            if self.pos < len(self.data):
                assert peeked, "peek() empty before EOF"
            self.log.append(("peek+read", self.took(f.read(then))))
        elif op == "next":
            lines = []
            for _ in range(arg):
                try:
                    lines.append(self.took(next(f)))
                except StopIteration:
                    lines.append(StopIteration)
                    break
            self.log.append(lines)
        elif op == "readlines":
            lines = f.readlines(arg)
            for line in lines:
                self.took(line)
            self.log.append(lines)
        else:
            raise AssertionError(op)

    def finish(self, tail):
        f = self.f
        if tail.startswith("read("):
            rest = f.read(*READ_TO_END_ARGS[tail])
            self.log.append(self.took(rest))
        else:
            if tail == "readlines()":
                lines = f.readlines()
            elif tail == "list(f)":
                lines = list(f)
            else:
                lines = list(iter(f.readline, b""))
            for line in lines:
                self.took(line)
            self.log.append(lines)
        assert self.pos == len(self.data)
        # At end of file, everything says so, and stays so.
        assert f.read() == f.read(10) == f.read1(10) == b""
        assert f.readline() == f.peek() == b""
        assert f.readinto(bytearray(4)) == 0
        assert f.readlines() == list(f) == []


def run_script(make, kind, data, chunking, buffer_size, ops, tail):
    """Play ops on make(sock) while a thread sends data as *chunking* says."""
    chunks, pauses = chunking
    a, b = socket_pair(kind)
    sender = None
    played = False
    try:
        reader = make(a, buffer_size)
        try:
            sender = Background(send_and_close, b, data, chunks, pauses)
            script = Script(reader, data, buffer_size)
            for op, arg in ops:
                script.play(op, arg)
            script.finish(tail)
            played = True
        finally:
            reader.close()
    finally:
        a.close()    # a sender still sending sees an error at once
        if sender is not None:
            # Its error matters only if the reads went well.
            sender.join(reraise=played)
        b.close()
    return script.log


@needs_compiled
@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(data=st.data(), stream=streams(),
       buffer_size=st.sampled_from([CHUNK, 16, 100]),
       ops=st.lists(OPS, max_size=12), tail=TAILS)
def test_random_reads_match_makefile(kind, data, stream, buffer_size, ops,
                                     tail):
    """Any chunking of the sender, any sequence of reads: SocketReader
    returns what makefile('rb') returns."""
    chunking = data.draw(chunkings(stream), label="chunking")
    expected = run_script(makefile_reader, kind, stream, chunking,
                          buffer_size, ops, tail)
    got = run_script(compiled_reader, kind, stream, chunking, buffer_size,
                     ops, tail)
    assert got == expected


GRID_OPS = ["read", "read1", "readline", "readinto", "readinto1",
            "peek_read", "next", "readlines"]


def edge_stream():
    """Lines whose lengths sit on the buffer edges, then a partial line."""
    rng = random.Random(8192)
    lengths = [0, 1, 2, 15, 16, 17, 99, 100, 101, CHUNK - 1, CHUNK,
               CHUNK + 1, 7]
    return b"".join(random_bytes(rng, size) + b"\n" for size in lengths) \
        + random_bytes(rng, 50)


def play_until_end(make, buffer_size, op, size):
    """op(size) again and again until end of file; the log."""
    data = edge_stream()
    a, b = socket_pair("unix")
    sender = Background(send_and_close, b, data,
                        [data[:CHUNK - 3], data[CHUNK - 3:]])
    played = False
    try:
        with make(a, buffer_size) as reader:
            script = Script(reader, data, buffer_size)
            arg = (1, size) if op == "peek_read" else size
            for _ in range(len(data) + 2):
                if script.pos == len(data):
                    break
                script.play(op, arg)
                if size == 0:
                    break
            script.finish("read()")
            played = True
    finally:
        a.close()
        sender.join(reraise=played)
        b.close()
    return script.log


@needs_compiled
@pytest.mark.parametrize("buffer_size", [16, 100, CHUNK])
@pytest.mark.parametrize("op", GRID_OPS)
def test_each_read_at_each_edge(op, buffer_size):
    """Every read operation, at every size on a buffer edge, repeated to
    end of file: SocketReader returns what makefile('rb') returns."""
    for size in EDGES:
        if op == "next" and size > 3:
            break      # next() takes a count of lines, not a size
        expected = play_until_end(makefile_reader, buffer_size, op, size)
        got = play_until_end(compiled_reader, buffer_size, op, size)
        assert got == expected, "%s(%d)" % (op, size)


# -- lines, limits and end of file -------------------------------------------

@pytest.mark.parametrize("buffer_size", [16, CHUNK])
def test_lines_longer_than_the_buffer(pair, reader_on, background,
                                      buffer_size):
    lines = [b"x" * size + b"\n" for size in
             (0, 1, 14, 15, 16, 17, 31, 32, 33, 1000, CHUNK - 1, CHUNK,
              CHUNK + 1, 3 * CHUNK + 5)]
    a, b = pair()
    background(send_and_close, b, b"".join(lines))
    reader = reader_on(a, buffer_size)
    assert [reader.readline() for _ in lines] == lines
    assert reader.readline() == b""


@pytest.mark.parametrize("buffer_size", [16, CHUNK])
def test_readline_limit_cuts_lines_into_pieces(pair, reader_on, background,
                                               buffer_size):
    data = b"a" * 40 + b"\n" + b"b" * 5 + b"\n" + b"c" * 30
    a, b = pair()
    background(send_and_close, b, data)
    reader = reader_on(a, buffer_size)
    assert reader.readline(17) == b"a" * 17
    assert reader.readline(0) == b""
    assert reader.readline(17) == b"a" * 17
    assert reader.readline(17) == b"a" * 6 + b"\n"
    assert reader.readline(6) == b"b" * 5 + b"\n"
    assert reader.readline(100) == b"c" * 30
    assert reader.readline(100) == b""


def test_readline_limit_on_a_one_mib_line(pair, reader_on, background):
    """readline(limit) returns exactly limit bytes of a 1 MiB line, and the
    rest of the line is still there to read."""
    line = os.urandom(MiB).replace(b"\n", b"~")
    a, b = pair("tcp")
    background(send_and_close, b, line + b"\ntail\n", [line, b"\ntail\n"])
    reader = reader_on(a)
    assert reader.readline(1000) == line[:1000]
    # No more buffered than one refill past the limit.
    assert 0 < len(reader.peek()) <= CHUNK
    assert reader.readline(300000) == line[1000:301000]
    assert 0 < len(reader.peek()) <= CHUNK
    assert reader.readline() == line[301000:] + b"\n"
    assert list(reader) == [b"tail\n"]


@pytest.mark.parametrize("limit", [1, 100, CHUNK - 1, CHUNK, CHUNK + 1,
                                   50000])
def test_readline_limit_takes_at_most_one_refill_more(pair, reader_on,
                                                      limit):
    """What readline(limit) takes off the socket: the limit, rounded up to
    at most one more refill, never the rest of the line."""
    line = b"z" * 100000
    a, b = pair("unix")
    b.sendall(line)        # it all fits in the socket buffer: no thread
    reader = reader_on(a)
    assert queued(a) == len(line)
    assert reader.readline(limit) == line[:limit]
    taken = len(line) - queued(a)
    assert limit <= taken < limit + CHUNK
    assert reader.read(len(line) - limit) == line[limit:]


@needs_compiled
def test_readline_limit_takes_as_much_as_makefile(pair):
    """...and exactly as much as makefile('rb') takes."""
    line = b"z" * 100000

    def taken(make):
        a, b = pair("unix")
        b.sendall(line)
        with make(a) as reader:
            reader.readline(100)
            first = len(line) - queued(a)
            reader.readline(20000)
            return first, len(line) - queued(a)

    assert taken(compiled_reader) == taken(makefile_reader)


@pytest.mark.parametrize("buffer_size", [16, CHUNK])
def test_end_of_file_in_mid_line(pair, reader_on, background, buffer_size):
    a, b = pair()
    background(send_and_close, b, b"complete\npartial", [b"complete\npa",
                                                         b"rtial"])
    reader = reader_on(a, buffer_size)
    assert reader.readline() == b"complete\n"
    assert reader.readline() == b"partial"
    assert reader.readline() == b""
    assert reader.read() == b""
    assert reader.read1(5) == b""
    assert reader.peek() == b""


def test_iteration_stops_at_end_of_file(pair, reader_on, background):
    a, b = pair()
    background(send_and_close, b, b"one\ntwo\nthree")
    reader = reader_on(a)
    assert iter(reader) is reader
    assert list(reader) == [b"one\n", b"two\n", b"three"]
    assert list(reader) == []


@pytest.mark.parametrize("hint", [1, 2, 3, 4, 5, 6, 7, 12, 13])
def test_readlines_hint_as_iobase_counts_it(pair, reader_on, background,
                                            hint):
    """readlines(hint) stops once the lines so far add up to *more* than
    hint: a total of exactly hint reads one more line (IOBase's rule, which
    BufferedReader inherits)."""
    data = b"ab\ncd\nef\ngh\n"
    a, b = pair()
    background(send_and_close, b, data)
    reader = reader_on(a)
    expected = io.BufferedReader(io.BytesIO(data)).readlines(hint)
    assert reader.readlines(hint) == expected
    assert reader.read() == data[len(b"".join(expected)):]


def test_read_sizes_across_refills(pair, reader_on, background):
    data = os.urandom(5 * CHUNK + 123)
    a, b = pair("tcp")
    background(send_and_close, b, data, [data[:7], data[7:CHUNK + 3],
                                         data[CHUNK + 3:]])
    reader = reader_on(a)
    sizes = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 7]
    got = [reader.read(size) for size in sizes]
    assert b"".join(got) == data[:sum(sizes)]
    assert [len(piece) for piece in got] == sizes
    assert reader.read(10 * CHUNK) == data[sum(sizes):]
    assert reader.read(10) == b""


@pytest.mark.parametrize("target", ["bytearray", "array", "memoryview2d"])
def test_readinto_any_writable_buffer(pair, reader_on, background, target):
    a, b = pair()
    background(send_and_close, b, bytes(range(24)) * 2)
    reader = reader_on(a)
    if target == "bytearray":
        buffer = bytearray(24)
        view = buffer
    elif target == "array":
        buffer = array.array("i", [0] * 6)
        view = buffer
    else:
        buffer = bytearray(24)
        view = memoryview(buffer).cast("B", (4, 6))
    assert reader.readinto(view) == 24
    assert bytes(buffer) == bytes(range(24))
    assert reader.readinto1(view) == 24
    assert bytes(buffer) == bytes(range(24))
    assert reader.readinto(view) == 0


# -- timeouts, resets, signals -----------------------------------------------

READ_CALLS = {
    "read": lambda f: f.read(5),
    "read()": lambda f: f.read(),
    "read1": lambda f: f.read1(5),
    "readline": lambda f: f.readline(),
    "readlines": lambda f: f.readlines(),
    "readinto": lambda f: f.readinto(bytearray(5)),
    "readinto1": lambda f: f.readinto1(bytearray(5)),
    "peek": lambda f: f.peek(),
    "next": lambda f: next(f),
}


@pytest.mark.parametrize("call", list(READ_CALLS))
def test_timeout_then_refuses_to_read(pair, reader_on, call):
    """A read that outlasts the socket's timeout raises socket.timeout;
    from then on, anything that needs the socket raises makefile()'s
    OSError, even once data has arrived."""
    a, b = pair(timeout=SHORT)
    reader = reader_on(a)
    started = time.monotonic()
    with pytest.raises(socket.timeout) as caught:
        READ_CALLS[call](reader)
    assert caught.type is socket.timeout
    assert str(caught.value) == "timed out"
    assert SHORT * 0.9 <= time.monotonic() - started < SHORT + 2.0
    b.sendall(b"late\n")
    for then in ("read", "readline", "read1", "peek", "readinto"):
        with pytest.raises(OSError) as caught:
            READ_CALLS[then](reader)
        assert caught.type is OSError
        assert str(caught.value) == "cannot read from timed out object"


# Calls that fail partway; whatever part they had taken is lost with the
# error, on both readers.
FAILING_CALLS = {
    "read(20)": lambda f: f.read(20),
    "read(9000)": lambda f: f.read(9000),
    "readinto": lambda f: f.readinto(bytearray(20)),
    "read1": lambda f: f.read1(20),
    "readline": lambda f: f.readline(),
    "readline(50)": lambda f: f.readline(50),
    "next": lambda f: next(f),
    "readlines": lambda f: f.readlines(),
    "list(f)": lambda f: list(f),
    "read()": lambda f: f.read(),
}


@needs_compiled
@pytest.mark.parametrize("call", list(FAILING_CALLS))
def test_timeout_mid_line_then_like_makefile(pair, call):
    """A call that times out after part of a line came: what it raises and
    what the reader has left afterwards, the same on both readers."""
    def scenario(make):
        a, b = pair(timeout=SHORT)
        b.sendall(b"whole line\npart of a l")
        with make(a) as reader:
            steps = [outcome(reader.readline),
                     outcome(FAILING_CALLS[call], reader)]
            b.sendall(b"ine\nmore\n")
            steps += [outcome(reader.peek), outcome(reader.read, 3),
                      outcome(reader.readline)]
        return steps

    reference, compiled = twins(scenario)
    assert reference[0] == ("ok", b"whole line\n")
    assert compiled == reference


@needs_compiled
@pytest.mark.parametrize("call", list(FAILING_CALLS))
def test_reset_mid_line_then_like_makefile(pair, call):
    """The same when the peer resets the connection after part of a line."""
    def scenario(make):
        a, b = pair("tcp")
        b.sendall(b"whole line\npart")
        with make(a) as reader:
            steps = [outcome(reader.readline)]
            a.sendall(b"never read by the peer")
            b.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                         struct.pack("ii", 1, 0))
            b.close()
            readable, _, _ = select.select([a], [], [], CLIENT_TIMEOUT)
            assert readable, "no reset arrived"
            steps += [outcome(FAILING_CALLS[call], reader),
                      outcome(reader.peek), outcome(reader.read, 3),
                      outcome(reader.readline)]
        return steps

    reference, compiled = twins(scenario)
    assert reference[0] == ("ok", b"whole line\n")
    assert compiled == reference


def test_timeout_leaves_buffered_data_readable(pair, reader_on):
    """After a timeout, what is already buffered can still be read."""
    a, b = pair(timeout=SHORT)
    b.sendall(b"one\ntwo\nthr")
    reader = reader_on(a)
    assert reader.readline() == b"one\n"
    assert reader.readline() == b"two\n"
    assert reader.peek() == b"thr"
    assert reader.read1(2) == b"th"
    with pytest.raises(socket.timeout):
        reader.read(5)
    with pytest.raises(OSError, match="cannot read from timed out object"):
        reader.read(1)


def reset_by_peer(pair):
    """A TCP pair whose peer has just reset the connection (RST)."""
    a, b = pair("tcp")
    a.sendall(b"never read by the peer")
    # Linger 0: close() sends RST instead of FIN.
    b.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    b.close()
    readable, _, _ = select.select([a], [], [], CLIENT_TIMEOUT)
    assert readable, "no reset arrived"
    return a


@pytest.mark.parametrize("call", list(READ_CALLS))
def test_peer_reset_raises_connection_reset(pair, reader_on, call):
    reader = reader_on(reset_by_peer(pair))
    with pytest.raises(ConnectionResetError):
        READ_CALLS[call](reader)


@needs_compiled
@pytest.mark.parametrize("call", list(READ_CALLS))
def test_peer_reset_sequence_matches_makefile(pair, call):
    """The reset, then what the next reads see: the same on both readers."""
    def scenario(make):
        with make(reset_by_peer(pair)) as reader:
            return [outcome(READ_CALLS[call], reader),
                    outcome(reader.read, 5), outcome(reader.readline)]

    reference, compiled = twins(scenario)
    assert compiled == reference
    assert reference[0][0] is ConnectionResetError


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


def test_read_interrupted_by_a_signal_goes_on(pair, reader_on):
    """A signal while read() waits: the handler runs, the read goes on."""
    a, b = pair("unix")
    reader = reader_on(a)
    handled = []
    sent = threading.Event()

    def send():
        sent.set()
        b.sendall(b"after the signal\n")

    with sigusr1_handler(lambda signum, frame: handled.append(sent.is_set())):
        helper = interrupt_main_thread(0.2, send)
        try:
            assert reader.readline() == b"after the signal\n"
        finally:
            helper.join()
    assert handled == [False]


def test_signal_handler_that_raises_stops_the_read(pair, reader_on):
    a, b = pair("unix")
    reader = reader_on(a)

    def handler(signum, frame):
        raise Interrupted()

    with sigusr1_handler(handler):
        helper = interrupt_main_thread(0.2)
        try:
            with pytest.raises(Interrupted):
                reader.read(10)
        finally:
            helper.join()


def test_reading_from_a_signal_handler_is_a_reentrant_call(pair, reader_on):
    """A handler that reads the reader a blocked read() is using gets
    RuntimeError, as with BufferedReader; the outer read goes on."""
    a, b = pair("unix")
    reader = reader_on(a)
    inner = []

    def handler(signum, frame):
        inner.append(outcome(reader.read, 1))

    with sigusr1_handler(handler):
        helper = interrupt_main_thread(0.2, lambda: b.sendall(b"xyz"))
        try:
            assert reader.read(2) == b"xy"
        finally:
            helper.join()
    assert len(inner) == 1
    assert inner[0][0] is RuntimeError
    assert inner[0][1].startswith("reentrant call inside ")


def test_close_in_another_thread_waits_out_a_read(pair, make_reader,
                                                  background, stack):
    """Closing the reader (holding the socket's last reference) while
    another thread's read waits must not let that read go on over the fd
    number once it is reused: makefile's close() waits for the read to end.
    """
    a, b = pair("unix", timeout=0.5)
    reader = make_reader(a)
    stack.callback(reader.close)
    read = background(outcome, reader.read, 6)
    time.sleep(0.1)                      # the read is waiting
    fd = a.fileno()
    a.close()                            # deferred: the reader is open
    closing = background(reader.close)
    time.sleep(0.1)
    c, d = socket.socketpair()           # may get fd's number
    stack.callback(c.close)
    stack.callback(d.close)
    d.sendall(b"SECRET")
    result = read.join()
    closing.join()
    c.settimeout(CLIENT_TIMEOUT)
    assert result != ("ok", b"SECRET"), \
        "the read took another socket's data (fd %d reused: %s)" % (
            fd, c.fileno() == fd)
    assert c.recv(100) == b"SECRET"


# -- non-blocking sockets ----------------------------------------------------

NONBLOCKING = {
    "nothing yet": (b"", ["read", "read1", "readinto", "readinto1", "peek",
                          "readline"]),
    "partial read": (b"abc", ["read", "read"]),
    "partial read()": (b"abc", ["read()", "read()"]),
    "big partial read": (b"abc" * 5000, ["read big", "read"]),
    "partial line": (b"abc", ["readline", "readline"]),
    "line then partial": (b"abc\nde", ["readline", "readline", "readline"]),
    "readinto": (b"abc", ["readinto", "readinto"]),
    "big readinto": (b"abc" * 5000, ["readinto big", "readinto"]),
    "read1": (b"abc", ["read1", "read1"]),
    "readinto1": (b"abc", ["readinto1", "readinto1"]),
    "peek": (b"abc", ["peek", "read", "peek"]),
    "readlines": (b"a\nb", ["readlines", "readlines"]),
    "iteration": (b"a\nb", ["list"]),
}
NONBLOCKING_CALLS = {
    "read": lambda f: f.read(5),
    "read()": lambda f: f.read(),
    "read big": lambda f: f.read(20000),
    "read1": lambda f: f.read1(5),
    "readline": lambda f: f.readline(),
    "readinto": lambda f: (lambda b: (f.readinto(b), bytes(b)))(
        bytearray(5)),
    "readinto big": lambda f: f.readinto(bytearray(20000)),
    "readinto1": lambda f: (lambda b: (f.readinto1(b), bytes(b)))(
        bytearray(5)),
    "peek": lambda f: f.peek(),
    "readlines": lambda f: f.readlines(),
    "list": lambda f: list(f),
}


@needs_compiled
@pytest.mark.parametrize("case", list(NONBLOCKING))
def test_nonblocking_socket_reads_like_makefile(pair, case):
    """With timeout 0.0, SocketReader returns what BufferedReader does over
    a raw file that has nothing yet: None, or the part that came."""
    data, calls = NONBLOCKING[case]

    def scenario(make):
        a, b = pair()
        if data:
            b.sendall(data)
        a.setblocking(False)
        with make(a) as reader:
            return [outcome(NONBLOCKING_CALLS[call], reader)
                    for call in calls]

    reference, compiled = twins(scenario)
    assert compiled == reference


# -- closing -----------------------------------------------------------------

CLOSED_READER_CALLS = {
    "read": lambda f: f.read(1),
    "read(0)": lambda f: f.read(0),
    "read()": lambda f: f.read(),
    "read(None)": lambda f: f.read(None),
    "read1": lambda f: f.read1(1),
    "read1()": lambda f: f.read1(),
    "readline": lambda f: f.readline(),
    "readline(0)": lambda f: f.readline(0),
    "readlines": lambda f: f.readlines(),
    "readinto": lambda f: f.readinto(bytearray(1)),
    "readinto empty": lambda f: f.readinto(bytearray(0)),
    "readinto1": lambda f: f.readinto1(bytearray(1)),
    "peek": lambda f: f.peek(1),
    "fileno": lambda f: f.fileno(),
    "iter": lambda f: iter(f),
    "next": lambda f: next(f),
    "readable": lambda f: f.readable(),
    "seekable": lambda f: f.seekable(),
    "isatty": lambda f: f.isatty(),
    "flush": lambda f: f.flush(),
    "tell": lambda f: f.tell(),
    "with": lambda f: f.__enter__(),
    "name": lambda f: f.name,
    "mode": lambda f: f.mode,
    "closed": lambda f: f.closed,
    "close again": lambda f: f.close(),
}


@needs_compiled
@pytest.mark.parametrize("call", list(CLOSED_READER_CALLS))
def test_closed_reader_errors_match_makefile(pair, call):
    def scenario(make):
        a, b = pair()
        reader = make(a)
        reader.close()
        return outcome(CLOSED_READER_CALLS[call], reader)

    reference, compiled = twins(scenario)
    assert compiled == reference


@needs_compiled
@pytest.mark.parametrize("call", ["readable", "seekable", "isatty", "flush",
                                  "name", "mode", "closed"])
def test_open_reader_answers_like_makefile(pair, call):
    def scenario(make):
        a, b = pair()
        with make(a) as reader:
            result = outcome(CLOSED_READER_CALLS[call], reader)
            if call == "name":
                assert result == ("ok", a.fileno())
                return "the socket's fd"
            return result

    reference, compiled = twins(scenario)
    assert compiled == reference


def test_reader_fileno_and_name(pair, reader_on):
    a, b = pair()
    reader = reader_on(a)
    assert reader.fileno() == a.fileno()
    assert reader.name == a.fileno()
    assert reader.mode == "rb"
    assert reader.readable()
    assert not reader.closed
    reader.close()
    assert reader.closed
    assert reader.name == -1


def test_with_closes_the_reader_not_the_socket(pair, make_reader):
    a, b = pair()
    with make_reader(a) as reader:
        b.sendall(b"hi\n")
        assert reader.readline() == b"hi\n"
    assert reader.closed
    b.sendall(b"still open\n")
    assert a.recv(100) == b"still open\n"


def test_socket_close_waits_for_the_reader(pair, make_reader):
    """sock.close() with a reader open leaves the fd open (the reader still
    reads); closing the reader then closes the socket."""
    a, b = pair()
    refs = a._io_refs
    reader = make_reader(a)
    assert a._io_refs == refs + 1
    fd = a.fileno()
    a.close()
    assert a.fileno() == fd           # not really closed yet
    b.sendall(b"after close()\n")
    assert reader.readline() == b"after close()\n"
    assert reader.fileno() == fd
    reader.close()
    assert a.fileno() == -1
    assert b.recv(10) == b""          # the peer sees end of file


def test_dropping_the_reader_releases_the_socket(pair, make_reader):
    a, b = pair()
    reader = make_reader(a)
    a.close()
    del reader
    gc.collect()
    assert a.fileno() == -1
    assert b.recv(10) == b""


BAD_BUFFER_SIZE = """
import io, socket
from csockserver._cengine import SocketReader
a, b = socket.socketpair()
refs = a._io_refs
for make in (lambda: SocketReader(a, SIZE), lambda: io.BufferedReader(
        io.BytesIO(), SIZE)):
    try:
        make()
    except ValueError as exc:
        assert str(exc) == "buffer size must be strictly positive", exc
    else:
        raise AssertionError("no ValueError")
assert a._io_refs == refs
a.close()
b.close()
print("ok")
"""


@needs_compiled
@pytest.mark.parametrize("size", [0, -1])
def test_buffer_size_must_be_positive(size):
    """ValueError, as BufferedReader says it, and the socket not counted.

    In a child process: a failed constructor that crashes the interpreter
    must fail this test, not end the run.
    """
    run = subprocess.run([PYTHON, "-c", BAD_BUFFER_SIZE.replace(
        "SIZE", str(size))], env=child_env(), capture_output=True, text=True,
        timeout=60)
    assert run.returncode == 0, "exit status %d: %s" % (run.returncode,
                                                        run.stderr[-2000:])
    assert run.stdout.strip() == "ok"


def test_files_over_a_closed_socket(pair, make_reader, make_writer):
    """Opened over a closed socket, both files fail as the socket does."""
    a, b = pair()
    a.close()
    reader = make_reader(a)
    writer = make_writer(a)
    try:
        for call in (reader.read, reader.readline, reader.peek):
            with pytest.raises(OSError) as caught:
                call(1)
            assert caught.value.errno == errno.EBADF
        with pytest.raises(OSError) as caught:
            writer.write(b"x")
        assert caught.value.errno == errno.EBADF
        assert reader.fileno() == writer.fileno() == -1
    finally:
        reader.close()


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


@pytest.fixture(params=["python", "compiled"])
def our_writer(request):
    """Our writer classes (not the stdlib's reference)."""
    if request.param == "compiled" and not COMPILED:
        pytest.skip("the compiled engine is not loaded")
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


@pytest.mark.parametrize("kind", KINDS)
def test_big_read_with_a_concurrent_writer(pair, reader_on, background,
                                           kind):
    data = os.urandom(6 * MiB)
    a, b = pair(kind)
    background(send_and_close, b, data,
               [data[i:i + 100000] for i in range(0, len(data), 100000)])
    reader = reader_on(a)
    assert reader.read(3 * MiB) == data[:3 * MiB]
    assert reader.read() == data[3 * MiB:]


def test_reader_is_a_buffered_io_base(pair, reader_on):
    a, b = pair()
    reader = reader_on(a)
    assert isinstance(reader, io.BufferedIOBase)
    assert isinstance(reader, io.IOBase)


# -- the corners: arguments, the rest of the interface, what is taken -------

# Calls a request handler rarely makes: arguments BufferedReader refuses,
# and the parts of io.BufferedIOBase a reader does not support.
READER_CORNERS = {
    "read(-2)": lambda f: f.read(-2),
    "read(1.5)": lambda f: f.read(1.5),
    "read('1')": lambda f: f.read("1"),
    "readline(1.5)": lambda f: f.readline(1.5),
    "readline('1')": lambda f: f.readline("1"),
    "readlines(1.5)": lambda f: f.readlines(1.5),
    "readlines('1')": lambda f: f.readlines("1"),
    "readlines(None)": lambda f: f.readlines(None),
    "read1(None)": lambda f: f.read1(None),
    "read1(1.5)": lambda f: f.read1(1.5),
    "read1(-2)": lambda f: f.read1(-2),
    "peek(None)": lambda f: f.peek(None),
    "peek(1.5)": lambda f: f.peek(1.5),
    "peek(-1)": lambda f: f.peek(-1),
    "readinto(bytes)": lambda f: f.readinto(b"xx"),
    "readinto1(bytes)": lambda f: f.readinto1(b"xx"),
    "readinto(str)": lambda f: f.readinto("xx"),
    "readinto(None)": lambda f: f.readinto(None),
    "readinto(non-contiguous)": lambda f: f.readinto(
        memoryview(bytearray(6))[::2]),
    "writable()": lambda f: f.writable(),
    "write()": lambda f: f.write(b"x"),
    "truncate()": lambda f: f.truncate(),
    "truncate(0)": lambda f: f.truncate(0),
    "seek(0)": lambda f: f.seek(0),
    "seek(0, 1)": lambda f: f.seek(0, 1),
    "seek(0, 2)": lambda f: f.seek(0, 2),
    "tell()": lambda f: f.tell(),
}


@needs_compiled
@pytest.mark.parametrize("closed", [False, True], ids=["open", "closed"])
@pytest.mark.parametrize("call", list(READER_CORNERS))
def test_reader_corners_match_makefile(pair, call, closed):
    """The same result, exception and message as makefile('rb'); on an
    open reader, the data is all still there afterwards."""
    def scenario(make):
        a, b = pair()
        b.sendall(b"line one\nline two\n")
        b.shutdown(socket.SHUT_WR)
        reader = make(a)
        try:
            if closed:
                reader.close()
                return outcome(READER_CORNERS[call], reader)
            return [outcome(READER_CORNERS[call], reader),
                    outcome(reader.read)]
        finally:
            reader.close()

    reference, compiled = twins(scenario)
    assert compiled == reference


# (op, size) pairs whose effect on the socket's queue is pinned down by
# BufferedReader's algorithm; read(n) only up to one buffer (see
# test_accepted_differences).
TAKING = [(op, size) for op in ("read1", "readinto", "readinto1")
          for size in EDGES + [20000]] + [("read", size) for size in EDGES
                                          if size <= CHUNK]


@needs_compiled
@pytest.mark.parametrize("op, size", TAKING)
def test_reads_take_what_makefile_takes(pair, op, size):
    """Each read takes off the socket exactly what BufferedReader takes:
    read1(n) on an empty buffer is one recv of n bytes; readinto and
    readinto1 use the buffered bytes first, then take remainders larger
    than the buffer straight from the socket, smaller ones by a refill."""
    data = os.urandom(100000)

    def scenario(make):
        a, b = pair("unix")
        b.sendall(data)        # it all fits in the socket buffer
        steps = []
        with make(a) as reader:
            for _ in range(2):     # on an empty buffer, then on what is left
                if op.startswith("readinto"):
                    buffer = bytearray(size)
                    got = bytes(buffer[:getattr(reader, op)(buffer)])
                else:
                    got = getattr(reader, op)(size)
                steps.append((got, queued(a)))
            left = len(data) - sum(len(got) for got, _ in steps)
            steps.append(reader.read(left))
        return steps

    reference, compiled = twins(scenario)
    assert compiled == reference
    assert b"".join(got for got, _ in reference[:2]) + reference[2] == data


@needs_compiled
def test_accepted_differences(pair):
    """SocketReader has no raw stream to show or detach; and a read(n) past
    the buffer may leave a different amount buffered than BufferedReader
    does, though neither takes more than one buffer ahead."""
    a, b = pair("unix")
    with SocketReader(a) as reader:
        assert not hasattr(reader, "raw")
        with pytest.raises(io.UnsupportedOperation):
            reader.detach()
        assert not reader.closed
        b.sendall(b"still usable\n")
        assert reader.readline() == b"still usable\n"

    data = os.urandom(100000)
    for make in (makefile_reader, compiled_reader):
        for size in (CHUNK + 1, 2 * CHUNK - 1, 3 * CHUNK + 100, 50000):
            a, b = pair("unix")
            b.sendall(data)
            with make(a) as reader:
                assert reader.read(size) == data[:size]
                taken = len(data) - queued(a)
                assert size <= taken < size + CHUNK, (make, size, taken)
                assert reader.read(len(data) - size) == data[size:]


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


@pytest.fixture(params=list(SERVERS))
def server_kind(request):
    if request.param == "unix" and not HAVE_UNIX:
        pytest.skip("needs AF_UNIX")
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
