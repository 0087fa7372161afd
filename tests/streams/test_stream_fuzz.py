"""rfile, at random: the compiled SocketReader against ``sock.makefile('rb')``.

Differential fuzzing: a peer thread sends a random stream, cut
into random sends with short pauses after some of them, and ends it in one
of four ways; the reader plays a random sequence of calls on it.  The same
example runs once through makefile('rb') and once through SocketReader,
each over a socket pair of its own, and the two logs must be the same:
the bytes each call returned, or the type, errno and message of what it
raised, and what the reader gives at the end.

How a stream ends (``Case.ending``):

- ``shutdown``, ``close``: end of file (the peer shuts its write side down,
  or closes its socket);
- ``silence``: the peer sends nothing more and the reader's socket has a
  short timeout (SILENCE), so the first call that needs more times out;
  with ``late`` the peer sends a last line once the reader has timed out,
  which neither reader may read;
- ``reset``: the peer resets the connection once everything it sent has
  arrived: over TCP, close() with SO_LINGER 0 once the reader's kernel has
  acknowledged all of it; over AF_UNIX, close() while the peer has data
  of the reader's unread (Linux then gives the reader ECONNRESET after the
  data, as TCP does).

What depends on when the data arrives (how much read1(), readinto1() and
peek() return) is checked against the stream and not logged (see Script).
A timeout seen while the peer was still sending (a thread stalled on a busy
machine, not the silence the example asked for) runs the pair again; three
such runs in a row and hypothesis drops the example.

Examples per socket kind: CSOCKSERVER_FUZZ_EXAMPLES (100 by default, a few
seconds); ``make fuzz`` (tools/fuzz.py) runs thousands.  Outside CI each
run draws new examples and hypothesis keeps the failing ones in
.hypothesis/; in CI (the CI environment variable set) hypothesis's ``ci``
profile derandomizes the run and keeps no database, so a CI failure
reproduces.  CSOCKSERVER_FUZZ_SEED, when set, seeds the run instead.

The comparisons skip on the pure engine, which has no SocketReader; the
check that the harness is deterministic (makefile('rb') against itself)
runs on both.  Accepted differences: those of test_stream_reader.py (how
much a read(n) past the buffer leaves buffered), which no log shows; the
fuzz has found none of its own (none in 44,000 examples in two runs of
``make fuzz`` on 2026-12-04: 24,000 in 15 minutes, 20,000 in 10).
"""

import collections
import fcntl
import itertools
import json
import os
import random
import socket
import struct
import termios
import threading
import time

import pytest
from hypothesis import HealthCheck, given, reject, seed, settings
from hypothesis import strategies as st

from tests.support.clients import reset_on_close, send_and_close
from tests.support.env import CLIENT_TIMEOUT, JOIN_TIMEOUT
from tests.support.sockets import KINDS, socket_pair
from tests.support.streams import (CHUNK, EDGES, Background, compiled_reader,
                                   makefile_reader, needs_compiled)

# Every test gives back the fds and threads it took.
pytestmark = pytest.mark.usefixtures("no_leaks")

FUZZ_EXAMPLES = int(os.environ.get("CSOCKSERVER_FUZZ_EXAMPLES", "100"))
FUZZ_SEED = os.environ.get("CSOCKSERVER_FUZZ_SEED")
# The reader's socket timeout when the stream ends in silence.  Short: each
# such example waits it out once per reader.
SILENCE = 0.05
# Runs of one example before a stalled peer makes hypothesis drop it.
ATTEMPTS = 3

# What tools/fuzz.py reports: examples compared, pairs run again, dropped,
# and when the first difference came.
STATS = collections.Counter()


@pytest.fixture(scope="module", autouse=True)
def fuzz_stats():
    """Writes STATS to $CSOCKSERVER_FUZZ_STATS (JSON) after the module."""
    yield
    path = os.environ.get("CSOCKSERVER_FUZZ_STATS")
    if path:
        with open(path, "w") as out:
            json.dump(dict(STATS), out)


def fuzz_settings(examples):
    """hypothesis settings for a fuzz test of *examples* examples."""
    chosen = dict(max_examples=examples, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow,
                                         HealthCheck.data_too_large,
                                         HealthCheck.filter_too_much])
    if FUZZ_SEED is not None:
        chosen["derandomize"] = False

    def apply(test):
        if FUZZ_SEED is not None:
            test = seed(int(FUZZ_SEED))(test)
        return settings(**chosen)(test)
    return apply


# -- what the peer sends, and how ---------------------------------------------

def random_bytes(rng, size):
    """size reproducible bytes without a newline (3.8 has no randbytes)."""
    if size == 0:
        return b""
    return rng.getrandbits(8 * size).to_bytes(size, "little").replace(
        b"\n", b"~")


def make_stream(lengths, rng_seed, partial):
    """Lines of the given lengths (newline excluded), then *partial* bytes
    without one, all from random.Random(rng_seed)."""
    rng = random.Random(rng_seed)
    lines = [random_bytes(rng, length) + b"\n" for length in lengths]
    return b"".join(lines) + random_bytes(rng, partial)


@st.composite
def streams(draw):
    """What the peer sends, and its recipe for make_stream(): lines of
    random sizes, some longer than a buffer, maybe a last one without its
    newline."""
    lengths = draw(st.lists(st.one_of(st.integers(0, 64),
                                      st.sampled_from(EDGES),
                                      st.integers(65, 3 * CHUNK)),
                            max_size=10))
    partial = draw(st.one_of(st.just(0), st.integers(1, 2 * CHUNK)))
    recipe = (lengths, draw(st.integers(0, 2 ** 32 - 1)), partial)
    return make_stream(*recipe), recipe


PAUSES = st.sampled_from([0.0002, 0.001, 0.003])


@st.composite
def sends(draw, data):
    """How the peer cuts the stream: [(chunk, pause after it)]."""
    cuts = sorted(set(draw(st.lists(st.integers(0, len(data)),
                                    max_size=20))))
    bounds = [0] + cuts + [len(data)]
    chunks = [data[start:end] for start, end in zip(bounds, bounds[1:])
              if end > start]
    pauses = draw(st.dictionaries(st.integers(0, 20), PAUSES, max_size=4))
    return [(chunk, pauses.get(index, 0.0))
            for index, chunk in enumerate(chunks)]


ENDINGS = ["shutdown", "close", "silence", "reset"]


# -- what the reader is asked -------------------------------------------------

BUFFER_SIZES = st.one_of(st.sampled_from([CHUNK, 16, 100, 1, 7]),
                         st.integers(1, 2 * CHUNK))
# Where readinto() writes: a bytearray, a view of one, or a view that starts
# a few bytes into one (those bytes must stay as they are).
TARGETS = {"bytearray": 0, "memoryview": 0, "offset view": 3}


def sizes(buffer_size):
    """Sizes to ask for, those around *buffer_size* among them, and 0 often
    (a call for nothing must not wait for anything)."""
    near = sorted({max(0, buffer_size + delta) for delta in (-1, 0, 1)}
                  | {2 * buffer_size})
    return st.one_of(st.just(0), st.integers(0, 40), st.sampled_from(EDGES),
                     st.sampled_from(near), st.integers(0, 3 * CHUNK))


def operations(buffer_size):
    """One call, as a tuple: (method, arguments...)."""
    size = sizes(buffer_size)
    target = st.sampled_from(sorted(TARGETS))

    def call(name, *args):
        return st.tuples(st.just(name), *args)

    return st.one_of(
        call("read", size),
        st.sampled_from([("read",), ("read", None), ("read", -1)]),
        call("read1", st.one_of(size, st.just(-1))),
        st.just(("read1",)),
        call("readline", st.one_of(size, st.just(-1), st.none())),
        st.just(("readline",)),
        call("readlines", st.one_of(st.integers(-1, 2 * CHUNK), st.none())),
        st.just(("readlines",)),
        call("readinto", target, size),
        call("readinto1", target, size),
        call("peek", st.integers(0, 3 * CHUNK)),
        st.just(("peek",)),
        call("next", st.integers(1, 3)),
        call("iter", st.integers(1, 3)),
    )


# The last call reads to end of file, one way or another; then what every
# call gives at the end.
TAILS = st.sampled_from([("read",), ("read", None), ("read", -1),
                         ("readlines",), ("list",), ("readline_loop",)])
AFTERWARDS = [("read",), ("read", 10), ("read1", 10), ("readline",),
              ("peek",), ("readinto", "bytearray", 4), ("readlines",),
              ("list",), ("next", 1)]


class Case:
    """One example: the stream, how the peer sends and ends it, and the
    calls the reader makes."""

    def __init__(self, recipe, data, sends, ending, late, buffer_size, ops,
                 tail):
        self.recipe = recipe
        self.data = data
        self.sends = sends
        self.ending = ending
        self.late = late
        self.buffer_size = buffer_size
        self.ops = ops
        self.tail = tail

    def __repr__(self):
        # The recipe rebuilds the stream: make_stream(*recipe).
        return ("Case(stream=make_stream%r (%d bytes), sends=%r, ending=%r%s,"
                " buffer_size=%d, ops=%r, tail=%r)" % (
                    tuple(self.recipe), len(self.data),
                    [(len(chunk), pause) for chunk, pause in self.sends],
                    self.ending, " late" if self.late else "",
                    self.buffer_size, self.ops, self.tail))


@st.composite
def cases(draw):
    data, recipe = draw(streams())
    cut = draw(sends(data))
    ending = draw(st.sampled_from(ENDINGS))
    late = ending == "silence" and draw(st.booleans())
    buffer_size = draw(BUFFER_SIZES)
    ops = draw(st.lists(operations(buffer_size), max_size=12))
    if draw(st.integers(0, 4)) == 0:       # one example in five closes
        ops.insert(draw(st.integers(0, len(ops))), ("close",))
    return Case(recipe, data, cut, ending, late, buffer_size, ops,
                draw(TAILS))


# -- playing calls and logging what they did ----------------------------------

class Spurious(Exception):
    """The reader timed out while the peer was still sending."""


class Script:
    """Plays calls on a reader and logs what each did.

    An entry is (call, "ok", result) or (call, exception type, errno,
    message).  Everything read is checked against the stream as it goes.
    How much read1(), readinto1() and peek() return depends on what has
    arrived, so those are checked (at most what was asked, a non-empty
    prefix of what is left unless at end) and not logged: read1() and
    readinto1() are topped up with read() to the size asked for, which puts
    both readers at the same point of the stream again, and peek() logs
    whether it had bytes.  After a socket error (a timeout, a reset) there
    is nothing more to read: all the stream has come by then, and what a
    call had taken of it is lost with its error, on both readers.
    """

    def __init__(self, reader, data, buffer_size, peer=None):
        self.f = reader
        self.data = data
        self.buffer_size = buffer_size
        self.peer = peer
        self.pos = 0
        self.ended = False        # a socket error came: nothing is left
        self.log = []

    def at_end(self):
        return self.ended or self.pos == len(self.data)

    def took(self, chunk):
        if self.ended:
            assert chunk == b"", "data after a socket error"
        assert self.data[self.pos:self.pos + len(chunk)] == chunk, \
            "not the next bytes of the stream"
        self.pos += len(chunk)
        return chunk

    def check_partial(self, got, most):
        """What one recv may give: at most *most* bytes, some unless at
        end, and the next ones of the stream."""
        assert len(got) <= most, "%d bytes, asked %d" % (len(got), most)
        if most > 0 and not self.at_end():
            assert got, "nothing before the end"
        if self.ended:
            assert got == b"", "data after a socket error"
        assert self.data[self.pos:self.pos + len(got)] == got, \
            "not the next bytes of the stream"

    def play(self, op):
        try:
            result = getattr(self, "_" + op[0])(*op[1:])
        except (AssertionError, Spurious):
            raise
        except Exception as exc:
            if isinstance(exc, socket.timeout) and self.peer is not None:
                if not self.peer.silent_long_enough():
                    raise Spurious(op) from exc
                self.peer.reader_timed_out.set()
            if isinstance(exc, OSError):
                self.ended = True
            self.log.append((op, type(exc), getattr(exc, "errno", None),
                             str(exc)))
        else:
            self.log.append((op, "ok", result))

    def finish(self, tail):
        self.play(tail)
        if not (self.f.closed or self.ended):
            assert self.pos == len(self.data), "stopped before the end"
        for op in AFTERWARDS:
            self.play(op)

    # -- the calls: one method each -------------------------------------------

    def _read(self, *args):
        return self.took(self.f.read(*args))

    def _read1(self, *args):
        asked = self.buffer_size if not args or args[0] < 0 else args[0]
        got = self.f.read1(*args)
        self.check_partial(got, asked)
        if len(got) < asked:
            got += self.f.read(asked - len(got))
        return self.took(got)

    def _readline(self, *args):
        return self.took(self.f.readline(*args))

    def _lines(self, lines):
        for line in lines:
            self.took(line)
        return lines

    def _readlines(self, *args):
        return self._lines(self.f.readlines(*args))

    def _list(self):
        return self._lines(list(self.f))

    def _readline_loop(self):
        return self._lines(list(iter(self.f.readline, b"")))

    def _next(self, count):
        lines = []
        for _ in range(count):
            try:
                lines.append(self.took(next(self.f)))
            except StopIteration:
                lines.append(StopIteration)
                break
        return lines

    def _iter(self, count):
        return self._lines(list(itertools.islice(self.f, count)))

    def _readinto(self, target, size, once=False):
        start = TARGETS[target]
        buffer = bytearray(b"\xaa" * (start + size))
        into = buffer if target == "bytearray" else memoryview(buffer)[start:]
        count = (self.f.readinto1 if once else self.f.readinto)(into)
        if once:
            self.check_partial(bytes(buffer[start:start + count]), size)
            if count < size:
                count += self.f.readinto(memoryview(buffer)[start + count:])
        assert 0 <= count <= size, count
        assert buffer[:start] + buffer[start + count:] == b"\xaa" * (
            len(buffer) - count), "written outside what it returned"
        return count, self.took(bytes(buffer[start:start + count]))

    def _readinto1(self, target, size):
        return self._readinto(target, size, once=True)

    def _peek(self, *args):
        peeked = self.f.peek(*args)
        self.check_partial(peeked, self.buffer_size)
        return bool(peeked)

    def _close(self):
        self.f.close()
        return self.f.closed


# -- the peer, and one run ----------------------------------------------------

def unacknowledged(sock):
    """Bytes sock has sent that the other end has not acknowledged yet."""
    raw = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, struct.pack("i", 0))
    return struct.unpack("i", raw)[0]


class Peer:
    """The far end of the reader's socket, in a thread: sends the case's
    chunks with their pauses, then ends the stream as the case says."""

    def __init__(self, sock, kind, case):
        self.sock = sock
        self.kind = kind
        self.case = case
        self.done_at = None       # when the last chunk was sent
        self.reader_timed_out = threading.Event()
        self.stop = threading.Event()
        self.helper = Background(self.run)

    def run(self):
        for chunk, pause in self.case.sends:
            self.sock.sendall(chunk)
            if pause:
                time.sleep(pause)
        self.done_at = time.monotonic()
        ending = self.case.ending
        if ending == "shutdown":
            self.sock.shutdown(socket.SHUT_WR)
        elif ending == "close":
            self.sock.close()
        elif ending == "silence":
            if self.case.late and self.wait(self.reader_timed_out.is_set):
                try:
                    self.sock.sendall(b"late\n")
                except OSError:
                    pass            # the reader may have closed by now
        elif ending == "reset":
            if self.kind == "tcp":
                # An RST overtakes data not yet delivered: wait for it all
                # to be acknowledged, then close with linger 0.
                if not self.wait(lambda: unacknowledged(self.sock) == 0):
                    return
                reset_on_close(self.sock)
            self.sock.close()

    def wait(self, predicate):
        """Poll predicate() until true (True), or stop or a deadline."""
        deadline = time.monotonic() + JOIN_TIMEOUT / 2
        while not predicate():
            if self.stop.is_set() or time.monotonic() > deadline:
                return False
            time.sleep(0.0005)
        return True

    def silent_long_enough(self):
        """Whether a timeout now is the silence after the last chunk (a
        wait begun after it), not one that a stalled peer thread let run
        out while it still had chunks to send.  The margin (a tenth of
        SILENCE) is for the peer's own step from its last send to done_at;
        a spurious timeout passes only if its reader then took more than
        nine tenths of SILENCE to see it, while the peer sent the rest."""
        return (self.done_at is not None
                and time.monotonic() - self.done_at >= SILENCE * 0.9)

    def join(self, reraise):
        self.stop.set()
        self.helper.join(reraise=reraise)


def run_script(make, kind, case):
    """case played on make(sock) while a Peer sends; the log."""
    a, b = socket_pair(kind)
    peer = script = None
    try:
        a.settimeout(SILENCE if case.ending == "silence" else CLIENT_TIMEOUT)
        if kind == "tcp":
            b.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        elif case.ending == "reset":
            a.sendall(b"never read by the peer")
        reader = make(a, case.buffer_size)
        try:
            peer = Peer(b, kind, case)
            script = Script(reader, case.data, case.buffer_size, peer)
            for op in case.ops:
                script.play(op)
            script.finish(case.tail)
        finally:
            reader.close()
    finally:
        if peer is not None:
            peer.stop.set()
        a.close()           # a peer still sending sees an error at once
        if peer is not None:
            # Its error matters only if the reader took the whole stream.
            peer.join(reraise=script is not None
                      and script.pos == len(case.data))
        b.close()
    return script.log


def twin_logs(kind, case, first=makefile_reader, second=compiled_reader):
    """The logs of case on both readers, run again after a Spurious."""
    for _ in range(ATTEMPTS):
        try:
            return (run_script(first, kind, case),
                    run_script(second, kind, case))
        except Spurious:
            STATS["reruns"] += 1
    STATS["dropped"] += 1
    reject()


def brief(entry, most=300):
    text = repr(entry)
    return text if len(text) <= most else text[:most] + "..."


def assert_same_logs(case, expected, got, names=("makefile", "SocketReader")):
    """The first entry where the logs part, with the case, if they do."""
    pairs = itertools.zip_longest(expected, got)
    for index, (want, have) in enumerate(pairs):
        if want != have:
            raise AssertionError(
                "call %d of %r\n  %s: %s\n  %s: %s" % (
                    index, case, names[0], brief(want), names[1],
                    brief(have)))


# -- the fuzz -----------------------------------------------------------------

@needs_compiled
@pytest.mark.fuzz
@pytest.mark.parametrize("kind", KINDS)
@fuzz_settings(FUZZ_EXAMPLES)
@given(case=cases())
def test_random_reads_match_makefile(kind, case):
    """Any stream, any chunking and ending, any sequence of calls:
    SocketReader does what makefile('rb') does."""
    STATS["examples"] += 1
    STATS.setdefault("started", time.monotonic())
    try:
        # A reader that breaks a Script check fails in twin_logs().
        expected, got = twin_logs(kind, case)
        assert_same_logs(case, expected, got)
    except AssertionError:
        # How soon the fuzz finds something (before hypothesis shrinks it).
        if "first failure at" not in STATS:
            STATS["first failure at"] = STATS["examples"]
            STATS["first failure after"] = (time.monotonic()
                                            - STATS["started"])
        raise


@pytest.mark.fuzz
@pytest.mark.parametrize("kind", KINDS)
@fuzz_settings(max(10, FUZZ_EXAMPLES // 10))
@given(case=cases())
def test_harness_is_deterministic(kind, case):
    """makefile('rb') against itself: a log depends on the case alone, not
    on when the data came, so a difference above is the reader's."""
    STATS["harness examples"] += 1
    expected, got = twin_logs(kind, case, makefile_reader, makefile_reader)
    assert_same_logs(case, expected, got, ("makefile", "makefile again"))


# -- the same calls at every buffer edge --------------------------------------

GRID = {
    "read": lambda size: [("read", size)],
    "read1": lambda size: [("read1", size)],
    "readline": lambda size: [("readline", size)],
    "readinto": lambda size: [("readinto", "bytearray", size)],
    "readinto1": lambda size: [("readinto1", "memoryview", size)],
    "peek_read": lambda size: [("peek", 1), ("read", size)],
    "next": lambda size: [("next", size)],
    "readlines": lambda size: [("readlines", size)],
}


def edge_stream():
    """Lines whose lengths sit on the buffer edges, then a partial line."""
    return make_stream([0, 1, 2, 15, 16, 17, 99, 100, 101, CHUNK - 1, CHUNK,
                        CHUNK + 1, 7], 8192, 50)


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
            for _ in range(len(data) + 2):
                if script.pos == len(data):
                    break
                for call in GRID[op](size):
                    script.play(call)
                if size == 0:
                    break
            script.finish(("read",))
            played = True
    finally:
        a.close()
        sender.join(reraise=played)
        b.close()
    return script.log


@needs_compiled
@pytest.mark.parametrize("buffer_size", [16, 100, CHUNK])
@pytest.mark.parametrize("op", list(GRID))
def test_each_read_at_each_edge(op, buffer_size):
    """Every read operation, at every size on a buffer edge, repeated to
    end of file: SocketReader returns what makefile('rb') returns."""
    for size in EDGES:
        if op == "next" and size > 3:
            break      # next() takes a count of lines, not a size
        expected = play_until_end(makefile_reader, buffer_size, op, size)
        got = play_until_end(compiled_reader, buffer_size, op, size)
        assert_same_logs("%s(%d)" % (op, size), expected, got)
