"""rfile: the compiled SocketReader against ``sock.makefile('rb')``.

With the compiled engine, StreamRequestHandler reads through the engine's
SocketReader, which stands in for ``sock.makefile('rb')`` (a BufferedReader
over socket.SocketIO).  Every test here runs the standard library's reader
beside ours over real sockets (``socket.socketpair()`` and loopback TCP)
and expects the same bytes, the same exceptions and the same messages.
The random comparisons (any stream, any chunking, any sequence of calls,
ending in end of file, a timeout or a reset) are in test_stream_fuzz.py.

The comparisons skip on the pure-Python engine (``needs_compiled``); tests
over the ``make_reader`` fixture still run makefile's half there, so the
reference they pin is checked on both engines.

Accepted differences between SocketReader and makefile('rb'), pinned by
``test_accepted_differences`` rather than compared:

- SocketReader has no ``.raw`` (there is no SocketIO under it), and its
  ``detach()`` raises io.UnsupportedOperation instead of handing one over;
- after a ``read(n)`` larger than the buffer, how much is left buffered can
  differ: BufferedReader reads whole buffers straight from the socket and
  refills for the rest, SocketReader reads the exact remainder.  Neither
  takes more than one buffer (8 KiB) ahead of what it returns.
"""

import array
import errno
import fcntl
import gc
import io
import os
import select
import socket
import struct
import subprocess
import termios
import threading
import time

import pytest

from csockserver._engine import streams as _streams
from tests.support.clients import reset_on_close, send_and_close
from tests.support.env import CLIENT_TIMEOUT, PYTHON, child_env
from tests.support.sockets import KINDS, reset_by_peer
from tests.support.streams import (CHUNK, COMPILED, EDGES, SHORT, Background,
                                   Interrupted, MiB, SocketReader,
                                   compiled_reader, interrupt_main_thread,
                                   makefile_reader, needs_compiled, outcome,
                                   sigusr1_handler)

# Every test gives back the fds and threads it took.
pytestmark = pytest.mark.usefixtures("no_leaks")


# -- the peer's side, and the readers under test -----------------------------

def queued(sock):
    """How many bytes wait in sock's receive queue (not yet recv()'d)."""
    raw = fcntl.ioctl(sock.fileno(), termios.FIONREAD, struct.pack("i", 0))
    return struct.unpack("i", raw)[0]


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


@pytest.mark.parametrize("reader_of", ["open_reader", "SocketReader"])
def test_stock_reader_takes_what_makefile_takes(pair, reader_of):
    """With the stock buffer size, one readline() takes off the socket what
    makefile('rb') takes on the running interpreter: its refill follows
    io.DEFAULT_BUFFER_SIZE (8 KiB up to Python 3.13, 128 KiB from 3.14)."""
    if reader_of == "SocketReader" and not COMPILED:
        pytest.skip("the compiled engine is not loaded")
    line = b"y" * 99 + b"\n"
    data = line * 1000

    def taken(make):
        a, b = pair("unix")
        b.sendall(data)        # it all fits in the socket buffer
        with make(a) as reader:
            assert reader.readline() == line
            return len(data) - queued(a)

    stock = {"open_reader": lambda sock: _streams.open_reader(sock, -1),
             "SocketReader": lambda sock: SocketReader(sock)}[reader_of]
    expected = taken(lambda sock: sock.makefile("rb"))
    assert expected == min(len(data), io.DEFAULT_BUFFER_SIZE)
    assert taken(stock) == expected


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
            reset_on_close(b)
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


# Longer than the 64 KiB a reader keeps: once read, its buffer is given back.
HUGE_LINE = b"x" * (100 * 1024) + b"\n"


@needs_compiled
@pytest.mark.parametrize("before", ["fresh", "after a huge line"])
@pytest.mark.parametrize("call", list(READ_CALLS))
def test_reading_with_no_buffer(pair, call, before):
    """Each read on a reader with no buffer at all: a fresh one, or one
    that has just given back the buffer a huge line grew.  (Copying the
    nothing buffered from there was undefined behaviour, which UBSan
    reported: tools/run_sanitized.py.)"""
    def scenario(make):
        a, b = pair()
        with make(a) as reader:
            if before != "fresh":
                sender = Background(b.sendall, HUGE_LINE)
                assert reader.readline() == HUGE_LINE
                sender.join()
            b.sendall(b"hello\nworld")
            b.shutdown(socket.SHUT_WR)
            return [outcome(READ_CALLS[call], reader), outcome(reader.read)]

    reference, compiled = twins(scenario)
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
