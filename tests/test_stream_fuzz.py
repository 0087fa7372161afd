"""rfile, at random: the compiled SocketReader against ``sock.makefile('rb')``.

The same streams, cut into the same sends, read by the same sequences of
calls, on both readers: the results must be the same.  The example-based
comparisons are in test_stream_reader.py.
"""

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _stream_helpers import (CHUNK, EDGES, KINDS, Background,
                             compiled_reader, makefile_reader, needs_compiled,
                             send_and_close, socket_pair)

# Every test gives back the fds and threads it took.
pytestmark = pytest.mark.usefixtures("no_leaks")


# -- random scripts: the same reads on both readers --------------------------

def random_bytes(rng, size):
    """size reproducible bytes without a newline (3.8 has no randbytes)."""
    if size == 0:
        return b""
    return rng.getrandbits(8 * size).to_bytes(size, "little").replace(
        b"\n", b"~")


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
