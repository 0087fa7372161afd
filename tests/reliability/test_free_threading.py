"""Stress: many threads at once on the state that a server's threads share.

Written for a free-threaded CPython, where the handlers, the workers and
the serving thread really run at once (``PYTHON_GIL=0``; make tsan runs
them under ThreadSanitizer), and run on every interpreter: under the GIL
they are ordinary, if busy, tests.  Each compares what the clients got
with what they sent, and ends with no thread, fd or child left over.

On a free-threaded interpreter, importing csockserver and serving must
leave the GIL off, with no warning.
"""

import collections
import os
import random
import re
import signal
import socket
import subprocess
import sysconfig
import threading
import time

import pytest

import csockserver
from tests.support.env import (CLIENT_TIMEOUT, JOIN_TIMEOUT, PYTHON, REPO_ROOT,
                               child_env, needs_fork)
from tests.support.leaks import LeakCheck
from tests.support.prefork import Supervised
from tests.support.servers import ServerThread, run_bounded, wait_for

FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
CLIENTS = 12
REQUESTS = 25       # per client: about 300 requests a test, even under TSan


def work(line):
    """A little pure-Python work per request: what a GIL serialises."""
    total = 0
    for byte in line:
        total = (total * 31 + byte) % 1000003
    return b"%d %s" % (total, line)


class Echo(csockserver.StreamRequestHandler):
    """Answers each line with work(line); counts what it served."""

    def handle(self):
        for line in self.rfile:
            self.wfile.write(work(line.rstrip(b"\n")) + b"\n")
            with self.server.counted:
                self.server.served += 1


def make_server(cls=csockserver.ThreadingTCPServer, handler=Echo, **attrs):
    server_class = type("Server", (cls,), dict(attrs, daemon_threads=False))
    server = server_class(("127.0.0.1", 0), handler)
    server.counted = threading.Lock()
    server.served = 0
    return server


def converse(address, lines, persistent=True):
    """Send *lines*; return the replies (one connection, or one each)."""
    replies = []
    if persistent:
        with socket.create_connection(address, CLIENT_TIMEOUT) as sock:
            answers = sock.makefile("rb")
            for line in lines:
                sock.sendall(line + b"\n")
                replies.append(answers.readline())
        return replies
    for line in lines:
        with socket.create_connection(address, CLIENT_TIMEOUT) as sock:
            sock.sendall(line + b"\n")
            sock.shutdown(socket.SHUT_WR)
            replies.append(sock.makefile("rb").readline())
    return replies


def hammer(address, clients=CLIENTS, requests=REQUESTS, persistent=True):
    """*clients* threads at once, each sending *requests* lines; fails
    unless every reply is work() of its line."""
    failures = []

    def client(n):
        lines = [b"client %d line %d %s" % (n, i, b"x" * random.randrange(64))
                 for i in range(requests)]
        try:
            replies = converse(address, lines, persistent)
        except OSError as exc:
            failures.append("client %d: %r" % (n, exc))
            return
        wrong = [(line, reply) for line, reply in zip(lines, replies)
                 if reply != work(line) + b"\n"]
        if wrong:
            failures.append("client %d: %r" % (n, wrong[:2]))

    threads = [threading.Thread(target=client, args=(n,))
               for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT * 4)
    assert not any(thread.is_alive() for thread in threads), "clients hung"
    assert not failures, failures[:3]
    return clients * requests


# -- the GIL stays off ------------------------------------------------------

GIL_PROBE = """
import socket, sys, threading, warnings
warnings.simplefilter("always")
import csockserver

class Echo(csockserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.readline())

with csockserver.ThreadingTCPServer(("127.0.0.1", 0), Echo) as server:
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for _ in range(20):
        with socket.create_connection(server.server_address, 5) as sock:
            sock.sendall(b"hi\\n")
            assert sock.makefile("rb").readline() == b"hi\\n"
    server.shutdown()
print(csockserver.IMPLEMENTATION, sys._is_gil_enabled())
"""


@pytest.mark.skipif(not FREE_THREADED, reason="a free-threaded CPython")
@pytest.mark.parametrize("engine", ["compiled", "pure"])
def test_importing_and_serving_leave_the_gil_off(engine):
    env = child_env()
    env.pop("PYTHON_GIL", None)     # what a user's environment has
    if engine == "pure":
        env["CSOCKSERVER_NO_EXTENSIONS"] = "1"
        env.pop("CSOCKSERVER_REQUIRE_EXTENSIONS", None)
    elif csockserver.IMPLEMENTATION != "cython":
        pytest.skip("the compiled engine is not built")
    result = subprocess.run([PYTHON, "-c", GIL_PROBE], env=env,
                            capture_output=True, text=True,
                            timeout=JOIN_TIMEOUT * 6)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""      # no "the GIL has been enabled" warning
    expected = "cython" if engine == "compiled" else "python"
    assert result.stdout.split() == [expected, "False"]


def test_the_guide_example_runs():
    """The guide's free-threading example: it serves, and reports the GIL
    as this interpreter has it."""
    guide = os.path.join(REPO_ROOT, "docs", "guide.md")
    if not os.path.exists(guide):
        pytest.skip("no docs/guide.md here (the tests of an installed"
                    " package)")
    with open(guide, encoding="utf-8") as f:
        section = f.read().split("## Free-threaded Python\n", 1)[1]
    section = section.split("\n## ", 1)[0]
    code = re.search(r"^```python\n(.*?)^```$", section, re.S | re.M)
    env = child_env()
    env.pop("PYTHON_GIL", None)
    result = subprocess.run([PYTHON, "-c", code.group(1)], env=env,
                            capture_output=True, text=True,
                            timeout=JOIN_TIMEOUT * 3)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "GIL enabled: %s\n" % (not FREE_THREADED)


# -- serving -----------------------------------------------------------------

@pytest.mark.timeout(300)
@pytest.mark.parametrize("persistent", [True, False],
                         ids=["keep-alive", "per-request"])
@pytest.mark.parametrize("handoff", [False, True],
                         ids=["leader", "handoff"])
def test_many_threads_serving(persistent, handoff):
    leaks = LeakCheck()
    attrs = {}
    if handoff:
        attrs["verify_request"] = lambda self, request, address: True
    server = make_server(**attrs)
    with ServerThread(server):
        sent = hammer(server.server_address, persistent=persistent)
    assert server.served == sent
    leaks.check(JOIN_TIMEOUT)


@pytest.mark.timeout(300)
def test_shutdown_and_close_under_load_again_and_again():
    """shutdown() and server_close() while clients keep coming: each
    round ends with every client answered or cut off cleanly."""
    leaks = LeakCheck()
    for _ in range(4):
        server = make_server()
        stop = threading.Event()
        errors = []

        def client():
            while not stop.is_set():
                try:
                    reply = converse(server.server_address, [b"ping"], False)
                except OSError:
                    continue        # refused or reset: the server is going
                if reply not in ([work(b"ping") + b"\n"], [b""]):
                    errors.append(reply)

        clients = [threading.Thread(target=client) for _ in range(6)]
        serving = ServerThread(server).start()
        for thread in clients:
            thread.start()
        time.sleep(0.3)
        serving.stop()
        stop.set()
        for thread in clients:
            thread.join(JOIN_TIMEOUT)
        assert not errors, errors[:3]
        assert server.served > 0
    leaks.check(JOIN_TIMEOUT)


@pytest.mark.timeout(120)
def test_server_close_while_serve_forever_accepts():
    """server_close() from another thread while serve_forever() runs and
    clients connect: no crash, and shutdown() still returns at once."""
    leaks = LeakCheck()
    server = make_server()
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    stop = threading.Event()

    def client():
        while not stop.is_set():
            try:
                converse(server.server_address, [b"ping"], False)
            except OSError:
                time.sleep(0.001)

    clients = [threading.Thread(target=client) for _ in range(4)]
    for client_thread in clients:
        client_thread.start()
    time.sleep(0.2)
    run_bounded(server.server_close)
    time.sleep(0.2)
    run_bounded(server.shutdown)
    thread.join(JOIN_TIMEOUT)
    assert not thread.is_alive()
    stop.set()
    for client_thread in clients:
        client_thread.join(JOIN_TIMEOUT)
    run_bounded(server.server_close)    # again: closing twice is harmless
    leaks.check(JOIN_TIMEOUT)


# -- the pool --------------------------------------------------------------

class Slow(Echo):
    def handle(self):
        time.sleep(0.02)
        super().handle()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("handoff", [False, True], ids=["leader", "handoff"])
def test_pool_grows_and_retires_while_serving(handoff):
    """Bursts of slow requests grow the pool; between them, workers retire
    after thread_idle_timeout, some while the next burst starts."""
    leaks = LeakCheck()
    attrs = {"thread_idle_timeout": 0.05}
    if handoff:
        attrs["verify_request"] = lambda self, request, address: True
    server = make_server(handler=Slow, **attrs)
    with ServerThread(server):
        sent = 0
        for pause in (0.0, 0.04, 0.06, 0.2):
            sent += hammer(server.server_address, clients=16, requests=4,
                           persistent=False)
            time.sleep(pause)
        assert server.served == sent
    leaks.check(JOIN_TIMEOUT)


@pytest.mark.timeout(300)
def test_max_threads_and_max_queued_hold_under_load():
    """No more than max_threads requests run at once, whoever submits."""
    running = [0, 0]        # now, most seen
    lock = threading.Lock()

    class Counted(Echo):
        def handle(self):
            with lock:
                running[0] += 1
                running[1] = max(running)
            try:
                time.sleep(0.005)
                super().handle()
            finally:
                with lock:
                    running[0] -= 1

    leaks = LeakCheck()
    server = make_server(handler=Counted, max_threads=3, max_queued=2)
    with ServerThread(server):
        sent = hammer(server.server_address, clients=16, requests=5,
                      persistent=False)
    assert server.served == sent
    assert 1 <= running[1] <= 3
    leaks.check(JOIN_TIMEOUT)


@pytest.mark.timeout(300)
def test_handoff_with_every_hook_overridden():
    """Each overridden hook runs once per request, in the thread the
    stdlib runs it in, with requests on every worker at once."""
    calls = {}
    lock = threading.Lock()

    def count(name):
        with lock:
            calls[name] = calls.get(name, 0) + 1

    class Server(csockserver.ThreadingTCPServer):
        daemon_threads = False

        def verify_request(self, request, client_address):
            count("verify_request")
            assert threading.current_thread() is serving.thread
            return super().verify_request(request, client_address)

        def process_request(self, request, client_address):
            count("process_request")
            super().process_request(request, client_address)

        def finish_request(self, request, client_address):
            count("finish_request")
            assert threading.current_thread() is not serving.thread
            super().finish_request(request, client_address)

        def shutdown_request(self, request):
            count("shutdown_request")
            super().shutdown_request(request)

    server = Server(("127.0.0.1", 0), Echo)
    server.counted, server.served = threading.Lock(), 0
    serving = ServerThread(server)
    with serving:
        sent = hammer(server.server_address, requests=3, persistent=False)
    assert calls == dict.fromkeys(["verify_request", "process_request",
                                   "finish_request", "shutdown_request"],
                                  sent)


# -- processes -------------------------------------------------------------

@needs_fork
@pytest.mark.timeout(300)
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")
def test_forking_server_beside_a_busy_threaded_one():
    """A ForkingTCPServer forks while a ThreadingTCPServer's workers run in
    the same process: the children serve and are all reaped."""
    threaded = make_server()
    forking = make_server(csockserver.ForkingTCPServer)
    with ServerThread(threaded), ServerThread(forking):
        results = {}

        def load(name, server, persistent):
            results[name] = hammer(server.server_address, clients=6,
                                   requests=8, persistent=persistent)

        loads = [threading.Thread(target=load, args=args) for args in (
            ("threads", threaded, True), ("forks", forking, False))]
        for thread in loads:
            thread.start()
        for thread in loads:
            thread.join(JOIN_TIMEOUT * 6)
        assert set(results) == {"threads", "forks"}
        assert wait_for(lambda: not forking.active_children or (
            forking.collect_children() or not forking.active_children))
    assert threaded.served == results["threads"]
    assert not forking.active_children


@needs_fork
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_prefork_reload_under_load():
    """SIGHUP twice while clients keep asking a threading prefork server:
    every request is answered, by the old workers or the new ones."""
    with Supervised(processes=2, threading=True) as sup:
        first = sup.wait_pids(lambda pids: len(pids) == 2)
        stop = threading.Event()
        answered, errors = [], []

        def client():
            while not stop.is_set():
                try:
                    with socket.create_connection(
                            ("127.0.0.1", sup.port), CLIENT_TIMEOUT) as sock:
                        sock.sendall(b"hello\n")
                        sock.shutdown(socket.SHUT_WR)
                        reply = sock.makefile("rb").readline()
                except OSError as exc:
                    errors.append(repr(exc))
                    continue
                if reply.split()[:1] and reply.split()[0].isdigit():
                    answered.append(int(reply.split()[0]))
                else:
                    errors.append(reply)

        clients = [threading.Thread(target=client) for _ in range(4)]
        for thread in clients:
            thread.start()
        seen = first
        for _ in range(2):
            time.sleep(0.3)
            sup.signal(signal.SIGHUP)
            seen = sup.wait_pids(lambda pids, old=seen: len(pids) == 2
                                 and not pids & old)
        time.sleep(0.3)
        stop.set()
        for thread in clients:
            thread.join(JOIN_TIMEOUT)
        assert not errors, errors[:3]
        assert set(answered) & seen, "the last workers answered nothing"


# -- stream files across threads ---------------------------------------------

@pytest.mark.timeout(120)
def test_rfile_and_wfile_shared_by_threads(impl):
    """Threads reading the handler's rfile with read1() and writing its
    wfile at once: no byte lost, none twice.  (What socketserver's files
    allow: its BufferedReader loses data to concurrent readline() calls,
    seen on CPython 3.11, so they are not tried here.)"""

    class Shared(impl.StreamRequestHandler):
        def handle(self):
            def relay(n):
                while True:
                    chunk = self.rfile.read1((37, 512, 4096, 65536)[n])
                    if not chunk:
                        return
                    self.wfile.write(chunk)

            threads = [threading.Thread(target=relay, args=(n,))
                       for n in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(JOIN_TIMEOUT)

    server = impl.ThreadingTCPServer(("127.0.0.1", 0), Shared)
    sent = b"".join(b"line %d %s\n" % (i, bytes(range(i % 256)))
                    for i in range(600))
    with ServerThread(server):
        with socket.create_connection(server.server_address,
                                      CLIENT_TIMEOUT) as sock:
            def send():
                sock.sendall(sent)
                sock.shutdown(socket.SHUT_WR)

            writer = threading.Thread(target=send)
            writer.start()
            got = []
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                got.append(chunk)
            writer.join(JOIN_TIMEOUT)
    got = b"".join(got)
    assert len(got) == len(sent)
    assert collections.Counter(got) == collections.Counter(sent)


@pytest.mark.skipif(csockserver.IMPLEMENTATION != "cython",
                    reason="the compiled SocketReader")
@pytest.mark.timeout(60)
def test_socket_reader_closed_while_other_threads_read_and_set_deadlines():
    """close() from one thread while others read and move the deadline:
    each read gets data, EOF or the closed-file error, nothing else."""
    from csockserver._engine.selection import engine
    left, right = socket.socketpair()
    with left, right:
        reader = engine.SocketReader(left)
        outcomes = []

        def read():
            try:
                while reader.readline():
                    pass
                outcomes.append("eof")
            except ValueError:
                outcomes.append("closed")

        def move_deadline():
            for _ in range(200):
                reader.deadline = time.monotonic() + 5
                reader.deadline = None

        threads = [threading.Thread(target=read) for _ in range(3)]
        threads.append(threading.Thread(target=move_deadline))
        for thread in threads:
            thread.start()
        right.sendall(b"a line\n" * 500)
        right.shutdown(socket.SHUT_WR)
        time.sleep(0.01)
        reader.close()
        for thread in threads:
            thread.join(JOIN_TIMEOUT)
        assert not any(thread.is_alive() for thread in threads)
        assert set(outcomes) <= {"closed", "eof"}
        assert len(outcomes) == 3
        assert reader.closed
