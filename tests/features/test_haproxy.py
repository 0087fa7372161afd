"""csockserver behind a real HAProxy (Debian's package), on loopback.

Three backend processes, each a csockserver HTTP server with
``proxy_protocol = "v2"`` on its own address (127.0.0.2-4), sit behind one
HAProxy in TCP mode that sends them ``send-proxy-v2`` headers and checks
their health with ``check-send-proxy`` (v2 LOCAL headers, each check
ended with a reset).  The client talks to HAProxy only; each reply says
which backend served it and which client address that backend saw.

HAProxy is not mocked, and the tests install nothing unless asked: where
``haproxy`` is missing they skip, unless CSOCKSERVER_TEST_APT=1 is set (as
CI does), when the first test installs Debian's package with
``apt-get install -y haproxy`` (as root only; else they skip too).
"""

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from tests.support.env import child_env
from tests.support.servers import wait_for

BACKEND_HOSTS = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
START_TIMEOUT = 10.0

pytestmark = pytest.mark.slow


def _installed():
    return shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None)


@pytest.fixture(scope="module")
def haproxy():
    """The haproxy binary; installed from Debian's packages only where
    CSOCKSERVER_TEST_APT=1 asks for it."""
    found = _installed()
    if found:
        return found
    if os.environ.get("CSOCKSERVER_TEST_APT") != "1":
        pytest.skip("haproxy is not installed: install it (e.g. apt-get "
                    "install haproxy), or set CSOCKSERVER_TEST_APT=1 to let "
                    "the tests install it with apt-get (as root)")
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("haproxy is not installed, and CSOCKSERVER_TEST_APT=1 "
                    "cannot install it here (needs root and apt-get)")
    try:
        subprocess.run(["apt-get", "install", "-y", "haproxy"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       timeout=600, check=True,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip("apt-get install -y haproxy failed: %s" % exc)
    found = _installed()
    if not found:
        pytest.skip("apt-get installed no haproxy binary")
    return found


# A backend: an HTTP server on csockserver with the PROXY protocol,
# answering each GET with its name and the client address it saw; it
# prints its port once serving.  Its arguments: name, host, the handler's
# base ("csockserver": csockserver.http's; "stdlib": http.server's own),
# the number of prefork workers (0: not prefork), and "log" to log as
# http.server does (a line per request on stderr) and each health check
# ("check <name>" on stderr), or "quiet".
BACKEND = textwrap.dedent("""
    import http.server, os, sys
    import csockserver
    import csockserver.http

    name, host, handler, processes, log = sys.argv[1:]
    processes = int(processes)

    class Handler(csockserver.http.BaseHTTPRequestHandler
                  if handler == "csockserver"
                  else http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):
            info = csockserver.proxy_info(self.client_address)
            if log == "log" and info is not None and info.command == "LOCAL":
                sys.stderr.write("check {}\\n".format(name))
            super().setup()

        def do_GET(self):
            body = "{} {}:{} {}".format(name, *self.client_address[:2],
                                        os.getpid()).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        if log != "log":
            def log_message(self, *args):
                pass

    base = csockserver.http.ThreadingHTTPServer
    if processes:
        class base(csockserver.PreforkMixIn, base):
            pass
        base.processes = processes

    class Server(base):
        proxy_protocol = "v2"
        proxy_protocol_from = ["127.0.0.0/8"]

    with Server((host, 0), Handler) as server:
        print(server.server_address[1], flush=True)
        server.serve_forever()
""")


class Backend:
    def __init__(self, name, host, processes=None, handler="csockserver",
                 log=None):
        """A backend process; with *log* (a file), it logs there."""
        self.name = name
        self.host = host
        args = [name, host, handler, str(processes or 0),
                "quiet" if log is None else "log"]
        # A session of its own: stop() kills a prefork backend's workers too.
        self.process = subprocess.Popen(
            [sys.executable, "-c", BACKEND] + args,
            stdout=subprocess.PIPE, stderr=log, env=child_env(), text=True,
            start_new_session=True)
        line = _read_line(self.process.stdout, START_TIMEOUT)
        assert line, "backend {} did not start".format(name)
        self.port = int(line)

    def stop(self):
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(START_TIMEOUT)
        self.process.stdout.close()


def _read_line(stream, timeout):
    """One line of a child's output, or "" if none comes in time."""
    got = []
    reader = threading.Thread(target=lambda: got.append(stream.readline()),
                              daemon=True)
    reader.start()
    reader.join(timeout)
    return got[0].strip() if got else ""


def haproxy_config(frontend_fd, backends, inter=200):
    servers = "\n".join(
        "    server {0} {1}:{2} send-proxy-v2 check check-send-proxy "
        "inter {3} fall 1 rise 1".format(b.name, b.host, b.port, inter)
        for b in backends)
    return textwrap.dedent("""\
        global
            maxconn 1000
        defaults
            mode tcp
            timeout connect 2s
            timeout client 10s
            timeout server 10s
            retries 3
            option redispatch
        frontend front
            bind fd@{fd}
            default_backend app
        backend app
            balance roundrobin
        """).format(fd=frontend_fd) + servers + "\n"


@contextlib.contextmanager
def running_cluster(haproxy, config_dir, kinds, log=None, inter=200):
    """HAProxy on a kernel-chosen port of 127.0.0.1, and a backend on each
    of BACKEND_HOSTS, of the kind kinds[i] says: (its handler's base,
    its number of prefork workers or None); with *log* (a file), the
    backends log there."""
    for host in BACKEND_HOSTS:
        try:
            probe = socket.create_server((host, 0))
        except OSError:
            pytest.skip("cannot bind {} on this machine".format(host))
        probe.close()
    backends = []
    front = socket.create_server(("127.0.0.1", 0), backlog=128)
    proxy = None
    try:
        for index, (host, (handler, processes)) in enumerate(
                zip(BACKEND_HOSTS, kinds)):
            backends.append(Backend("app%d" % (index + 1), host, processes,
                                    handler, log))
        config = config_dir / "haproxy.cfg"
        config.write_text(haproxy_config(front.fileno(), backends, inter))
        proxy = subprocess.Popen([haproxy, "-db", "-f", str(config)],
                                 pass_fds=[front.fileno()],
                                 stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE)
        address = front.getsockname()
        front.close()   # HAProxy holds its own copy
        cluster = Cluster(address, backends, proxy)
        cluster.wait_until_all_up()
        yield cluster
    finally:
        front.close()
        if proxy is not None:
            proxy.terminate()
            try:
                proxy.wait(START_TIMEOUT)
            except subprocess.TimeoutExpired:
                proxy.kill()
                proxy.wait(START_TIMEOUT)
            proxy.stderr.close()
        for backend in backends:
            backend.stop()


@pytest.fixture
def cluster(request, tmp_path, haproxy):
    """Three backends behind HAProxy (prefork ones with that many workers
    where the test is marked ``prefork(n)``)."""
    marker = request.node.get_closest_marker("prefork")
    processes = marker.args[0] if marker else None
    kinds = [("csockserver", processes)] * len(BACKEND_HOSTS)
    with running_cluster(haproxy, tmp_path, kinds) as cluster:
        yield cluster


class Cluster:
    def __init__(self, address, backends, proxy):
        self.address = address
        self.backends = backends
        self.proxy = proxy

    def get(self, timeout=5.0, source=None):
        """One HTTP/1.0 GET through HAProxy, from *source* (an address of
        127.0.0.0/8) if given: (backend name, the client address it saw,
        our own address, the pid that served it)."""
        with socket.create_connection(
                self.address, timeout,
                None if source is None else (source, 0)) as client:
            client.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
            reply = b""
            while True:
                chunk = client.recv(65536)
                if not chunk:
                    break
                reply += chunk
            mine = client.getsockname()
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), reply
        name, seen, pid = body.decode().split()
        return name, seen, "{}:{}".format(*mine), int(pid)

    def wait_until_all_up(self):
        """Until every backend has served a request through HAProxy."""
        deadline = time.monotonic() + START_TIMEOUT
        names = {b.name for b in self.backends}
        seen = set()
        while seen != names:
            assert self.proxy.poll() is None, self.proxy.stderr.read()
            assert time.monotonic() < deadline, "backends up: %s" % seen
            try:
                seen.add(self.get()[0])
            except (OSError, AssertionError, ValueError):
                time.sleep(0.05)


def load(cluster, clients, duration, stop_early=None):
    """*clients* threads doing GETs for *duration* s: (results, errors)."""
    results, errors = [], []
    deadline = time.monotonic() + duration

    def run():
        while time.monotonic() < deadline:
            try:
                results.append((time.monotonic(),) + cluster.get())
            except Exception as exc:  # counted: what the client saw
                errors.append((time.monotonic(), repr(exc)))

    threads = [threading.Thread(target=run, daemon=True)
               for _ in range(clients)]
    for thread in threads:
        thread.start()
    if stop_early is not None:
        stop_early()
    for thread in threads:
        thread.join(duration + 30)
        assert not thread.is_alive(), "a client hung"
    return results, errors


def test_every_request_served_with_the_real_client_address(cluster):
    results, errors = load(cluster, clients=4, duration=2.0)
    assert errors == []
    assert len(results) > 50
    # Each backend saw the address our socket had, not HAProxy's.
    assert all(seen == mine for _, _, seen, mine, _ in results)
    # And all three took a share (round robin).
    counts = {b.name: 0 for b in cluster.backends}
    for _, name, _, _, _ in results:
        counts[name] += 1
    assert min(counts.values()) > len(results) / 6, counts


def test_a_killed_backend_loses_only_its_in_flight_requests(cluster):
    clients = 4
    victim = cluster.backends[1]
    killed_at = []

    def kill_one():
        time.sleep(1.0)
        killed_at.append(time.monotonic())
        victim.process.kill()

    results, errors = load(cluster, clients=clients, duration=3.0,
                           stop_early=kill_one)
    # At most the requests the victim had in hand when it died.
    assert len(errors) <= clients, errors
    after = [r for r in results if r[0] > killed_at[0] + 0.5]
    assert len(after) > 20
    assert {name for _, name, _, _, _ in after} == {"app1", "app3"}
    assert all(seen == mine for _, _, seen, mine, _ in results)


@pytest.mark.prefork(2)
def test_rolling_reload_of_every_backend_under_keep_alive_load(cluster):
    """Prefork backends (two workers each) SIGHUPed one after the other
    while keep-alive clients (http.client, which does not retry) and
    connection-per-request clients go through HAProxy: every backend ends
    on new workers and no client sees an error."""
    import http.client
    stopping = threading.Event()
    lock = threading.Lock()
    replies, errors = [], []     # (backend, pid, address seen, ours)

    def keep_alive():
        conn = http.client.HTTPConnection(*cluster.address, timeout=5.0)
        try:
            while not stopping.is_set():
                conn.request("GET", "/")
                reply = conn.getresponse()
                assert reply.status == 200
                mine = "{}:{}".format(*conn.sock.getsockname()) \
                    if conn.sock else None
                name, seen, pid = reply.read().decode().split()
                with lock:
                    replies.append((name, int(pid), seen, mine))
        except Exception as exc:  # counted: what the client saw
            with lock:
                errors.append(repr(exc))
        finally:
            conn.close()

    def per_request():
        while not stopping.is_set():
            try:
                name, seen, mine, pid = cluster.get()
            except Exception as exc:  # counted: what the client saw
                with lock:
                    errors.append(repr(exc))
                continue
            with lock:
                replies.append((name, pid, seen, mine))

    def pids_of(name, last=None):
        with lock:
            rows = replies[-last:] if last else replies
            return {pid for n, pid, _, _ in rows if n == name}

    clients = [threading.Thread(target=keep_alive) for _ in range(4)]
    clients += [threading.Thread(target=per_request) for _ in range(2)]
    for thread in clients:
        thread.start()
    try:
        assert wait_for(lambda: all(pids_of(b.name) for b in cluster.backends)
                        or errors, timeout=START_TIMEOUT)
        for backend in cluster.backends:
            old = pids_of(backend.name)
            backend.process.send_signal(signal.SIGHUP)
            # Served by new workers only, among the latest replies.
            assert wait_for(lambda: (pids_of(backend.name, last=60)
                                     and not pids_of(backend.name, last=60)
                                     & old) or errors,
                            timeout=START_TIMEOUT), backend.name
    finally:
        stopping.set()
        for thread in clients:
            thread.join(START_TIMEOUT)
    assert not any(thread.is_alive() for thread in clients), "a client hung"
    assert errors == []
    assert len(replies) > 100
    assert all(seen == mine for _, _, seen, mine in replies
               if mine is not None)


# The README's configuration, with checks more often: how long they are
# watched, and the time between two checks of one backend (ms).
CHECKS_FOR = 10.0
CHECK_INTER = 100
# A client address of our own, told apart from HAProxy's (127.0.0.1).
CLIENT_HOST = "127.0.0.9"
# http.server's line for a request (from whichever host).
REQUEST_LOGGED = r'{} - - \[[^]]+\] "GET / HTTP/1\.0" 200 -'


def test_health_checks_leave_nothing_on_stderr(tmp_path, haproxy):
    """check-send-proxy: each check is a LOCAL header, then a reset.  For
    csockserver.http's handler and for http.server's own (one backend
    prefork), the backends' stderr has the check lines and the request
    log, and not one traceback; requests are logged with the client's
    address."""
    path = tmp_path / "backends.log"
    kinds = [("csockserver", None), ("stdlib", None), ("stdlib", 2)]
    with open(path, "a") as log, running_cluster(
            haproxy, tmp_path, kinds, log, CHECK_INTER) as cluster:
        time.sleep(CHECKS_FOR)
        served = set()
        deadline = time.monotonic() + START_TIMEOUT
        while served != {b.name for b in cluster.backends}:
            assert time.monotonic() < deadline, served
            name, seen, mine, _ = cluster.get(source=CLIENT_HOST)
            assert seen == mine
            served.add(name)
        ours = re.compile(REQUEST_LOGGED.format(re.escape(CLIENT_HOST)))
        assert wait_for(lambda: len(ours.findall(path.read_text()))
                        >= len(served), timeout=START_TIMEOUT)
    lines = path.read_text().splitlines()
    tracebacks = sum(line.startswith("Traceback") for line in lines)
    assert tracebacks == 0, "{} tracebacks, the first:\n{}".format(
        tracebacks, "\n".join(lines[:40]))
    checks = {b.name: lines.count("check " + b.name)
              for b in cluster.backends}
    least = CHECKS_FOR * 1000 / CHECK_INTER / 4
    assert min(checks.values()) > least, checks
    any_host = re.compile(REQUEST_LOGGED.format(r"127\.[0-9.]+"))
    others = [line for line in lines
              if not line.startswith("check ")
              and not any_host.fullmatch(line)]
    assert others == []
