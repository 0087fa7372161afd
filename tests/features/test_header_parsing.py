"""http.client.parse_headers with the compiled parser, against the
standard library's own.

csockserver._headers.parse_headers reads a header block with http.client's
``_read_headers`` and builds the message in C when the block is the plain
kind, else lets email.parser do it.  Here the same bytes go through both
(each from a BytesIO of its own) and everything a program could look at
must be the same: the message's class, its ``vars()`` (headers, payload,
unixfrom, policy...), its defects (type and text), its ``str()``, its
``items()``; or the exception (type and text); and how far the reader got.

The blocks come from hypothesis, built from the edges email.parser and
RFC 9112 know: folded lines, names that are not tokens (blanks, colons,
controls), empty names and values, duplicates in any case, blanks and tabs
around values, Latin-1 and obs-text bytes, CR and LF in every arrangement,
``From `` lines, multipart and message/* Content-Types, a block cut by the
end of the stream, and the limits (100 and 101 headers, lines of 65536 and
65537 bytes).

Examples per test: CSOCKSERVER_HEADER_FUZZ_EXAMPLES (1,000 by default,
a few seconds); ``make fuzz-headers`` runs a long one, saying on stderr
how far it is every 10,000 examples.
"""

import http.client
import io
import os
import pickle
import socket
import sys
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csockserver import _headers
from tests.support.engines import ENGINES
from tests.support.env import CLIENT_TIMEOUT, JOIN_TIMEOUT

EXAMPLES = int(os.environ.get("CSOCKSERVER_HEADER_FUZZ_EXAMPLES", "1000"))
# A run this long says how far it is, every REPORT_EVERY examples.
REPORT_EVERY = 10000

# The engine in use, not only a built one: with CSOCKSERVER_NO_EXTENSIONS
# the extension may be built but the pure engine serves, and http.client
# keeps its own parser.
needs_compiled = pytest.mark.skipif(
    not _headers.usable(), reason="the compiled engine is not in use")
pytestmark = needs_compiled

STDLIB = _headers._stdlib_parse_headers
MAXLINE = http.client._MAXLINE
MAXHEADERS = http.client._MAXHEADERS


class Message(http.client.HTTPMessage):
    """A message class of the user's: always parsed by email.parser."""


def described(message):
    """A message as comparable data: its class, its attributes, its
    defects (type and text) and, for a multipart or message/* one, the
    messages it holds, the same way."""
    state = dict(vars(message))
    defects = [(type(d), str(d)) for d in state.pop("defects")]
    payload = state.pop("_payload")
    if isinstance(payload, list):
        payload = [described(part) for part in payload]
    return type(message), state, defects, payload


def outcome(parse, block, message_class, **options):
    """What a program sees of ``parse(BytesIO(block), message_class)``."""
    fp = io.BytesIO(block)
    try:
        message = parse(fp, message_class, **options)
    except Exception as exc:     # the exception is the result to compare
        return ("raised", type(exc), str(exc), exc.args, fp.tell())
    # str() is made from the state compared above; it is compared too but
    # where a value is long: email's generator takes seconds to fold a
    # long non-ASCII value.  Some values it refuses to write (a NUL or a
    # vertical tab among them): then what it raised is compared.
    text = None
    if all(len(value) < 1000 for value in message.values()):
        try:
            text = str(message)
        except Exception as exc:
            text = (type(exc), str(exc))
    return ("parsed", described(message), text, message.items(),
            message.get_unixfrom(), fp.tell())


class Progress:
    """Examples run by one long fuzz test, on stderr (past pytest's
    capture) with the time it has taken and about how long is left."""

    capture = None      # pytest's capture manager, set by a fixture

    def __init__(self, name, planned):
        self.name, self.planned = name, planned
        self.done = 0
        self.started = None

    def step(self):
        if self.started is None:
            self.started = time.monotonic()
        self.done += 1
        if (self.planned >= REPORT_EVERY and self.done % REPORT_EVERY == 0
                and self.capture is not None):
            spent = time.monotonic() - self.started
            left = spent / self.done * max(0, self.planned - self.done)
            with self.capture.global_and_fixture_disabled():
                print("%s: %d of %d examples in %.0f s, about %.0f s left"
                      % (self.name, self.done, self.planned, spent, left),
                      file=sys.stderr, flush=True)


@pytest.fixture(scope="module", autouse=True)
def progress_past_capture(pytestconfig):
    Progress.capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    yield
    Progress.capture = None


def read_lines(block):
    """The lines http.client's parse_headers() reads of *block*."""
    if "_max_headers" in (STDLIB.__kwdefaults__ or {}):
        return http.client._read_headers(io.BytesIO(block), None)
    return http.client._read_headers(io.BytesIO(block))


def assert_same(block, message_class=http.client.HTTPMessage, **options):
    expected = outcome(STDLIB, block, message_class, **options)
    assert outcome(_headers.parse_headers, block, message_class,
                   **options) == expected, block


# -- the blocks ---------------------------------------------------------------

TOKEN = (b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
         b"ABCDEFGHIJKLMNOPQRSTUVWXYZ")
NAMES = [b"Host", b"host", b"HOST", b"Content-Type", b"content-type",
         b"Content-Length", b"Connection", b"X-A", b"From", b"Set-Cookie"]
# Bytes a value may hold, with the awkward ones over-represented.
VALUE_EDGES = (b" \t\r\n\x00\x01\x0b\x0c\x1c\x1d\x1e\x7f\x80\x85\x9f\xa0\xff"
               b":;,\"=")
ENDINGS = [b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r", b"\r\r\n", b"\n\r",
           b" \r\n", b"\t\r\n"]
CONTENT_TYPES = [b"text/plain", b"application/json; charset=utf-8",
                 b"multipart/form-data; boundary=x", b"message/rfc822",
                 b"message/delivery-status", b"MULTIPART/mixed", b"text",
                 b"a/b/c", b"multipart", b" text/html ;q=1"]

# What the compiled parser takes: a token, a colon, visible characters.
PLAIN_VALUE_BYTES = (bytes(range(0x20, 0x7f)) + b"\t"
                     + bytes(range(0xa0, 0x100)))
plain_names = st.one_of(
    st.sampled_from(NAMES),
    st.lists(st.sampled_from(list(TOKEN)), min_size=1, max_size=12).map(bytes))
plain_values = st.one_of(
    st.lists(st.sampled_from(list(PLAIN_VALUE_BYTES)), max_size=30).map(bytes),
    st.sampled_from(CONTENT_TYPES))
plain_separators = st.sampled_from([b": ", b":", b":\t", b":  ", b": \t "])



@st.composite
def with_one_odd_byte(draw, plain, odd_bytes):
    """A plain part with one byte of *odd_bytes* somewhere in it: the
    nearest miss of the compiled parser's rules."""
    part = draw(plain)
    at = draw(st.integers(0, len(part)))
    return part[:at] + bytes([draw(st.sampled_from(odd_bytes))]) + part[at:]


# And what it must leave to email.parser, or get right at the edges.
NAME_EDGES = b" \t:\r\n\x00\x7f\x80\xe9(@\"/"
odd_names = st.one_of(
    with_one_odd_byte(plain_names, NAME_EDGES),
    with_one_odd_byte(plain_names, NAME_EDGES),
    st.builds(lambda a, b: a + b, st.sampled_from(NAMES),
              st.sampled_from([b" ", b"\t", b"\x00", b"\xe9", b"(", b"@"])),
    st.sampled_from([b"", b" Host", b"\tHost", b"From ", b"From x",
                     b"Ho st", b"a:b"]),
    st.binary(max_size=8),
)
odd_values = st.one_of(
    with_one_odd_byte(plain_values, VALUE_EDGES),
    with_one_odd_byte(plain_values, VALUE_EDGES),
    st.binary(max_size=40),
    st.lists(st.sampled_from(list(VALUE_EDGES) + list(b"abc")),
             max_size=12).map(bytes),
)
odd_separators = st.sampled_from([b" : ", b"::", b" :", b"\t:"])


def mostly(plain, odd):
    """*plain* four times in five, else *odd*."""
    return st.one_of(plain, plain, plain, plain, odd)


names = mostly(plain_names, odd_names)
values = mostly(plain_values, odd_values)
separators = mostly(plain_separators, odd_separators)
endings = mostly(st.sampled_from([b"\r\n", b"\n"]), st.sampled_from(ENDINGS))


@st.composite
def header_lines(draw):
    """One line of a header block, with its ending."""
    kind = draw(st.sampled_from(["field"] * 30 + ["folded", "no colon",
                                                  "from", "raw"]))
    ending = draw(endings)
    if kind == "folded":
        return draw(st.sampled_from([b" ", b"\t", b"  "])) + draw(values) \
            + ending
    if kind == "no colon":
        return draw(values).replace(b":", b"") + ending
    if kind == "from":
        return b"From " + draw(values) + ending
    if kind == "raw":
        return draw(st.binary(max_size=30)) + ending
    return draw(names) + draw(separators) + draw(values) + ending


plain_lines = st.builds(
    lambda *parts: b"".join(parts), plain_names, plain_separators,
    plain_values, st.sampled_from([b"\r\n", b"\n"]))


@st.composite
def header_blocks(draw):
    """A header block, its end, and bytes after it (a body).  Half of
    them are plain, as most requests are: the compiled parser's own."""
    lines = draw(st.lists(st.one_of(plain_lines, header_lines())
                          if draw(st.booleans()) else plain_lines,
                          max_size=12))
    end = draw(st.sampled_from([b"\r\n", b"\r\n", b"\n", b""]))
    body = draw(st.sampled_from([b"", b"body", b"\r\n", b"X: y\r\n\r\n"]))
    if end == b"" and lines:
        # The stream ends within or right after the last line.
        cut = draw(st.integers(0, len(lines[-1])))
        lines[-1] = lines[-1][:len(lines[-1]) - cut]
        body = b""
    return b"".join(lines) + end + body


def plain_line(i, name=b"X-Header-%d"):
    return (name % i if b"%d" in name else name) + b": value %d\r\n" % i


@st.composite
def many_headers(draw):
    """Blocks around http.client's count limit."""
    count = draw(st.integers(MAXHEADERS - 2, MAXHEADERS + 2))
    lines = [plain_line(i) for i in range(count)]
    if draw(st.booleans()):
        lines[draw(st.integers(0, count - 1))] = draw(header_lines())
    return b"".join(lines) + draw(st.sampled_from([b"\r\n", b"\n", b""]))


@st.composite
def long_lines(draw):
    """Blocks with a line around http.client's length limit."""
    size = draw(st.integers(MAXLINE - 2, MAXLINE + 2))
    prefix = draw(st.sampled_from([b"X-Long: ", b"X-Long:", b" ", b"Long"]))
    ending = draw(st.sampled_from([b"\r\n", b"\n"]))
    filler = draw(st.sampled_from([b"a", b"\xe9", b" "]))
    line = prefix + filler * max(0, size - len(prefix) - len(ending)) \
        + ending
    before = draw(st.lists(st.sampled_from([plain_line(1), plain_line(2)]),
                           max_size=2))
    return b"".join(before) + line + b"Host: x\r\n\r\n"


fuzz = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.filter_too_much,
                                       HealthCheck.data_too_large])


RANDOM_BLOCKS = Progress("random blocks", EXAMPLES)
# Blocks near the limits vary in few ways: a tenth as many, at most 2,000.
NEAR_THE_LIMITS = Progress("near the limits",
                           min(2000, max(20, EXAMPLES // 10)))


@fuzz
@given(header_blocks())
def test_random_blocks_parse_as_the_stdlib_does(block):
    RANDOM_BLOCKS.step()
    assert_same(block)


@fuzz
@given(header_blocks())
def test_a_message_class_of_ones_own_parses_as_the_stdlib_does(block):
    assert_same(block, Message)


@settings(max_examples=NEAR_THE_LIMITS.planned, deadline=None,
          suppress_health_check=[HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(st.one_of(many_headers(), long_lines()))
def test_the_limits_are_the_stdlibs(block):
    NEAR_THE_LIMITS.step()
    assert_same(block)


# -- blocks that must take the compiled path, and some that must not ---------

PLAIN = (b"Host: localhost:8080\r\nUser-Agent: wrk\r\nAccept: */*\r\n"
         b"Accept-Language: fr, en;q=0.5\r\nX-Empty:\r\nX-Blanks: \t a b \r\n"
         b"X-Latin: caf\xe9\r\nhost: again\r\n\r\n")


@pytest.mark.parametrize("block", [
    PLAIN, PLAIN.replace(b"\r\n", b"\n"), b"\r\n", b"\n", b"",
    b"Host: cut at the end", b"Content-Type: text/html\r\n\r\nbody",
])
def test_plain_blocks_take_the_compiled_path(block):
    lines = read_lines(block)
    message = ENGINES["cython"].parse_header_lines(
        lines, http.client.HTTPMessage)
    assert message is not None
    assert_same(block)


@pytest.mark.parametrize("block", [
    b"Host: a\r\n folded\r\n\r\n", b"Bad Name: a\r\n\r\n", b"no colon\r\n\r\n",
    b": no name\r\n\r\n", b"A: b\rc\r\n\r\n", b"A: \x00\r\n\r\n",
    b"From someone\r\nA: b\r\n\r\n", b"A: b\x85c\r\n\r\n",
    b"Content-Type: multipart/mixed; boundary=x\r\n\r\n",
    b"content-type: Message/RFC822\r\n\r\n",
])
def test_other_blocks_go_to_the_stdlib(block):
    lines = read_lines(block)
    assert ENGINES["cython"].parse_header_lines(
        lines, http.client.HTTPMessage) is None
    assert_same(block)


def test_the_limits_raise_the_stdlibs_errors():
    too_many = b"".join(plain_line(i) for i in range(MAXHEADERS + 1))
    with pytest.raises(http.client.HTTPException,
                       match="got more than %d headers" % MAXHEADERS):
        _headers.parse_headers(io.BytesIO(too_many + b"\r\n"))
    too_long = b"X: " + b"a" * MAXLINE + b"\r\n\r\n"
    with pytest.raises(http.client.LineTooLong, match="header line"):
        _headers.parse_headers(io.BytesIO(too_long))
    assert_same(too_many + b"\r\n")
    assert_same(too_long)


def test_a_patched_limit_applies(monkeypatch):
    # Some programs raise http.client's limits; the limits are read where
    # the standard library reads them, at each call.
    block = b"".join(plain_line(i) for i in range(150)) + b"\r\n"
    monkeypatch.setattr(http.client, "_MAXHEADERS", 200)
    assert len(_headers.parse_headers(io.BytesIO(block))) == 150
    assert_same(block)


@pytest.mark.skipif("_max_headers" not in (
    STDLIB.__kwdefaults__ or {}), reason="parse_headers has _max_headers"
    " from Python 3.15")
def test_max_headers_argument():
    block = b"".join(plain_line(i) for i in range(10)) + b"\r\n"
    for limit in (9, 10, 11):
        assert_same(block, _max_headers=limit)


# -- in place of http.client's ----------------------------------------------

def test_it_passes_for_the_stdlibs_function():
    ours = _headers.parse_headers
    assert ours.__name__ == "parse_headers"
    assert ours.__module__ == "http.client"
    assert ours.__doc__ == STDLIB.__doc__
    assert ours.__defaults__ == STDLIB.__defaults__
    assert ours.__kwdefaults__ == STDLIB.__kwdefaults__
    import inspect
    assert inspect.signature(ours) == inspect.signature(STDLIB)


def test_place_and_remove(monkeypatch):
    monkeypatch.setattr(_headers, "_owners", set())
    monkeypatch.setattr(http.client, "parse_headers", STDLIB)
    _headers.place("a")
    _headers.place("b")
    assert http.client.parse_headers is _headers.parse_headers
    # Pickled by reference, it comes back as the function in place.
    assert pickle.loads(pickle.dumps(http.client.parse_headers)) \
        is _headers.parse_headers
    _headers.remove("a")
    assert http.client.parse_headers is _headers.parse_headers
    _headers.remove("b")
    assert http.client.parse_headers is STDLIB


def test_someone_elses_parse_headers_is_left_alone(monkeypatch):
    def theirs(fp, _class=http.client.HTTPMessage):
        return STDLIB(fp, _class)
    monkeypatch.setattr(_headers, "_owners", set())
    monkeypatch.setattr(http.client, "parse_headers", theirs)
    _headers.place("a")
    assert http.client.parse_headers is theirs
    _headers.remove("a")
    assert http.client.parse_headers is theirs


def test_importing_csockserver_http_puts_it_in_place():
    import csockserver.http  # noqa: F401
    assert http.client.parse_headers is _headers.parse_headers


def test_a_request_through_http_server_gets_the_same_headers():
    import csockserver.http

    seen = []

    class Handler(csockserver.http.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append((type(self.headers), self.headers.items(),
                         str(self.headers)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    request = b"GET / HTTP/1.0\r\n" + PLAIN
    expected = STDLIB(io.BytesIO(PLAIN))
    with csockserver.http.HTTPServer(("127.0.0.1", 0), Handler) as server:
        thread = threading.Thread(target=server.handle_request)
        thread.start()
        with socket.create_connection(server.server_address,
                                      timeout=CLIENT_TIMEOUT) as client:
            client.sendall(request)
            assert client.recv(1024).startswith(b"HTTP/1.0 204")
        thread.join(JOIN_TIMEOUT)
    assert not thread.is_alive()
    assert seen == [(type(expected), expected.items(), str(expected))]
    assert csockserver.http._headers.usable()
