"""The suite's fixtures and hooks; every helper they use is in
tests/support/ and imported from there by name, here and in the tests.

Most tests run twice through the ``impl`` fixture: once against the running
interpreter's ``socketserver`` (the reference) and once against
``csockserver``, so any deviation shows up as a failing twin.
"""

import contextlib
import os
import resource
import shutil
import signal
import socket
import tempfile

import pytest

import csockserver
from csockserver._engine import selection
from tests.support.engines import ENGINES, IMPLS, engine_params
from tests.support.env import CLIENT_TIMEOUT, JOIN_TIMEOUT
from tests.support.leaks import LeakCheck
from tests.support.servers import ServerThread
from tests.support.sockets import UNIX_DIR_MAX, socket_pair
from tests.support.streams import (READERS, WRITERS, Background,
                                   implementations)


def pytest_configure(config):
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # Started as a background job of a non-interactive shell: SIGINT
        # comes in ignored, and children would inherit that.  The Ctrl-C
        # tests need it as a terminal has it; a Python handler here is
        # reset to the default in each child, which then installs its own.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    config.addinivalue_line(
        "markers", "slow: takes more than a few seconds (run anyway)")
    config.addinivalue_line(
        "markers", "prefork(n): test_haproxy's backends are prefork ones "
        "with n workers")


def pytest_report_header(config):
    return "csockserver engine: %s" % csockserver.IMPLEMENTATION


# -- the two implementations ------------------------------------------------

@pytest.fixture(params=list(IMPLS), ids=list(IMPLS))
def impl(request):
    """The module under test: the stdlib's socketserver or csockserver."""
    return IMPLS[request.param]


@pytest.fixture(params=engine_params())
def engine(request, monkeypatch):
    """The engine csockserver's servers run on in this test: "cython" (the
    compiled ``csockserver._cengine``; skipped where it does not import)
    or "python" (``csockserver._pure``), whichever one the package picked
    at import.  Returns that module.

    Sound because the shell looks the engine up at each call
    (``csockserver._engine.selection.engine``), so this replaces it for
    the test only.  Not switched: the handlers' ``rfile``/``wfile``, which
    stay those of the engine chosen at import
    (``csockserver._engine.streams`` picks them then), and
    ``csockserver.IMPLEMENTATION``, which still names that engine.  A test
    that depends on either (read deadlines, stream types) must not use it.
    """
    module = ENGINES[request.param]
    monkeypatch.setattr(selection, "engine", module)
    return module


# -- serving ---------------------------------------------------------------

@pytest.fixture
def serve():
    """Start serve_forever in a thread; stopped and closed at teardown."""
    started = []

    def start(server, poll_interval=0.05):
        runner = ServerThread(server, poll_interval).start()
        started.append(runner)
        return runner

    yield start
    for runner in started:
        runner.stop()


# -- sockets ---------------------------------------------------------------

@pytest.fixture
def unix_path(tmp_path):
    """A factory of fresh, short AF_UNIX paths (removed at teardown)."""
    base = str(tmp_path)
    made = None
    if len(os.fsencode(base)) > UNIX_DIR_MAX:
        made = base = tempfile.mkdtemp(prefix="cs", dir="/tmp")
    counter = iter(range(1 << 30))

    def make(stem="s"):
        return os.path.join(base, "%s%d.sock" % (stem, next(counter)))

    yield make
    if made is not None:
        shutil.rmtree(made, ignore_errors=True)


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


@pytest.fixture
def restore_default_timeout():
    """Put socket.getdefaulttimeout() back after the test, whatever it did."""
    saved = socket.getdefaulttimeout()
    try:
        yield
    finally:
        socket.setdefaulttimeout(saved)


@pytest.fixture
def fds_for_connections():
    """A function that makes room in RLIMIT_NOFILE for both ends of *n*
    connections in this process (and 200 fds to spare), skipping the test
    when the hard limit cannot give that many; the limit is restored."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)

    def make_room(n):
        needed = 2 * n + 200
        if soft != resource.RLIM_INFINITY and soft < needed:
            if hard != resource.RLIM_INFINITY and hard < needed:
                pytest.skip("ulimit -n is %d (hard %d): %d connections need "
                            "%d fds" % (soft, hard, n, needed))
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    try:
        yield make_room
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# -- leaks -----------------------------------------------------------------

@pytest.fixture
def leak_check():
    """A LeakCheck taken at the start of the test body."""
    return LeakCheck()


@pytest.fixture
def no_leaks():
    """Every test gives back the fds and threads it took (the stream-file
    modules ask for it with ``pytest.mark.usefixtures("no_leaks")``)."""
    leaks = LeakCheck()
    yield
    leaks.check()


# -- the stream files under test --------------------------------------------

@pytest.fixture(params=implementations(READERS))
def make_reader(request):
    """Opens a reader: ``sock.makefile('rb')`` or the compiled SocketReader."""
    return READERS[request.param]


@pytest.fixture(params=implementations(WRITERS))
def make_writer(request):
    """Opens a writer: the stdlib's _SocketWriter, ours or the compiled one."""
    return WRITERS[request.param]
