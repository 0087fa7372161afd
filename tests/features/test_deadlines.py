"""StreamRequestHandler.read_deadline: all reading done by a set time.

socketserver's ``timeout`` bounds each wait for data, so a client sending a
byte every 0.1 s holds a handler thread for as long as it likes.  With
``read_deadline`` set, every read from ``self.rfile`` must be done within
that many seconds of setup(); past it a read raises the exception a socket
timeout raises, and the connection is closed as usual.

The handlers run over real loopback connections, on the stock reader (the
compiled SocketReader on the compiled engine) and on makefile()'s
BufferedReader and raw reader (``rbufsize`` 1024 and 0), which go through
``_streams._DeadlineSocketIO`` on both engines.  The readers are also
checked directly, over socket pairs.  Without the feature, every test here
fails: the trickling clients are never cut off.
"""

import contextlib
import select
import socket
import threading
import time

import pytest

import csockserver
from csockserver._engine import streams as _streams, workers as _workers
from tests.support.clients import recv_line, stream_client
from tests.support.env import CLIENT_TIMEOUT
from tests.support.servers import serving, wait_for
from tests.support.streams import SocketReader, needs_compiled

pytestmark = pytest.mark.usefixtures("no_leaks")

DEADLINE = 0.6
# How late a cut-off may come, on a busy two-core machine.
MARGIN = 0.75
TRICKLE = 0.1       # one byte per TRICKLE seconds
TIMED_OUT = (socket.timeout, "timed out")

# The stock reader, makefile()'s buffered one and its unbuffered one.
RBUFSIZES = [-1, 1024, 0]


def timeout_seen(exc):
    return (type(exc), str(exc)) == TIMED_OUT


class Seen:
    """What the handlers of one test ran into, and how long they took."""

    def __init__(self):
        self.lock = threading.Lock()
        self.errors = []
        self.lines = []
        self.running = 0

    def __enter__(self):
        with self.lock:
            self.running += 1
        return self

    def __exit__(self, exc_type, exc, tb):
        with self.lock:
            self.running -= 1
            if exc is not None:
                self.errors.append(exc)
        return isinstance(exc, OSError)   # the timeout: handled, as user code


def echo_handler(seen, **attrs):
    """A StreamRequestHandler echoing lines until EOF, with *attrs*."""

    class Echo(csockserver.StreamRequestHandler):
        def handle(self):
            with seen:
                for line in self.rfile:
                    seen.lines.append(line)
                    self.wfile.write(line)

    for name, value in attrs.items():
        setattr(Echo, name, value)
    return Echo


def make_server(handler):
    return csockserver.ThreadingTCPServer(("127.0.0.1", 0), handler)


def closed_by_peer(sock, wait):
    """Whether the peer closed (EOF, or a reset) within *wait* seconds; the
    data it sent before is skipped."""
    end = time.monotonic() + wait
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return False
        ready, _, _ = select.select([sock], [], [], left)
        if ready:
            try:
                if not sock.recv(65536):
                    return True
            except ConnectionResetError:
                return True


def trickle_until_closed(sock, give_up, start=None):
    """Send a byte every TRICKLE seconds until the peer closes; the seconds
    from *start* (a time.monotonic() time, by default now) until it did, or
    None if it had not closed after *give_up* seconds."""
    if start is None:
        start = time.monotonic()
    while time.monotonic() - start < give_up:
        try:
            sock.sendall(b"x")
        except OSError:
            return time.monotonic() - start
        if closed_by_peer(sock, TRICKLE):
            return time.monotonic() - start
    return None


# -- one trickling client -----------------------------------------------------

@pytest.mark.parametrize("rbufsize", RBUFSIZES)
@pytest.mark.parametrize("timeout", [None, 0.3])
def test_trickling_client_is_cut_off_at_the_deadline(rbufsize, timeout):
    """A client that sends one line, then a byte every 0.1 s: the first line
    is answered; the handler's next read times out at the deadline (even
    with a per-wait ``timeout`` that the trickle never lets pass), and the
    connection is closed."""
    seen = Seen()
    handler = echo_handler(seen, read_deadline=DEADLINE, rbufsize=rbufsize,
                           timeout=timeout)
    server = make_server(handler)
    with serving(server):
        with stream_client(server) as client:
            start = time.monotonic()
            client.sendall(b"in time\n")
            assert recv_line(client) == b"in time\n"
            took = trickle_until_closed(client, DEADLINE + 3.0, start)
        assert took is not None, "the trickling client was never cut off"
        assert DEADLINE - 0.05 <= took < DEADLINE + MARGIN, took
        assert wait_for(lambda: seen.errors, timeout=CLIENT_TIMEOUT)
    assert seen.lines == [b"in time\n"]
    assert [timeout_seen(exc) for exc in seen.errors] == [True]


@pytest.mark.parametrize("rbufsize", RBUFSIZES)
def test_socket_timeout_still_bounds_each_wait(rbufsize):
    """Each wait takes the smaller of ``timeout`` and the time left: a
    silent client is dropped after ``timeout``, a trickling one at the
    deadline."""
    seen = Seen()
    handler = echo_handler(seen, read_deadline=DEADLINE, rbufsize=rbufsize,
                           timeout=0.25)
    server = make_server(handler)
    with serving(server):
        with stream_client(server) as silent, \
                stream_client(server) as trickler:
            start = time.monotonic()
            result = []
            helper = threading.Thread(target=lambda: result.append(
                trickle_until_closed(trickler, DEADLINE + 3.0, start)))
            helper.start()
            try:
                assert closed_by_peer(silent, CLIENT_TIMEOUT)
                silent_took = time.monotonic() - start
            finally:
                helper.join(DEADLINE + 5.0)
        assert silent_took < DEADLINE - 0.1, silent_took
        assert result and result[0] is not None, "never cut off"
        assert DEADLINE - 0.05 <= result[0] < DEADLINE + MARGIN, result
        assert wait_for(lambda: len(seen.errors) == 2)
    assert all(timeout_seen(exc) for exc in seen.errors), seen.errors


def test_normal_clients_are_served_while_one_trickles():
    """While one client trickles towards its deadline, others are answered
    at once; then the trickler is cut off."""
    seen = Seen()
    server = make_server(echo_handler(seen, read_deadline=DEADLINE))
    with serving(server):
        with stream_client(server) as trickler:
            result = []
            helper = threading.Thread(target=lambda: result.append(
                trickle_until_closed(trickler, DEADLINE + 3.0)))
            helper.start()
            try:
                for i in range(5):
                    with stream_client(server) as client:
                        asked = time.monotonic()
                        client.sendall(b"normal %d\n" % i)
                        assert recv_line(client) == b"normal %d\n" % i
                        assert time.monotonic() - asked < 0.5
                    time.sleep(0.05)
            finally:
                helper.join(DEADLINE + 5.0)
        assert result and result[0] is not None, "never cut off"
        assert result[0] < DEADLINE + MARGIN
        assert wait_for(lambda: seen.errors)
    assert [timeout_seen(exc) for exc in seen.errors] == [True]


# -- many slow clients --------------------------------------------------------

SLOW_CLIENTS = 300


def test_300_slow_clients_do_not_stop_a_normal_one(fds_for_connections):
    """300 clients each send part of a line: half then go silent, half
    trickle a byte now and then.  A normal client is answered promptly all
    the same; at the deadline every slow connection is closed, and the
    request threads go back to idle."""
    fds_for_connections(SLOW_CLIENTS)
    deadline = 2.5
    seen = Seen()
    server = make_server(echo_handler(seen, read_deadline=deadline))
    slow = []
    # Closed before the server is (serving's exit joins the threads).
    with serving(server), contextlib.ExitStack() as closing:
        start = time.monotonic()
        for i in range(SLOW_CLIENTS):
            client = stream_client(server)
            slow.append(client)
            closing.callback(client.close)
            client.sendall(b"partial %d" % i)
        assert wait_for(lambda: seen.running == SLOW_CLIENTS,
                        timeout=deadline), seen.running

        tricklers = slow[::2]
        stop = threading.Event()

        def trickle():
            while not stop.wait(0.25):
                for client in tricklers:
                    try:
                        client.send(b"x")
                    except OSError:
                        pass

        helper = threading.Thread(target=trickle)
        helper.start()
        try:
            with stream_client(server) as client:
                asked = time.monotonic()
                client.sendall(b"normal\n")
                assert recv_line(client) == b"normal\n"
                assert time.monotonic() - asked < 2.0
            assert time.monotonic() - start < deadline, \
                "too slow to test: the deadline had passed already"

            poller = select.poll()
            for client in slow:
                poller.register(client, select.POLLIN)
            left = {client.fileno(): client for client in slow}
            cut_by = time.monotonic() - start
            while left and cut_by < deadline + 3 * MARGIN:
                for fd, _ in poller.poll(100):
                    try:
                        data = left[fd].recv(65536)
                    except ConnectionResetError:
                        data = b""
                    if not data:
                        poller.unregister(fd)
                        del left[fd]
                cut_by = time.monotonic() - start
        finally:
            stop.set()
            helper.join(CLIENT_TIMEOUT)
        assert not left, "%d slow clients still connected" % len(left)
        assert cut_by >= deadline - 0.05
        assert wait_for(lambda: seen.running == 0), seen.running
        workers = _workers.workers_of(server)
        assert wait_for(lambda: not any(workers.values()))
    assert len(seen.errors) == SLOW_CLIENTS
    assert all(timeout_seen(exc) for exc in seen.errors)


# -- the readers themselves ---------------------------------------------------

def stock_reader(sock):
    return _streams.open_reader(sock, -1, None, True)


def buffered_reader(sock):
    return _streams.open_reader(sock, 1024, None, True)


def raw_reader(sock):
    return _streams.open_reader(sock, 0, None, True)


READERS = {"stock": stock_reader, "buffered": buffered_reader,
           "raw": raw_reader}


@pytest.fixture(params=list(READERS))
def reader_on(request, stack):
    def open_(sock):
        reader = READERS[request.param](sock)
        stack.callback(reader.close)
        return reader
    return open_


@pytest.mark.parametrize("timeout", [None, 5.0])
def test_reader_times_out_at_its_deadline(pair, reader_on, timeout):
    """A readline still waiting at the deadline raises socket.timeout, and
    the reader refuses to read on, as makefile()'s does after a timeout; the
    socket's own timeout is left as it was."""
    a, b = pair("tcp", timeout)
    reader = reader_on(a)
    holder = _streams.deadline_holder(reader)
    assert holder is not None and holder.deadline is None
    holder.deadline = time.monotonic() + 0.3
    b.sendall(b"no newline yet")
    started = time.monotonic()
    with pytest.raises(socket.timeout, match="^timed out$"):
        reader.readline()
    assert 0.25 <= time.monotonic() - started < 0.3 + MARGIN
    assert holder.timed_out
    assert a.gettimeout() == timeout
    b.sendall(b"\n")
    with pytest.raises(OSError, match="cannot read from timed out object"):
        reader.read(1)


def test_reader_takes_queued_data_after_its_deadline(pair, reader_on):
    """Only a wait can pass the deadline: data already there is read."""
    a, b = pair("unix")
    reader = reader_on(a)
    holder = _streams.deadline_holder(reader)
    b.sendall(b"here already\n")
    time.sleep(0.05)
    holder.deadline = time.monotonic() - 1.0
    assert reader.readline() == b"here already\n"
    assert not holder.timed_out
    with pytest.raises(socket.timeout):
        reader.readline()


def test_moving_the_deadline(pair, reader_on, background):
    """A deadline can be moved on, or lifted (None), between reads."""
    a, b = pair("unix")
    reader = reader_on(a)
    holder = _streams.deadline_holder(reader)
    holder.deadline = time.monotonic() + 0.2
    b.sendall(b"one\n")
    assert reader.readline() == b"one\n"
    time.sleep(0.25)
    holder.deadline = None
    background(lambda: (time.sleep(0.3), b.sendall(b"two\n")))
    assert reader.readline() == b"two\n"
    assert not holder.timed_out


def test_without_a_deadline_the_files_are_the_stock_ones(pair):
    """read_deadline None (the default): makefile()'s reader, or the
    compiled one, exactly as before."""
    a, b = pair("unix")
    stock = _streams.open_reader(a, -1)
    buffered = _streams.open_reader(a, 1024)
    try:
        if SocketReader is not None:
            assert type(stock) is SocketReader
        else:
            assert type(stock.raw) is socket.SocketIO
        assert type(buffered.raw) is socket.SocketIO
        assert _streams.deadline_holder(buffered) is None
    finally:
        stock.close()
        buffered.close()
    assert csockserver.StreamRequestHandler.read_deadline is None


@needs_compiled
def test_compiled_reader_waits_without_the_gil(pair):
    """The compiled reader's wait for its deadline lets other threads run."""
    a, b = pair("unix")
    reader = SocketReader(a)
    try:
        reader.deadline = time.monotonic() + 0.3
        ticks = []
        stop = threading.Event()

        def tick():
            while not stop.is_set():
                ticks.append(1)
                time.sleep(0.001)

        ticker = threading.Thread(target=tick)
        ticker.start()
        try:
            with pytest.raises(socket.timeout):
                reader.read(1)
        finally:
            stop.set()
            ticker.join(CLIENT_TIMEOUT)
        assert len(ticks) > 50
        with pytest.raises(ValueError):
            reader.deadline = float("nan")
        reader.deadline = None
        assert reader.deadline is None
    finally:
        reader.close()
