"""PreforkMixIn's lifecycle, as gunicorn's arbiter has it: workers that die
with their supervisor, SIGHUP's rolling reload, graceful_timeout,
max_requests, SIGTTIN/SIGTTOU and reuse_port_per_worker.

Each test runs a supervisor in a child process (``tests.support.prefork``).
"""

import itertools
import os
import time
import signal
import socket
import subprocess
import textwrap
import threading

import pytest

from tests.support.env import (CLIENT_TIMEOUT, JOIN_TIMEOUT, PYTHON, child_env,
                               needs_fork)
from tests.support.prefork import (Supervised, ask, port_is_free,
                                   start_sleeping)
from tests.support.procs import is_running
from tests.support.servers import wait_for

pytestmark = needs_fork


# -- 1. workers exit when the supervisor dies --------------------------------

@pytest.mark.parametrize("guard", ["pdeathsig", "watcher"])
def test_workers_exit_when_the_supervisor_is_killed(guard):
    """kill -9 of the supervisor: within 2 s no worker is left and the port
    is free (PR_SET_PDEATHSIG; the watcher thread alone without it)."""
    attrs = {"processes": 2, "no_pdeathsig": guard == "watcher"}
    with Supervised(**attrs) as sup:
        workers = sup.wait_pids(lambda pids: len(pids) == 2)
        assert ask(sup.port) in workers
        sup.signal(signal.SIGKILL)
        sup.proc.wait(JOIN_TIMEOUT)
        # One deadline for both: a worker's fds outlive its main thread's
        # exit by as long as its other threads take to end.
        assert wait_for(lambda: not any(is_running(pid, sup.pgid)
                                        for pid in workers)
                        and port_is_free(sup.port), timeout=2.0)


# -- 2. SIGHUP: a rolling reload -------------------------------------------

class Load:
    """Clients in threads until stop(): keep-alive ones, which reconnect
    when told "bye" (as an HTTP client does on "Connection: close"), and
    one that opens a connection per request.  Every failure is recorded."""

    def __init__(self, port, keep_alive=2, per_request=1):
        self.port = port
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.served = []        # the pid of each answered request
        self.connections = 0    # requests on connections of their own
        self.errors = []
        self.threads = [threading.Thread(target=self._keep_alive, daemon=True)
                        for _ in range(keep_alive)]
        self.threads += [threading.Thread(target=self._per_request,
                                          daemon=True)
                         for _ in range(per_request)]

    def start(self):
        for thread in self.threads:
            thread.start()
        return self

    def _record(self, pid):
        with self.lock:
            self.served.append(pid)

    def _guarded(self, body):
        try:
            while not self.stopping.is_set():
                body()
        except Exception as exc:  # what the test asserts there is none of
            with self.lock:
                self.errors.append(exc)

    def _keep_alive(self):
        def one_connection():
            with socket.create_connection(("127.0.0.1", self.port),
                                          timeout=CLIENT_TIMEOUT) as sock:
                replies = sock.makefile("rb")
                while not self.stopping.is_set():
                    sock.sendall(b"\n")
                    words = replies.readline().split()
                    self._record(int(words[0]))
                    if words[1:] == [b"bye"]:
                        return
        self._guarded(one_connection)

    def _per_request(self):
        def one_request():
            self._record(ask(self.port))
            with self.lock:
                self.connections += 1
        self._guarded(one_request)

    def count(self):
        with self.lock:
            return len(self.served)

    def wait_for_more(self, more, count=None):
        """Wait until *more* requests beyond those answered so far are (or
        what *count* counts)."""
        count = count or self.count
        target = count() + more
        assert wait_for(lambda: count() >= target or self.errors), (
            "the load stalled")

    def connections_made(self):
        with self.lock:
            return self.connections

    def stop(self):
        self.stopping.set()
        for thread in self.threads:
            thread.join(JOIN_TIMEOUT)
        assert not any(thread.is_alive() for thread in self.threads)


def test_sighup_replaces_every_worker_without_a_failed_request():
    """SIGHUP under keep-alive and per-connection load: a new set of
    workers takes over, the old one exits, and no client sees an error."""
    with Supervised(processes=2, threading=True) as sup:
        old = sup.wait_pids(lambda pids: len(pids) == 2)
        load = Load(sup.port).start()
        try:
            load.wait_for_more(30)
            sup.signal(signal.SIGHUP)
            new = sup.wait_pids(lambda pids: len(pids) == 2
                                and not pids & old)
            load.wait_for_more(30)
        finally:
            load.stop()
        assert load.errors == []
        assert set(load.served[-10:]) <= new
        assert not any(is_running(pid, sup.pgid) for pid in old)


def test_sighup_twice_in_a_row_settles_on_one_set():
    """Two reloads in quick succession end with processes workers, all
    new, serving."""
    with Supervised(processes=2) as sup:
        old = sup.wait_pids(lambda pids: len(pids) == 2)
        sup.signal(signal.SIGHUP)
        sup.signal(signal.SIGHUP)
        new = sup.wait_pids(lambda pids: len(pids) == 2 and not pids & old)
        assert {ask(sup.port) for _ in range(10)} <= new


# -- 3. graceful_timeout -----------------------------------------------------

def test_a_worker_outlasting_graceful_timeout_on_reload_is_killed():
    """SIGHUP while a request sleeps far longer than graceful_timeout: its
    worker gets that long to finish, then is killed; the new one serves."""
    with Supervised(processes=1, graceful_timeout=0.5) as sup:
        sup.wait_pids(lambda pids: len(pids) == 1)
        sock, replies, old = start_sleeping(sup.port, 60)
        with sock, replies:
            asked = time.monotonic()
            sup.signal(signal.SIGHUP)
            new = sup.wait_pids(lambda pids: len(pids) == 1
                                and old not in pids)
            gone = time.monotonic()
            assert replies.readline() == b""     # cut off, not answered
        assert gone - asked >= 0.5
        assert ask(sup.port) in new


def test_shutdown_waits_for_a_request_within_graceful_timeout():
    """SIGTERM to the supervisor: a request shorter than graceful_timeout
    is answered before its worker exits."""
    with Supervised(processes=1, graceful_timeout=10.0) as sup:
        sup.wait_pids(lambda pids: len(pids) == 1)
        sock, replies, pid = start_sleeping(sup.port, 0.3)
        with sock, replies:
            sup.signal(signal.SIGTERM)
            assert int(replies.readline().split()[0]) == pid
        assert sup.proc.wait(JOIN_TIMEOUT) == 0
        sup.reader.join(JOIN_TIMEOUT)  # it may lag behind the exit
        assert sup.returned


def test_shutdown_kills_a_request_that_outlasts_graceful_timeout():
    """SIGTERM to the supervisor: a request far longer than
    graceful_timeout is cut off, and serve_forever() returns soon after."""
    with Supervised(processes=1, graceful_timeout=0.5) as sup:
        sup.wait_pids(lambda pids: len(pids) == 1)
        sock, replies, pid = start_sleeping(sup.port, 60)
        with sock, replies:
            asked = time.monotonic()
            sup.signal(signal.SIGTERM)
            assert sup.proc.wait(JOIN_TIMEOUT) == 0
            assert time.monotonic() - asked >= 0.5
            assert replies.readline() == b""
        sup.reader.join(JOIN_TIMEOUT)  # it may lag behind the exit
        assert sup.returned
        assert not is_running(pid, sup.pgid)


# -- 4. max_requests and max_requests_jitter -------------------------------

def runs(pids):
    """The lengths of the runs of equal consecutive pids."""
    return [len(list(group)) for _, group in itertools.groupby(pids)]


def test_max_requests_recycles_a_worker_after_that_many():
    """max_requests = 20, one worker, 100 requests one after another:
    five workers in turn, 20 requests each, none failed."""
    with Supervised(processes=1, max_requests=20) as sup:
        sup.wait_pids(lambda pids: len(pids) == 1)
        served = [ask(sup.port) for _ in range(100)]
        assert runs(served) == [20] * 5
        sup.wait_pids(lambda pids: len(pids) == 1
                      and not pids & set(served))


def test_max_requests_jitter_with_threads_and_two_workers():
    """max_requests = 10 with a jitter of 10, threads in two workers, a
    keep-alive client and one that connects per request: every request
    succeeds, and 200 connections (a stream server's requests, whatever
    a handler does on each) need more than the first two workers: ten at
    20 each, fewer where a retiring worker's threads took a few more
    connections before it stopped accepting, never the two alone."""
    with Supervised(processes=2, threading=True, max_requests=10,
                    max_requests_jitter=10) as sup:
        sup.wait_pids(lambda pids: len(pids) == 2)
        load = Load(sup.port, keep_alive=1, per_request=1).start()
        try:
            load.wait_for_more(200, load.connections_made)
        finally:
            load.stop()
        assert load.errors == []
        assert len(set(load.served)) >= 4
        sup.wait_pids(lambda pids: len(pids) == 2)


# -- 5. SIGTTIN and SIGTTOU ---------------------------------------------------

def test_sigttin_adds_workers_and_sigttou_retires_the_oldest():
    """One worker, SIGTTIN twice: three, the first still among them; then
    SIGTTOU twice: one left, the youngest, and it serves; requests succeed
    under load throughout."""
    with Supervised(processes=1, threading=True) as sup:
        (first,) = sup.wait_pids(lambda pids: len(pids) == 1)
        load = Load(sup.port, keep_alive=1, per_request=1).start()
        try:
            sup.signal(signal.SIGTTIN)
            two = sup.wait_pids(lambda pids: len(pids) == 2)
            sup.signal(signal.SIGTTIN)
            three = sup.wait_pids(lambda pids: len(pids) == 3)
            assert first in two <= three
            load.wait_for_more(20)
            sup.signal(signal.SIGTTOU)
            sup.wait_pids(lambda pids: len(pids) == 2 and first not in pids)
            sup.signal(signal.SIGTTOU)
            (last,) = sup.wait_pids(lambda pids: len(pids) == 1)
            load.wait_for_more(20)
        finally:
            load.stop()
        assert load.errors == []
        assert three - two == {last}
        assert ask(sup.port) == last


def test_sigttou_never_goes_below_one_worker():
    """SIGTTOU with one worker does nothing: a SIGTTIN after it makes two.
    (The pause between them matters: two signals pending at once are
    delivered lowest number first, SIGTTIN before SIGTTOU.)"""
    with Supervised(processes=1) as sup:
        (only,) = sup.wait_pids(lambda pids: len(pids) == 1)
        sup.signal(signal.SIGTTOU)
        time.sleep(0.3)
        assert sup.pids == {only}
        sup.signal(signal.SIGTTIN)
        sup.wait_pids(lambda pids: len(pids) == 2)
        assert only in sup.pids
        assert ask(sup.port) in sup.pids


# -- 6. reuse_port_per_worker -------------------------------------------------

def listeners(port):
    """How many TCP sockets listen on 127.0.0.1:port."""
    with open("/proc/net/tcp") as table:
        rows = [line.split() for line in table][1:]
    return sum(int(local.rsplit(":", 1)[1], 16) == port and state == "0A"
               for _, local, _, state, *_ in rows)


@pytest.mark.parametrize("per_worker", [False, True])
def test_reuse_port_per_worker_gives_each_worker_a_listener(per_worker):
    """Three workers: one shared listener by default; with
    reuse_port_per_worker, three (the shared one and two of their own), and
    300 connections reach every worker."""
    with Supervised(processes=3, reuse_port_per_worker=per_worker) as sup:
        workers = sup.wait_pids(lambda pids: len(pids) == 3)
        expected = 3 if per_worker else 1
        assert wait_for(lambda: listeners(sup.port) == expected)
        served = [ask(sup.port) for _ in range(300)]
        assert set(served) <= workers
        if per_worker:
            assert set(served) == workers


def test_reuse_port_per_worker_through_reload_and_a_killed_worker():
    """SIGHUP: the new workers listen for themselves and the old ones'
    sockets close; a killed worker's replacement listens again."""
    with Supervised(processes=2, reuse_port_per_worker=True) as sup:
        old = sup.wait_pids(lambda pids: len(pids) == 2)
        assert wait_for(lambda: listeners(sup.port) == 2)
        sup.signal(signal.SIGHUP)
        new = sup.wait_pids(lambda pids: len(pids) == 2 and not pids & old)
        assert wait_for(lambda: listeners(sup.port) == 2)
        victim = min(new)
        os.kill(victim, signal.SIGKILL)
        again = sup.wait_pids(lambda pids: len(pids) == 2
                              and victim not in pids)
        assert wait_for(lambda: listeners(sup.port) == 2)
        assert {ask(sup.port) for _ in range(100)} == again


@pytest.mark.parametrize("kind", ["udp", "unix"])
def test_reuse_port_per_worker_refuses_other_sockets(kind, tmp_path):
    """Only TCP: serve_forever() raises ValueError before forking."""
    import csockserver
    if kind == "udp":
        server = csockserver.PreforkUDPServer(
            ("127.0.0.1", 0), csockserver.DatagramRequestHandler)
    else:
        cls = type("Server", (csockserver.PreforkMixIn,
                              csockserver.UnixStreamServer), {})
        server = cls(str(tmp_path / "sock"), csockserver.StreamRequestHandler)
    server.reuse_port_per_worker = True
    with server:
        with pytest.raises(ValueError, match="TCP servers"):
            server.serve_forever()
        assert server.worker_pids == frozenset()


# -- 7. csockserver.http under a reload --------------------------------------

HTTP_SUPERVISOR = textwrap.dedent("""
    import os, sys
    import csockserver
    from csockserver import http

    class Handler(http.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            body = b"%d" % os.getpid()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    class Server(csockserver.PreforkMixIn, http.ThreadingHTTPServer):
        processes = 2

    with Server(("127.0.0.1", 0), Handler) as server:
        print(server.server_address[1], flush=True)
        server.serve_forever()
""")


def test_http_keep_alive_clients_move_to_the_new_workers_on_reload():
    """http.client keep-alive clients (which do not retry a request on a
    connection the server closed) through two SIGHUPs: the retiring
    workers say Connection: close, no request fails, and the clients end
    on the newest workers."""
    import http.client
    proc = subprocess.Popen([PYTHON, "-c", HTTP_SUPERVISOR], env=child_env(),
                            stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        port = int(proc.stdout.readline())
        stopping = threading.Event()
        errors, seen, closes = [], [], []

        def client():
            conn = http.client.HTTPConnection("127.0.0.1", port,
                                              timeout=CLIENT_TIMEOUT)
            try:
                while not stopping.is_set():
                    conn.request("GET", "/")
                    reply = conn.getresponse()
                    seen.append(int(reply.read()))
                    if reply.getheader("Connection") == "close":
                        closes.append(1)
            except Exception as exc:  # what the test asserts there is none
                errors.append(exc)
            finally:
                conn.close()
        clients = [threading.Thread(target=client) for _ in range(4)]
        for thread in clients:
            thread.start()
        assert wait_for(lambda: len(seen) > 50 or errors)
        first = set(seen)
        for _ in range(2):
            os.kill(proc.pid, signal.SIGHUP)
            before = len(seen)
            assert wait_for(lambda: len(seen) > before + 50
                            and not set(seen[-20:]) & first or errors)
            first |= set(seen)
        stopping.set()
        for thread in clients:
            thread.join(JOIN_TIMEOUT)
        assert errors == []
        assert closes, "no retiring worker said Connection: close"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(JOIN_TIMEOUT)
        proc.stdout.close()
