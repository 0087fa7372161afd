"""Hostile clients against a server in a child process: the server script,
a handle on the child that reads its CPU time, fds, threads and memory from
/proc, and one function per scenario that returns what it measured.

tests/reliability/test_hostile_clients.py asserts on these figures;
bench/hostile.py prints them for the standard library and csockserver side
by side.

The server runs in a child so that its RLIMIT_NOFILE can be lowered (fd
exhaustion) without touching this process, and so that its CPU time, fds
and threads are its own, apart from the clients'.  Every server is a
ThreadingTCPServer (or ThreadingHTTPServer): a hostile client then holds
one thread, and the normal client gets another.
"""

import json
import select
import socket
import subprocess
import tempfile
import textwrap
import threading
import time

from tests.support import procs
from tests.support.clients import reset_on_close
from tests.support.env import CLIENT_TIMEOUT, PYTHON, REPO_ROOT, child_env

# How long a normal client may take to be served while hostile clients are
# on (it takes about a millisecond): generous, for a machine shared with
# other work.
SERVED_WITHIN = 2.0
# The same during a storm of connect-and-reset: a server that falls behind
# it (the stdlib's does) overflows its listen backlog, and the normal
# client's SYN is dropped and sent again after 1 s, then 2 s more.
STORM_SERVED_WITHIN = 4.0
# The share of a core a server may use while hostile clients hold it
# quietly (it needs none: every figure measured is 0-10%).
QUIET_CPU = 0.3
# How long the server's fds and threads may take to come back to their
# baseline once the hostile clients are gone: the csockserver servers here
# retire idle workers after 1 s (thread_idle_timeout).
SETTLE_WITHIN = 15.0
# The window over which the server's CPU time is measured while hostile
# clients hold it but send nothing.
QUIET_WINDOW = 1.0
MAX_LINE = 65536          # http.server's _MAXLINE, and our handler's limit
HEADER_LIMIT = 100        # http.client's _MAXHEADERS
MIB = 1 << 20

# The server.  Its config (JSON in argv[1]) says which module it is built
# on and which handler it runs:
#   lines: a StreamRequestHandler that answers each line (read with
#     readline(65537)) in capitals, "too long" to a longer one and then
#     hangs up, and to "flood" writes 64 KiB chunks until the client goes.
#     With "deadline", csockserver's read_deadline (the stdlib's nearest:
#     the handler's per-read timeout) is set to it.
#   http: a BaseHTTPRequestHandler answering GET with "ok", on
#     http.server as it is ("stdlib"), on http.server after
#     csockserver.install() ("installed"), or on csockserver.http.
# "nofile" lowers RLIMIT_NOFILE first.  Errors the handlers raise (resets,
# timeouts, broken pipes) are counted, not printed: anything on stderr is
# the server's own failure.
SERVER = textwrap.dedent("""
    import json, resource, sys
    config = json.loads(sys.argv[1])
    if config.get("nofile"):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (config["nofile"], hard))

    if config["handler"] == "http":
        if config["http"] == "installed":
            import csockserver
            csockserver.install()
        if config["http"] == "csock":
            from csockserver import http as web
        else:
            import http.server as web

        class Handler(web.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", "3")
                self.end_headers()
                self.wfile.write(b"ok\\n")

            def log_message(self, *args):
                pass

        base = web.ThreadingHTTPServer
    else:
        ss = __import__(config["module"])

        class Handler(ss.StreamRequestHandler):
            def handle(self):
                while True:
                    line = self.rfile.readline(65537)
                    if not line:
                        return
                    if len(line) > 65536:
                        self.wfile.write(b"too long\\n")
                        return
                    if line == b"flood\\n":
                        chunk = b"x" * 65536
                        while True:
                            self.wfile.write(chunk)
                    self.wfile.write(line.upper())

        if config.get("deadline"):
            if config["module"] == "csockserver":
                Handler.read_deadline = config["deadline"]
            else:
                Handler.timeout = config["deadline"]
        base = ss.ThreadingTCPServer

    class Server(base):
        # Room for a burst of connections with both (the stdlib's default
        # backlog is 5), and idle csockserver workers retire after 1 s
        # (not 10) so that the thread count settles quickly.
        request_queue_size = 1024
        thread_idle_timeout = 1.0
        errors = 0

        def handle_error(self, request, client_address):
            Server.errors += 1

    server = Server(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()
""")

class ServerProcess:
    """A server child, its port, and what /proc says about it."""

    def __init__(self, module="csockserver", handler="lines", **config):
        config.update(module=module, handler=handler)
        self.config = config
        self.http = handler == "http"
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [PYTHON, "-c", SERVER, json.dumps(config)], cwd=REPO_ROOT,
            env=child_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=self.stderr)
        ready, _, _ = select.select([self.proc.stdout], [], [], 20)
        line = self.proc.stdout.readline() if ready else b""
        if not line.strip():
            self.stop()
            raise AssertionError("the server did not start: %s"
                                 % self.errors_printed())
        self.port = int(line)
        self.address = ("127.0.0.1", self.port)
        self.baseline_fds = self.baseline_threads = None

    # -- what /proc says -------------------------------------------------

    def cpu(self):
        """User + system CPU seconds of every thread so far."""
        return procs.cpu_seconds(self.proc.pid)

    def fds(self):
        return procs.count_fds(self.proc.pid)

    def status(self, key):
        return procs.status_field(self.proc.pid, key)

    def threads(self):
        return self.status("Threads")

    def rss_mib(self):
        return self.status("VmRSS") / 1024

    def peak_rss_mib(self):
        return self.status("VmHWM") / 1024

    def cpu_share(self, window=QUIET_WINDOW):
        """The share of one core the server used over the next *window*."""
        used = self.cpu()
        start = time.monotonic()
        time.sleep(window)
        return (self.cpu() - used) / (time.monotonic() - start)

    # -- clients ---------------------------------------------------------

    def ask(self, timeout=CLIENT_TIMEOUT):
        """One normal request; returns how long it took to be served."""
        start = time.monotonic()
        with socket.create_connection(self.address, timeout) as sock:
            if self.http:
                sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
                reply = recv_all(sock)
                ok = reply.startswith(b"HTTP/1.0 200 ") and reply.endswith(
                    b"\r\n\r\nok\n")
            else:
                sock.sendall(b"ping\n")
                reply = sock.makefile("rb").readline()
                ok = reply == b"PING\n"
        if not ok:
            raise AssertionError("normal client got %r" % reply[:200])
        return time.monotonic() - start

    def take_baseline(self):
        """Serve a few normal clients, then note the fds and threads."""
        for _ in range(3):
            self.ask()
        time.sleep(0.2)
        self.baseline_fds, self.baseline_threads = self.fds(), self.threads()

    def settle(self, within=SETTLE_WITHIN):
        """Wait for fds and threads to be back at (or under) the baseline;
        returns (fds, threads) as they are then."""
        deadline = time.monotonic() + within
        while True:
            now = self.fds(), self.threads()
            if (now[0] <= self.baseline_fds and now[1] <= self.baseline_threads
                    or time.monotonic() > deadline):
                return now
            time.sleep(0.05)

    def errors_printed(self):
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")

    def stop(self):
        """Kill the server; returns what it printed on stderr."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self.proc.stdout.close()
        printed = self.errors_printed()
        self.stderr.close()
        return printed

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()


def recv_all(sock, limit=1 << 20):
    chunks = []
    size = 0
    while size < limit:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def connect_many(address, count, first=b""):
    """*count* connected clients, each having sent *first*."""
    clients = []
    try:
        for _ in range(count):
            sock = socket.create_connection(address, CLIENT_TIMEOUT)
            clients.append(sock)
            if first:
                sock.sendall(first)
    except BaseException:
        close_all(clients)
        raise
    return clients


def close_all(clients):
    for sock in clients:
        sock.close()


def wait_until(predicate, within, interval=0.02):
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def finish(server, figures):
    """The common end of a scenario, once the hostile clients are gone:
    fds and threads settle, and a normal client is served again."""
    figures["fds"], figures["threads"] = server.settle()
    figures["baseline"] = (server.baseline_fds, server.baseline_threads)
    figures["served_after"] = server.ask()
    return figures


# -- the scenarios -----------------------------------------------------------
#
# Each takes a started ServerProcess (with its baseline taken), runs the
# hostile clients, and returns a dict of figures: "latency" (a normal client
# served while the hostile ones are on), "cpu" (the server's share of a core
# while they are quiet), "fds"/"threads" (after they have gone) with
# "baseline", "served_after", and what the scenario itself observed.

def silent_partial_lines(server, count=2000, deadline=None):
    """*count* clients send half a line and go silent.  With *deadline*
    (the server's read deadline), the server must hang up on them itself,
    within it and a margin, while they are still connected."""
    figures = {}
    clients = connect_many(server.address, count, b"half a li")
    try:
        if deadline is None:
            figures["all_held"] = wait_until(
                lambda: server.fds() >= server.baseline_fds + count, 30)
            figures["cpu"] = server.cpu_share()
            figures["latency"] = server.ask()
        else:
            figures["latency"] = server.ask()
            start = time.monotonic()
            figures["hung_up"] = wait_until(
                lambda: server.fds() <= server.baseline_fds,
                deadline + SETTLE_WITHIN)
            figures["hung_up_in"] = time.monotonic() - start
            # The clients see the server's end closed (EOF or a reset).
            figures["clients_closed"] = all(
                _closed_by_peer(sock) for sock in clients[::max(
                    1, count // 50)])
            # Quiet once its idle workers have retired (the clients still
            # connected): retiring 2,000 threads at once is real work,
            # most of a core for a second on a free-threaded 3.13.
            server.settle()
            figures["cpu"] = server.cpu_share()
    finally:
        close_all(clients)
    return finish(server, figures)


def _closed_by_peer(sock):
    sock.settimeout(CLIENT_TIMEOUT)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except OSError:
        return False


def never_reads(server, count=20):
    """*count* clients ask for a flood of replies and never read them: each
    handler blocks in send() once the socket buffers are full."""
    figures = {}
    clients = connect_many(server.address, count, b"flood\n")
    try:
        # Until their handlers are stuck, the server is busy writing.
        wait_until(lambda: server.cpu_share(0.2) < 0.05, 10)
        figures["cpu"] = server.cpu_share()
        figures["latency"] = server.ask()
        figures["threads_held"] = server.threads()
    finally:
        for sock in clients:
            reset_on_close(sock)  # unread data makes close() reset anyway
        close_all(clients)
    return finish(server, figures)


def connect_and_reset(server, count=10000):
    """*count* clients, one after the other, connect and reset at once,
    while a normal client asks every 10 ms."""
    figures = {}
    latencies = []
    failed = []
    stop = threading.Event()

    def normal():
        while not stop.is_set():
            try:
                latencies.append(server.ask())
            except (OSError, AssertionError) as exc:
                failed.append(exc)
            stop.wait(0.01)

    asker = threading.Thread(target=normal, daemon=True)
    used = server.cpu()
    start = time.monotonic()
    asker.start()
    try:
        for _ in range(count):
            sock = socket.socket()
            try:
                sock.connect(server.address)
                reset_on_close(sock)
            finally:
                sock.close()
    finally:
        stop.set()
        asker.join(CLIENT_TIMEOUT * 2)
    took = time.monotonic() - start
    figures["storm_s"] = took
    figures["cpu"] = (server.cpu() - used) / took  # busy by design
    figures["latency"] = max(latencies) if latencies else None
    figures["asked"] = len(latencies)
    figures["failed"] = failed
    return finish(server, figures)


def huge_line(server, size=100 * MIB):
    """One client sends a *size*-byte line with no newline (and reads the
    reply meanwhile); the server must answer after 64 KiB and hang up,
    without holding the line in memory."""
    figures = {}
    rss = server.rss_mib()
    sock = socket.create_connection(server.address, CLIENT_TIMEOUT)
    sent = [0]

    def send():
        first = b"GET /" if server.http else b""
        chunk = first + b"a" * (MIB - len(first))
        try:
            while sent[0] < size:
                sock.sendall(chunk)
                sent[0] += len(chunk)
                chunk = b"a" * MIB
        except OSError:
            pass  # the server hung up

    sender = threading.Thread(target=send, daemon=True)
    start = time.monotonic()
    sender.start()
    try:
        reply = recv_all(sock)
        sender.join(CLIENT_TIMEOUT * 4)
    finally:
        sock.close()
    figures["took"] = time.monotonic() - start
    figures["reply"] = reply.split(b"\r\n", 1)[0].split(b"\n", 1)[0].decode(
        errors="replace")
    figures["sent_mib"] = sent[0] / MIB
    figures["rss_growth_mib"] = server.peak_rss_mib() - rss
    figures["latency"] = server.ask()
    return finish(server, figures)


# An HTTP request that goes over one of http.server's limits, each exactly
# as long as the server reads before it gives up, so that nothing is left
# unread (a close with unread data would reset the connection and could
# destroy the reply): the server's answer, then EOF.
OVERSIZED = {
    # A request line of 65,537 bytes, no newline: 414.
    "request line": b"GET /" + b"a" * (MAX_LINE + 1 - 5),
    # A header line of 65,537 bytes: 431.
    "header line": b"GET / HTTP/1.0\r\nX-Long: " + b"a" * (
        MAX_LINE + 1 - len(b"X-Long: ")),
    # 101 headers: 431.
    "header count": b"GET / HTTP/1.0\r\n" + b"".join(
        b"X-%d: y\r\n" % i for i in range(HEADER_LIMIT + 1)),
}
OVERSIZED_STATUS = {"request line": 414, "header line": 431,
                    "header count": 431}


def oversized_request(server, what):
    """One HTTP request over a limit; returns the status line answered."""
    figures = {}
    with socket.create_connection(server.address, CLIENT_TIMEOUT) as sock:
        sock.sendall(OVERSIZED[what])
        reply = recv_all(sock)
    figures["reply"] = reply.split(b"\r\n", 1)[0].decode(errors="replace")
    figures["status"] = int(figures["reply"].split()[1]) if (
        figures["reply"].startswith("HTTP/")) else None
    figures["latency"] = server.ask()
    return finish(server, figures)


def half_closed(server, count=200):
    """*count* clients send their request, shut their sending side
    (SHUT_WR) at once, and only then read: every reply must arrive whole."""
    figures = {}
    request = (b"GET / HTTP/1.0\r\n\r\n" if server.http
               else b"one\ntwo\n")
    clients = connect_many(server.address, count, request)
    try:
        for sock in clients:
            sock.shutdown(socket.SHUT_WR)
        figures["latency"] = server.ask()
        replies = [recv_all(sock) for sock in clients]
    finally:
        close_all(clients)
    if server.http:
        whole = [r.startswith(b"HTTP/1.0 200 ") and r.endswith(b"ok\n")
                 for r in replies]
    else:
        whole = [r == b"ONE\nTWO\n" for r in replies]
    figures["whole"] = sum(whole)
    figures["count"] = count
    return finish(server, figures)


def out_of_fds(server, count=400):
    """*count* clients hold connections to a server whose RLIMIT_NOFILE is
    lower: it runs out of fds with connections still waiting in its
    backlog.  While it is out, the server should not spin; once they go,
    it serves again."""
    figures = {}
    limit = server.config["nofile"]
    clients = connect_many(server.address, count, b"half a li")
    try:
        # Out of fds: what is left is fewer than a handful of fds.
        figures["exhausted"] = wait_until(
            lambda: server.fds() >= limit - 8, 20)
        time.sleep(0.2)
        figures["cpu"] = server.cpu_share()
        figures["fds_held"] = server.fds()
    finally:
        close_all(clients)
    figures["latency"] = None  # no fd to serve a normal client with
    return finish(server, figures)
