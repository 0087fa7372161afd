"""What the stream-file tests share: the readers and writers under test
(the compiled ones when that engine is loaded), the sizes their buffers
fill at, and helpers for threads and signals that interrupt a blocking
read or write.

The fixtures built on these (``pair``, ``background``, ``make_reader``,
``make_writer``, ``no_leaks``...) are in tests/conftest.py.  Every socket
carries a timeout and every thread is joined under a deadline, so a
failure cannot hang.
"""

import contextlib
import signal
import socketserver
import threading
import time

import pytest

import csockserver
from csockserver._engine import streams as _streams
from tests.support.env import JOIN_TIMEOUT


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

# Sizes where a buffer of 16, 100 or 8192 bytes fills up or runs out.
EDGES = sorted({edge + delta for edge in (16, 100, CHUNK, 2 * CHUNK)
                for delta in (-1, 0, 1)} | {0, 1, 2})


# -- threads -----------------------------------------------------------------

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


def outcome(fn, *args):
    """What fn(*args) did: ("ok", result) or (exception type, message)."""
    try:
        return ("ok", fn(*args))
    except Exception as exc:
        return (type(exc), str(exc))


# -- signals, for readers and writers alike ----------------------------------

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
