"""Shared fixtures and helpers for the csockserver suite.

Most tests run twice through the ``impl`` fixture: once against the running
interpreter's ``socketserver`` (the reference) and once against
``csockserver``, so any deviation shows up as a failing twin.

Every wait here is bounded: serve_forever threads are stopped with
``shutdown()`` run under a deadline, joins take a timeout and client sockets
carry one.
"""

import gc
import glob
import os
import re
import resource
import shutil
import signal
import socket
import socketserver
import struct
import subprocess
import sys
import tempfile
import threading
import time

import pytest

import csockserver

# The stream-file tests' fixtures: socket pairs and the readers and
# writers under test (see _stream_helpers).
pytest_plugins = ["_stream_helpers"]

# How long a client waits for any one reply, and how long we wait for a
# thread or a blocking server call before calling it hung.  Both are far
# above what a passing test needs: they only bound a failing one.
CLIENT_TIMEOUT = 5.0
JOIN_TIMEOUT = 10.0

# Room left for the file name in an AF_UNIX path (sun_path is 108 bytes,
# 107 usable plus the NUL).
_UNIX_DIR_MAX = 80

HAVE_FORK = hasattr(os, "fork")
HAVE_UNIX = hasattr(socket, "AF_UNIX")

needs_fork = pytest.mark.skipif(not HAVE_FORK, reason="needs os.fork")
needs_unix = pytest.mark.skipif(not HAVE_UNIX, reason="needs AF_UNIX")


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

IMPLS = {"stdlib": socketserver, "csock": csockserver}


@pytest.fixture(params=list(IMPLS), ids=list(IMPLS))
def impl(request):
    """The module under test: the stdlib's socketserver or csockserver."""
    return IMPLS[request.param]


# -- running things under a deadline ---------------------------------------

def run_bounded(fn, *args, timeout=JOIN_TIMEOUT, **kwargs):
    """Call fn(*args, **kwargs) in a helper thread; fail if it hangs.

    The result is returned and an exception (any BaseException) re-raised in
    the caller, so a blocking server call such as handle_request() or
    shutdown() can be used as plainly as in user code, but never waits
    forever.
    """
    outcome = {}

    def target():
        try:
            outcome["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # re-raised in the caller
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="bounded-%s" % getattr(
        fn, "__name__", "call"), daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise AssertionError("%s did not return within %.1f s"
                             % (getattr(fn, "__name__", fn), timeout))
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def handle_request(server, timeout=JOIN_TIMEOUT):
    """server.handle_request(), bounded."""
    return run_bounded(server.handle_request, timeout=timeout)


def wait_for(predicate, timeout=JOIN_TIMEOUT, interval=0.005):
    """Poll predicate() until it is true or the deadline passes; return it."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def have_ipv6_loopback():
    """Whether this machine can bind ::1."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def free_port():
    """A TCP port of 127.0.0.1 the kernel just handed out and took back,
    for a tool that binds it itself (systemd-socket-activate)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def socket_activated(port, command, options=(), **popen_args):
    """systemd's own ``systemd-socket-activate``, listening on
    127.0.0.1:*port*, which starts *command* (a Python child of this
    csockserver: the engine's variables are passed on) at the first
    connection.  Its own session, so that a killpg ends it all."""
    env = child_env()
    passed = [name for name in ("PYTHONPATH", "CSOCKSERVER_NO_EXTENSIONS",
                                "CSOCKSERVER_REQUIRE_EXTENSIONS")
              if name in env]
    return subprocess.Popen(
        ["systemd-socket-activate", "--listen=127.0.0.1:%d" % port]
        + list(options) + ["--setenv=" + name for name in passed]
        + list(command), env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
        **popen_args)


def connect_when_listening(port, timeout=JOIN_TIMEOUT):
    """A client of 127.0.0.1:*port* once something listens there, or None
    if nothing does within *timeout*."""
    def connect():
        try:
            return socket.create_connection(("127.0.0.1", port),
                                            timeout=CLIENT_TIMEOUT)
        except ConnectionRefusedError:
            return None
    return wait_for(connect, timeout=timeout)


class ServerThread:
    """serve_forever() in a thread, stopped the way users stop it.

    ``stop()`` calls shutdown() (bounded), joins the thread (bounded) and
    server_close() (bounded, since the mix-ins join threads or children),
    then re-raises whatever serve_forever() raised.
    """

    def __init__(self, server, poll_interval=0.05):
        self.server = server
        self.poll_interval = poll_interval
        self.error = None
        self.stopped = False
        self.thread = threading.Thread(target=self._run, name="serve_forever",
                                       daemon=True)

    def _run(self):
        try:
            self.server.serve_forever(poll_interval=self.poll_interval)
        except BaseException as exc:  # reported by stop()
            self.error = exc

    def start(self):
        self.thread.start()
        return self

    def shutdown(self, timeout=JOIN_TIMEOUT):
        """shutdown() + join, without closing the server."""
        if self.thread.is_alive():
            run_bounded(self.server.shutdown, timeout=timeout)
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "serve_forever did not return"

    def stop(self, timeout=JOIN_TIMEOUT, close=True):
        if self.stopped:
            return
        self.stopped = True
        try:
            self.shutdown(timeout)
        finally:
            if close:
                try:
                    run_bounded(self.server.server_close, timeout=timeout)
                except AssertionError:
                    kill_children(self.server)
                    raise
        if self.error is not None:
            raise self.error

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()


def kill_children(server):
    """SIGKILL a forking server's children that outlived a failed test."""
    for pid in list(getattr(server, "active_children", None) or ()):
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except OSError:
            pass


def serving(server, poll_interval=0.05):
    """``with serving(server): ...`` runs serve_forever for the block."""
    return ServerThread(server, poll_interval)


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


# -- clients ---------------------------------------------------------------

def stream_client(server, timeout=CLIENT_TIMEOUT):
    """A connected client socket for a stream server of any family."""
    sock = socket.socket(server.address_family, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(server.server_address)
    except BaseException:
        sock.close()
        raise
    return sock


def recv_until_eof(sock, limit=1 << 20):
    """Everything the peer sends until it closes."""
    chunks = []
    size = 0
    while size < limit:
        chunk = sock.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def reset_on_close(sock):
    """Make close() send RST, not FIN (SO_LINGER on, with a zero timeout)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                    struct.pack("ii", 1, 0))


def recv_line(sock):
    """One line (up to and including b"\\n") or what came before EOF."""
    data = bytearray()
    while not data.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        data += chunk
    return bytes(data)


# -- unix socket paths -----------------------------------------------------

@pytest.fixture
def unix_path(tmp_path):
    """A factory of fresh, short AF_UNIX paths (removed at teardown)."""
    base = str(tmp_path)
    made = None
    if len(os.fsencode(base)) > _UNIX_DIR_MAX:
        made = base = tempfile.mkdtemp(prefix="cs", dir="/tmp")
    counter = iter(range(1 << 30))

    def make(stem="s"):
        return os.path.join(base, "%s%d.sock" % (stem, next(counter)))

    yield make
    if made is not None:
        shutil.rmtree(made, ignore_errors=True)


# -- leaks -----------------------------------------------------------------

def _sanitizer_log_prefix():
    """Where ThreadSanitizer writes its reports (make tsan), or None: it
    opens that file at its first report, in the middle of some test."""
    match = re.search(r"(?:^|\s)log_path=(\S+)",
                      os.environ.get("TSAN_OPTIONS", ""))
    return match.group(1) if match else None


_SANITIZER_LOG = _sanitizer_log_prefix()


def open_fds():
    """The set of this process's open file descriptors (not counting a
    sanitizer's report file)."""
    fds = set()
    # listdir() holds one fd of its own while it reads; it is closed (and so
    # no longer in /proc) by the time we look each entry up.
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink("/proc/self/fd/" + name)
        except FileNotFoundError:
            continue
        if _SANITIZER_LOG and target.startswith(_SANITIZER_LOG):
            continue
        fds.add(int(name))
    return fds


def fd_count():
    return len(open_fds())


def live_threads():
    return set(threading.enumerate())


class LeakCheck:
    """Snapshot of fds and threads; ``check()`` waits for a return to it."""

    def __init__(self):
        gc.collect()
        self.fds = open_fds()
        self.threads = live_threads()

    def extra(self):
        gc.collect()
        return open_fds() - self.fds, live_threads() - self.threads

    def check(self, timeout=3.0):
        # Joined threads are gone at once, but a socket dropped by a finished
        # thread may wait for the collector: poll a little before failing.
        deadline = time.monotonic() + timeout
        while True:
            extra_fds, extra_threads = self.extra()
            if not (extra_fds or extra_threads) or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        assert not extra_fds, "leaked fds: %s" % _describe_fds(extra_fds)
        assert not extra_threads, "leaked threads: %s" % sorted(
            t.name for t in extra_threads)


def _describe_fds(fds):
    described = []
    for fd in sorted(fds):
        try:
            described.append("%d -> %s" % (fd, os.readlink(
                "/proc/self/fd/%d" % fd)))
        except OSError:
            described.append(str(fd))
    return ", ".join(described)


@pytest.fixture
def leak_check():
    """A LeakCheck taken at the start of the test body."""
    return LeakCheck()


@pytest.fixture
def restore_default_timeout():
    """Put socket.getdefaulttimeout() back after the test, whatever it did."""
    saved = socket.getdefaulttimeout()
    try:
        yield
    finally:
        socket.setdefaulttimeout(saved)


# -- engine-independent process helpers -------------------------------------

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(
    csockserver.__file__)))


def child_env():
    """The environment for a child Python that imports this csockserver.

    Everything is passed through (so CSOCKSERVER_NO_EXTENSIONS, hence the
    engine choice, is inherited); the repository goes first on PYTHONPATH.
    """
    env = dict(os.environ)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = REPO_ROOT + (os.pathsep + path if path else "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


PYTHON = sys.executable


def other_pythons():
    """pyenv's CPython 3.8+ interpreters other than this one: the pure
    engine runs on each without a build."""
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    found = {}
    for python in sorted(glob.glob(os.path.join(root, "versions", "*",
                                                "bin", "python3"))):
        version = os.path.basename(os.path.dirname(os.path.dirname(python)))
        match = re.fullmatch(r"3\.(\d+)\.\d+", version)
        if (match and int(match.group(1)) >= 8
                and os.path.realpath(python)
                != os.path.realpath(sys.executable)):
            found[version] = python
    return found


def pure_engine_env(tmp_path):
    """An environment in which another interpreter imports this
    csockserver's pure engine, and nothing else from this one's paths."""
    package = os.path.dirname(csockserver.__file__)
    os.symlink(package, tmp_path / "csockserver")
    env = dict(os.environ, PYTHONPATH=str(tmp_path),
               CSOCKSERVER_NO_EXTENSIONS="1", PYTHONUNBUFFERED="1")
    env.pop("CSOCKSERVER_REQUIRE_EXTENSIONS", None)
    return env


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
