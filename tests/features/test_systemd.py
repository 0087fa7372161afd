"""systemd integration: socket activation, sd_notify and the watchdog.

systemd's side is played for real and in small: the notification socket is
an AF_UNIX datagram socket the test binds and reads (which is all systemd
does), and socket activation is a launcher that does what systemd does
between fork() and exec(): move the sockets to fd 3 on, set LISTEN_FDS,
LISTEN_PID (its own pid, which exec keeps) and LISTEN_FDNAMES, then exec
the service.  Where systemd-socket-activate is installed, one more test
lets systemd's own tool do it.

These run on whichever engine the suite runs on; the children inherit the
choice (``child_env``).
"""

import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import threading
import time

import pytest

import csockserver
from csockserver import _systemd
from tests.support.clients import (connect_when_listening, recv_line,
                                   stream_client)
from tests.support.env import (CLIENT_TIMEOUT, JOIN_TIMEOUT, PYTHON, child_env,
                               needs_fork)
from tests.support.servers import serving, socket_activated, wait_for
from tests.support.sockets import free_port

# <asm-generic/socket.h>; Python's socket module does not name it.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
SYSTEMD_VARS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID",
                "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


@pytest.fixture(autouse=True)
def no_systemd(monkeypatch):
    """Start every test outside systemd, whatever runs the suite."""
    for name in SYSTEMD_VARS:
        monkeypatch.delenv(name, raising=False)


class Echo(csockserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.readline())


class NotifyingServer(csockserver.TCPServer):
    systemd_notify = True


class FakeSystemd:
    """The manager's end of NOTIFY_SOCKET: a datagram socket we read.

    As systemd does for NotifyAccess=main, it learns each sender's pid from
    the kernel (SO_PASSCRED): ``senders`` lists them in order of receipt.
    ``sent_at`` is when the kernel queued the last message read
    (SO_TIMESTAMPNS, seconds): unlike the time a thread reads it, that
    does not move with how soon the reading thread gets a core.
    """

    def __init__(self, address):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock.bind(address)
        self.sock.settimeout(CLIENT_TIMEOUT)
        self.address = address
        self.senders = []
        self.sent_at = None

    def _recv(self):
        data, ancillary, _, _ = self.sock.recvmsg(
            4096, socket.CMSG_SPACE(struct.calcsize("3i"))
            + socket.CMSG_SPACE(struct.calcsize("2q")))
        pid = None
        for level, kind, value in ancillary:
            if (level, kind) == (socket.SOL_SOCKET, socket.SCM_CREDENTIALS):
                pid = struct.unpack_from("3i", value)[0]
            elif (level, kind) == (socket.SOL_SOCKET, SO_TIMESTAMPNS):
                seconds, nanoseconds = struct.unpack_from("2q", value)
                self.sent_at = seconds + nanoseconds / 1e9
        self.senders.append(pid)
        return data.decode()

    @property
    def env_value(self):
        if self.address.startswith("\0"):
            return "@" + self.address[1:]
        return self.address

    def recv(self, timeout=CLIENT_TIMEOUT):
        self.sock.settimeout(timeout)
        return self._recv()

    def pending(self):
        """Every message already queued, without waiting."""
        messages = []
        self.sock.setblocking(False)
        try:
            while True:
                messages.append(self._recv())
        except BlockingIOError:
            return messages
        finally:
            self.sock.settimeout(CLIENT_TIMEOUT)

    def close(self):
        self.sock.close()


@pytest.fixture
def fake_systemd(unix_path, monkeypatch):
    manager = FakeSystemd(unix_path("notify"))
    monkeypatch.setenv("NOTIFY_SOCKET", manager.env_value)
    yield manager
    manager.close()


def echo_once(server):
    with stream_client(server) as client:
        client.sendall(b"ping\n")
        assert recv_line(client) == b"ping\n"


# -- sd_notify -------------------------------------------------------------

def test_notify_sends_one_datagram(fake_systemd):
    assert _systemd.notify("STATUS=warming up\nEXTEND_TIMEOUT_USEC=5")
    assert fake_systemd.recv() == "STATUS=warming up\nEXTEND_TIMEOUT_USEC=5"
    assert fake_systemd.senders == [os.getpid()]


def test_notify_abstract_socket_name(monkeypatch):
    name = "\0csockserver-test-%d-%d" % (os.getpid(), time.monotonic_ns())
    manager = FakeSystemd(name)
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", manager.env_value)
        assert manager.env_value.startswith("@")
        assert _systemd.ready()
        assert manager.recv() == "READY=1\nMAINPID=%d" % os.getpid()
    finally:
        manager.close()


def test_notify_without_socket_is_a_no_op():
    assert _systemd.notify("READY=1") is False
    assert _systemd.Watchdog.from_environment() is None


def test_notify_to_a_missing_socket_does_not_raise(unix_path, monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", unix_path("gone"))
    assert _systemd.notify("READY=1") is False
    monkeypatch.setenv("NOTIFY_SOCKET", "vsock:2:1234")  # not spoken here
    assert _systemd.notify("READY=1") is False


def test_reloading_carries_the_monotonic_clock(fake_systemd):
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    _systemd.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    first, second = fake_systemd.recv().split("\n")
    assert first == "RELOADING=1"
    name, _, usec = second.partition("=")
    assert name == "MONOTONIC_USEC" and before <= int(usec) <= after
    _systemd.stopping()
    assert fake_systemd.recv() == "STOPPING=1"


# -- serve_forever and systemd_notify --------------------------------------

def test_serve_forever_says_ready_then_stopping(fake_systemd):
    with NotifyingServer(("127.0.0.1", 0), Echo) as server:
        with serving(server):
            assert fake_systemd.recv() == "READY=1\nMAINPID=%d" % os.getpid()
            echo_once(server)
        assert fake_systemd.recv() == "STOPPING=1"
        assert fake_systemd.pending() == []  # no watchdog was asked for


def test_systemd_notify_is_off_by_default(fake_systemd):
    with csockserver.TCPServer(("127.0.0.1", 0), Echo) as server:
        with serving(server):
            echo_once(server)
    assert fake_systemd.pending() == []


def test_systemd_notify_outside_systemd_serves(unix_path, monkeypatch):
    # No NOTIFY_SOCKET, then one nobody listens on: serving goes on.
    for value in (None, unix_path("gone")):
        if value is not None:
            monkeypatch.setenv("NOTIFY_SOCKET", value)
        with NotifyingServer(("127.0.0.1", 0), Echo) as server:
            with serving(server):
                echo_once(server)


class Collector:
    """Reads the fake manager's messages with the times they were read."""

    def __init__(self, manager):
        self.manager = manager
        self.messages = []
        self.sent_at = []       # the kernel's times, one per message
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.done.is_set():
            try:
                message = self.manager.recv(timeout=0.05)
            except socket.timeout:
                continue
            self.messages.append((time.monotonic(), message))
            self.sent_at.append(self.manager.sent_at)
            if message == "STOPPING=1":
                return

    def names(self):
        return [message for _, message in self.messages]

    def stop(self):
        self.thread.join(JOIN_TIMEOUT)
        self.done.set()
        self.thread.join(JOIN_TIMEOUT)


WATCHDOG_USEC = 600000          # systemd's limit: 0.6 s without a ping
WATCHDOG_LIMIT = WATCHDOG_USEC / 1e6


def ping_gaps(collector):
    """Seconds between consecutive WATCHDOG=1 pings, as sent."""
    times = [sent for sent, (_, message)
             in zip(collector.sent_at, collector.messages)
             if message == "WATCHDOG=1"]
    return [b - a for a, b in zip(times, times[1:])]


def assert_about_half_the_limit(gaps):
    # Sent 3/8 to 1/2 of the limit apart; a busy machine may add some.
    assert len(gaps) >= 3, gaps
    assert min(gaps) > WATCHDOG_LIMIT / 3, gaps        # not on every wake
    assert (WATCHDOG_LIMIT / 3 < statistics.median(gaps)
            < WATCHDOG_LIMIT * 0.55), gaps
    assert max(gaps) < WATCHDOG_LIMIT * 0.75, gaps     # well within it


def test_watchdog_pings_between_ready_and_stopping(fake_systemd,
                                                   monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", str(WATCHDOG_USEC))
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    collector = Collector(fake_systemd)
    with NotifyingServer(("127.0.0.1", 0), Echo) as server:
        with serving(server, poll_interval=30):  # the watchdog wakes it
            assert wait_for(lambda: len(collector.messages) >= 3)
            # A burst of requests, each followed by service_actions: the
            # pings keep their pace.
            deadline = time.monotonic() + WATCHDOG_LIMIT
            while time.monotonic() < deadline:
                echo_once(server)
            assert wait_for(lambda: len(collector.messages) >= 6)
            assert "service_actions" in vars(server)  # the pinging shadow
        assert "service_actions" not in vars(server)
    collector.stop()
    names = collector.names()
    assert names[0] == "READY=1\nMAINPID=%d" % os.getpid()
    assert names[-1] == "STOPPING=1"
    assert set(names[1:-1]) == {"WATCHDOG=1"}
    assert_about_half_the_limit(ping_gaps(collector))


def test_watchdog_stops_while_the_loop_hangs(fake_systemd, monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", str(WATCHDOG_USEC))
    release = threading.Event()
    hung = {}

    class Stuck(csockserver.BaseRequestHandler):
        def handle(self):       # runs on the loop's own thread
            hung["from"] = time.monotonic()
            release.wait(JOIN_TIMEOUT)
            hung["to"] = time.monotonic()

    collector = Collector(fake_systemd)
    with NotifyingServer(("127.0.0.1", 0), Stuck) as server:
        with serving(server):
            assert wait_for(lambda: len(collector.messages) >= 3)
            with stream_client(server):
                assert wait_for(lambda: "from" in hung)
                time.sleep(3 * WATCHDOG_LIMIT)
                release.set()
            count = len(collector.messages)
            assert wait_for(lambda: len(collector.messages) >= count + 2)
    collector.stop()
    during = [message for when, message in collector.messages
              if hung["from"] + 0.05 < when < hung["to"]]
    after = [message for when, message in collector.messages
             if when > hung["to"]]
    assert during == []
    assert "WATCHDOG=1" in after


def test_watchdog_for_another_pid_is_not_ours(fake_systemd, monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "100000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getppid()))
    with NotifyingServer(("127.0.0.1", 0), Echo) as server:
        with serving(server):
            assert fake_systemd.recv().startswith("READY=1\n")
            time.sleep(0.1)
            assert "service_actions" not in vars(server)
    assert fake_systemd.pending() == ["STOPPING=1"]


def test_watchdog_keeps_service_actions_and_threads(fake_systemd,
                                                    monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    calls = []

    class Server(csockserver.ThreadingTCPServer):
        systemd_notify = True

        def service_actions(self):
            calls.append(1)

    with Server(("127.0.0.1", 0), Echo) as server:
        own = server.service_actions = lambda: calls.append(2)
        with serving(server, poll_interval=30):
            for _ in range(3):
                echo_once(server)
            # Woken every 1/8 of the limit: 12 calls span over 3 pings.
            assert wait_for(lambda: calls.count(2) >= 12)
        assert vars(server)["service_actions"] is own
    assert 1 not in calls  # the instance's own one was the one called
    messages = fake_systemd.pending()
    assert messages[0].startswith("READY=1\n")
    assert messages[-1] == "STOPPING=1"
    assert messages.count("WATCHDOG=1") >= 2


@needs_fork
def test_prefork_supervisor_alone_notifies_and_pings(fake_systemd,
                                                    monkeypatch):
    # No WATCHDOG_PID: a worker that pinged would pass for the service.
    monkeypatch.setenv("WATCHDOG_USEC", str(WATCHDOG_USEC))

    class Server(csockserver.PreforkTCPServer):
        systemd_notify = True
        processes = 2

    collector = Collector(fake_systemd)
    with Server(("127.0.0.1", 0), Echo) as server:
        with serving(server):
            assert wait_for(lambda: "READY=1\nMAINPID=%d" % os.getpid()
                            in collector.names())
            for _ in range(4):
                echo_once(server)
            assert wait_for(lambda: len(collector.messages) >= 6)
    collector.stop()
    # Pings may come before READY=1 too (from the supervisor's first turn).
    assert [name for name in collector.names() if name != "WATCHDOG=1"] == [
        "READY=1\nMAINPID=%d" % os.getpid(), "STOPPING=1"]
    assert_about_half_the_limit(ping_gaps(collector))
    assert set(fake_systemd.senders) == {os.getpid()}  # no worker's


# -- socket activation: the environment ------------------------------------

def test_listen_fds_for_another_pid(monkeypatch):
    monkeypatch.setenv("LISTEN_PID", str(os.getppid()))
    monkeypatch.setenv("LISTEN_FDS", "1")
    monkeypatch.setenv("LISTEN_FDNAMES", "web")
    assert _systemd.listen_fds() == []
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        assert name not in os.environ  # not ours, nor our children's


def test_from_systemd_without_sockets():
    with pytest.raises(RuntimeError, match="systemd passed no socket"):
        csockserver.TCPServer.from_systemd(Echo)


# -- socket activation: a service started the way systemd starts one --------

# Between fork() and exec(), what systemd does: the sockets to fd 3 on, the
# variables (LISTEN_PID is the launcher's pid, kept by exec), then exec.
LAUNCHER = r"""
import fcntl, os, sys
fds, listen_pid, names, script = sys.argv[1:5]
fds = [int(fd) for fd in fds.split(",")]
moved = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 100) for fd in fds]
for fd in fds:
    os.close(fd)
for i, fd in enumerate(moved):
    os.dup2(fd, 3 + i)  # inheritable
    os.close(fd)
os.environ["LISTEN_FDS"] = str(len(fds))
if listen_pid == "self":
    listen_pid = str(os.getpid())
os.environ["LISTEN_PID"] = listen_pid
if names:
    os.environ["LISTEN_FDNAMES"] = names
os.execv(sys.executable, [sys.executable, "-c", script] + sys.argv[5:])
"""

# The service's first lines: what it inherited, and what its children see.
PRELUDE = r"""
import json, os, subprocess, sys
import csockserver
from csockserver import _systemd

def report(**values):
    print(json.dumps(values), flush=True)

def children_see():
    code = ("import os; "
            "print([k for k in os.environ if k.startswith('LISTEN_')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, check=True).stdout.strip()
    return {"exec": out,
            "here": [k for k in os.environ if k.startswith("LISTEN_")]}

class Echo(csockserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.readline())

class DatagramEcho(csockserver.DatagramRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.read())
"""


def launch(socks, script, listen_pid="self", names="", env=None, args=()):
    """Start *script* as systemd would start a service with *socks*, in a
    session of its own (``kill_service`` ends it with any children)."""
    fds = [sock.fileno() for sock in socks]
    proc = subprocess.Popen(
        [PYTHON, "-c", LAUNCHER, ",".join(map(str, fds)), listen_pid, names,
         PRELUDE + script, *args],
        pass_fds=fds, env=dict(child_env(), **(env or {})),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    for sock in socks:
        sock.close()  # the service's now, as with systemd's copy
    return proc


def kill_service(proc):
    """SIGKILL the service's session (the service and any workers), and
    return what it wrote to stderr if that was not read yet."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if proc.returncode is None:
        return proc.communicate(timeout=JOIN_TIMEOUT)[1]
    return ""


@contextlib.contextmanager
def talking_to(proc):
    """A block of client code; if it fails, the service's stderr tells why."""
    try:
        yield
    except BaseException as exc:
        raise AssertionError("the service said: %s"
                             % kill_service(proc)) from exc


def finish(proc):
    """The reports the service printed; it must exit cleanly."""
    try:
        out, err = proc.communicate(timeout=JOIN_TIMEOUT)
    except subprocess.TimeoutExpired:
        kill_service(proc)
        raise AssertionError("the service did not exit")
    assert proc.returncode == 0, err
    return [json.loads(line) for line in out.splitlines()]


def tcp_listener():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def test_socket_activation_serves_a_request():
    listener = tcp_listener()
    address = listener.getsockname()
    proc = launch([listener], r"""
server = csockserver.TCPServer.from_systemd(Echo)
report(engine=csockserver.IMPLEMENTATION, address=server.server_address,
       fd=server.fileno(), inheritable=os.get_inheritable(server.fileno()),
       passed=_systemd.listen_fds(), children=children_see())
server.handle_request()
server.server_close()
""")
    with socket.create_connection(address, timeout=CLIENT_TIMEOUT) as client:
        client.sendall(b"through systemd\n")
        assert recv_line(client) == b"through systemd\n"
    [report] = finish(proc)
    assert report["engine"] == csockserver.IMPLEMENTATION
    assert tuple(report["address"]) == address
    assert report["fd"] == 3 and report["inheritable"] is False
    assert report["passed"] == [[3, "unknown"]]  # still known, once read
    assert report["children"] == {"exec": "[]", "here": []}


def test_socket_activation_by_name_index_and_type(unix_path):
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp_address = udp.getsockname()
    path = unix_path("ctl")
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(path)
    unix.listen()
    log_path = unix_path("log")
    log = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    log.bind(log_path)
    proc = launch([udp, unix, log], r"""
passed = _systemd.listen_fds()
errors = {}
try:
    csockserver.TCPServer.from_systemd(Echo, index=0)
except ValueError as exc:
    errors["type"] = str(exc)
try:
    csockserver.TCPServer.from_systemd(Echo, index=3)
except IndexError as exc:
    errors["index"] = str(exc)
control = csockserver.UnixStreamServer.from_systemd(Echo, index=1)
try:
    csockserver.UnixStreamServer.from_systemd(Echo, index=1)
except RuntimeError as exc:
    errors["again"] = str(exc)
dns = csockserver.ThreadingUDPServer.from_systemd(DatagramEcho, index=0)
logs = csockserver.UnixDatagramServer.from_systemd(DatagramEcho, index=2)
report(passed=passed, errors=errors, control=control.server_address,
       family=int(control.address_family), dns=dns.server_address,
       logs=logs.server_address)
for server in (dns, control, logs):
    server.handle_request()
for server in (dns, control, logs):   # the threaded one's reply is sent
    server.server_close()
""", names="dns:control:log")
    with talking_to(proc):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(CLIENT_TIMEOUT)
            client.sendto(b"datagram", udp_address)
            assert client.recv(100) == b"datagram"
        with socket.socket(socket.AF_UNIX) as client:
            client.settimeout(CLIENT_TIMEOUT)
            client.connect(path)
            client.sendall(b"unix\n")
            assert recv_line(client) == b"unix\n"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as client:
            client.settimeout(CLIENT_TIMEOUT)
            client.bind(unix_path("client"))   # somewhere to reply to
            client.sendto(b"logged", log_path)
            assert client.recv(100) == b"logged"
    [report] = finish(proc)
    assert report["passed"] == [[3, "dns"], [4, "control"], [5, "log"]]
    assert report["errors"] == {
        "type": "TCPServer needs a SOCK_STREAM socket, but fd 3 ('dns') "
                "from systemd is SOCK_DGRAM",
        "index": "socket index 3, but systemd passed 3",
        "again": "fd 4 ('control') from systemd was already taken by "
                 "another server",
    }
    assert report["control"] == path
    assert report["family"] == socket.AF_UNIX
    assert tuple(report["dns"]) == udp_address
    assert report["logs"] == log_path


def listen_backlog(port):
    """The backlog of the socket listening on 127.0.0.1:*port*, from ss."""
    out = subprocess.run(["ss", "-ltn", "sport = :%d" % port],
                         capture_output=True, text=True, check=True,
                         timeout=CLIENT_TIMEOUT).stdout
    [line] = [line for line in out.splitlines()
              if line.startswith("LISTEN")]
    return int(line.split()[2])   # Send-Q, for a listening socket


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss")
def test_from_systemd_keeps_the_units_backlog_and_sets_the_mode():
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen(3)               # Backlog=3
    listening.setblocking(False)      # NonBlocking=yes
    bound = socket.socket()           # not listening (not from systemd)
    bound.bind(("127.0.0.1", 0))
    # Kept here to look at the sockets once the service has exited.
    seen = [listening.dup(), bound.dup()]
    proc = launch([listening, bound], r"""
import socket
servers = [csockserver.TCPServer.from_systemd(Echo, index=i)
           for i in (0, 1)]
report(blocking=[os.get_blocking(s.fileno()) for s in servers],
       listening=[s.socket.getsockopt(socket.SOL_SOCKET,
                                      socket.SO_ACCEPTCONN)
                  for s in servers])
""")
    try:
        [report] = finish(proc)
        assert report == {"blocking": [True, True], "listening": [1, 1]}
        assert os.get_blocking(seen[0].fileno())  # the same description
        assert listen_backlog(seen[0].getsockname()[1]) == 3
        with open("/proc/sys/net/core/somaxconn") as limit:  # the cap
            expected = min(csockserver.TCPServer.request_queue_size,
                           int(limit.read()))
        assert listen_backlog(seen[1].getsockname()[1]) == expected
    finally:
        for sock in seen:
            sock.close()


def test_socket_activation_for_another_pid_is_ignored():
    listener = tcp_listener()
    proc = launch([listener], r"""
try:
    csockserver.TCPServer.from_systemd(Echo)
except RuntimeError as exc:
    error = str(exc)
report(error=error, passed=_systemd.listen_fds(),
       fd3_inheritable=os.get_inheritable(3), children=children_see())
""", listen_pid=str(os.getpid()))
    [report] = finish(proc)
    assert report["error"].startswith("systemd passed no socket")
    assert report["passed"] == []
    assert report["fd3_inheritable"] is True  # not touched: not ours
    assert report["children"] == {"exec": "[]", "here": []}


def test_from_systemd_calls_the_bind_and_activate_hooks():
    listener = tcp_listener()
    address = listener.getsockname()
    proc = launch([listener], r"""
from csockserver.http import HTTPServer, BaseHTTPRequestHandler
calls = []

class Server(HTTPServer):
    request_queue_size = 7

    def server_bind(self):
        calls.append("bind")
        super().server_bind()

    def server_activate(self):
        calls.append("activate")
        super().server_activate()

server = Server.from_systemd(BaseHTTPRequestHandler)
report(calls=calls, port=server.server_port, name=bool(server.server_name))
server.server_close()
""")
    [report] = finish(proc)
    assert report == {"calls": ["bind", "activate"], "port": address[1],
                      "name": True}


def test_socket_activation_with_notify_and_sigterm(unix_path):
    manager = FakeSystemd(unix_path("notify"))
    listener = tcp_listener()
    address = listener.getsockname()
    proc = launch([listener], r"""
import signal

class Server(csockserver.ThreadingTCPServer):
    systemd_notify = True

server = Server.from_systemd(Echo)

def on_sigterm(signum, frame):  # how systemd stops a service
    server._BaseServer__shutdown_request = True
signal.signal(signal.SIGTERM, on_sigterm)
server.serve_forever()
server.server_close()
""", env={"NOTIFY_SOCKET": manager.env_value})
    try:
        assert manager.recv() == "READY=1\nMAINPID=%d" % proc.pid
        with socket.create_connection(address,
                                      timeout=CLIENT_TIMEOUT) as client:
            client.sendall(b"notified\n")
            assert recv_line(client) == b"notified\n"
        proc.terminate()
        assert manager.recv() == "STOPPING=1"
        finish(proc)
        assert manager.senders == [proc.pid, proc.pid]
    finally:
        kill_service(proc)
        manager.close()


def monotonic_usec():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def children_of(pid):
    with open("/proc/%d/task/%d/children" % (pid, pid)) as children:
        return set(map(int, children.read().split()))


@needs_fork
@pytest.mark.skipif(not os.path.exists("/proc/self/task/%d/children"
                                       % os.getpid()),
                    reason="needs /proc/<pid>/task/<pid>/children")
def test_prefork_reload_says_reloading_then_ready(unix_path, tmp_path):
    manager = FakeSystemd(unix_path("notify"))
    slow = tmp_path / "slow"
    listener = tcp_listener()
    address = listener.getsockname()
    proc = launch([listener], r"""
import time
from csockserver._prefork.link import Link

# Once the test makes the file, a new worker takes 0.5 s to serve.
tell = Link.tell
def slow_tell(link, message):
    if message == Link.READY and os.path.exists(sys.argv[1]):
        time.sleep(0.5)
    tell(link, message)
Link.tell = slow_tell

class Pid(csockserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(b"%d\n" % os.getpid())

class Server(csockserver.PreforkTCPServer):
    systemd_notify = True
    processes = 2

server = Server.from_systemd(Pid)
server.serve_forever()   # until SIGTERM, as systemd stops it
server.server_close()
""", env={"NOTIFY_SOCKET": manager.env_value}, args=[str(slow)])

    def served_by():
        with socket.create_connection(address,
                                      timeout=CLIENT_TIMEOUT) as client:
            return int(recv_line(client))

    try:
        ready = "READY=1\nMAINPID=%d" % proc.pid
        assert manager.recv() == ready
        old = children_of(proc.pid)
        assert len(old) == 2 and served_by() in old
        slow.touch()
        before = monotonic_usec()
        proc.send_signal(signal.SIGHUP)
        first, second = manager.recv().split("\n")
        reloading_at = time.monotonic()
        assert first == "RELOADING=1"
        name, _, usec = second.partition("=")
        assert name == "MONOTONIC_USEC"
        assert before <= int(usec) <= monotonic_usec()
        assert manager.recv() == ready
        # Not before the new workers serve (each took 0.5 s to).
        assert time.monotonic() - reloading_at > 0.4
        assert wait_for(lambda: not old & children_of(proc.pid))
        assert served_by() not in old
        proc.terminate()
        assert manager.recv() == "STOPPING=1"
        finish(proc)
        assert manager.pending() == []
        assert set(manager.senders) == {proc.pid}  # never a worker
    finally:
        kill_service(proc)
        manager.close()


# -- with systemd's own launcher ---------------------------------------------

@pytest.mark.skipif(shutil.which("systemd-socket-activate") is None,
                    reason="systemd-socket-activate is not installed")
def test_systemd_socket_activate():
    port = free_port()
    proc = socket_activated(port, [PYTHON, "-c", PRELUDE + r"""
server = csockserver.TCPServer.from_systemd(Echo)
report(engine=csockserver.IMPLEMENTATION, passed=_systemd.listen_fds(),
       children=children_see())
server.handle_request()
server.server_close()
"""], options=["--fdname=web"])
    try:
        # The tool binds, then starts the service on the first connection.
        client = connect_when_listening(port)
        assert client is not None, "systemd-socket-activate never listened"
        with client:
            client.sendall(b"the real thing\n")
            assert recv_line(client) == b"the real thing\n"
        [report] = finish(proc)
    finally:
        kill_service(proc)
    assert report["engine"] == csockserver.IMPLEMENTATION
    assert report["passed"] == [[3, "web"]]
    assert report["children"] == {"exec": "[]", "here": []}
