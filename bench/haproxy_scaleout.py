"""csockserver behind a real HAProxy: scale-out and rolling reload.

    python -m bench haproxy [--quick] [--repeat 3] [--duration 3]
                            [--out PATH|-]

(also ``python bench/haproxy_scaleout.py``, with the same options).  About
5 minutes with the defaults, 1.5 with ``--quick`` (one repeat, scale-out
runs of 1 s); the report goes to stdout and to ``--out`` (default
build/bench/haproxy.md).

Needs ``haproxy`` and ``wrk`` (Debian packages of those names).  HAProxy
runs in TCP mode on a kernel-chosen port of 127.0.0.1 (``bind fd@N``),
round-robin over backends on 127.0.0.2-4, each an HTTP/1.1 server whose
``do_GET`` answers 200 with its name and pid:

- ``csock``: csockserver.http's ThreadingHTTPServer with ``proxy_protocol =
  "v2"`` (HAProxy: ``send-proxy-v2 check check-send-proxy``);
- ``stdlib``: http.server's ThreadingHTTPServer (no PROXY protocol: the
  stdlib cannot read it);
- ``prefork``: ``csock`` under PreforkMixIn with two workers.

wrk (``-t1 -c16``, ``--latency``) keeps its connections alive
(``keep-alive``) or sends ``Connection: close`` (``close``).  HAProxy and
wrk run on CPU 1, the backends on CPU 0 (taskset): on this 2-core machine
three backends share one core, so "3 backends" measures the cost of
spreading and of the PROXY header, not a three-fold speed-up.

Two cases:

1. scale-out: 1 and 3 backends of each kind, req/s and p99;
2. rolling reload: 3 prefork backends under a 10 s wrk run, each sent
   SIGHUP in turn (at 2, 4 and 6 s) against the same run without
   reloads; every backend's worker pids must change.

Client errors (wrk's connect/read/write/timeout socket errors and non-2xx
replies) are summed over the repeats and shown; the goal is 0.  The
backends' stderr is discarded: at the end of each wrk run HAProxy resets
the connections wrk drops, and http.server's handle_error() prints each
reset.
"""

import argparse
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

if __package__ in (None, ""):   # run as a script: make ``bench`` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))

from bench import output
from bench.progress import Progress

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOSTS = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
BACKEND_CPU, FRONT_CPU = "0", "1"
CONNECTIONS = 16
RELOAD_RUN = 10.0   # seconds of wrk per rolling-reload run
# Seconds a run takes beyond its wrk window: starting HAProxy and the
# backends, wrk's 1 s warm-up, stopping them.
OVERHEAD = 2.0

BACKEND = textwrap.dedent("""
    import os, sys
    kind, name, host = sys.argv[1:4]
    if kind == "stdlib":
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        Base = ThreadingHTTPServer
    else:
        import csockserver
        from csockserver.http import (BaseHTTPRequestHandler,
                                      ThreadingHTTPServer)

        class Base(ThreadingHTTPServer):
            proxy_protocol = "v2"
        if kind == "prefork":
            class Base(csockserver.PreforkMixIn, Base):
                processes = 2

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            body = ("%s %d" % (name, os.getpid())).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            if self.close_connection:   # the client asked: say so
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    with Base((host, 0), Handler) as server:
        print(server.server_address[1], flush=True)
        server.serve_forever()
""")


def pinned(argv, cpus):
    return (["taskset", "-c", cpus] + argv if shutil.which("taskset")
            else argv)


class Cluster:
    """HAProxy and *count* backends of *kind*, until close()."""

    def __init__(self, kind, count):
        self.kind = kind
        self.backends = []          # (name, Popen, port)
        self.proxy = None
        front = socket.create_server(("127.0.0.1", 0), backlog=1024)
        self.tmp = tempfile.TemporaryDirectory()
        try:
            env = dict(os.environ, PYTHONPATH=ROOT)
            for index, host in enumerate(HOSTS[:count]):
                name = "app%d" % (index + 1)
                proc = subprocess.Popen(
                    pinned([sys.executable, "-c", BACKEND, kind, name, host],
                           BACKEND_CPU),
                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                    text=True, env=env, start_new_session=True)
                self.backends.append((name, proc, host))
                port = int(proc.stdout.readline())
                self.backends[-1] = (name, proc, "%s:%d" % (host, port))
            config = os.path.join(self.tmp.name, "haproxy.cfg")
            with open(config, "w") as out:
                out.write(self._config(front.fileno()))
            self.proxy = subprocess.Popen(
                pinned(["haproxy", "-db", "-f", config], FRONT_CPU),
                pass_fds=[front.fileno()], stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
            self.address = front.getsockname()
            front.close()
            self._wait_until_all_up()
        except BaseException:
            front.close()
            self.close()
            raise

    def _config(self, fd):
        proxy = ("send-proxy-v2 check check-send-proxy"
                 if self.kind != "stdlib" else "check")
        servers = "".join("    server %s %s %s inter 500\n"
                          % (name, where, proxy)
                          for name, _, where in self.backends)
        return textwrap.dedent("""\
            global
                maxconn 4000
            defaults
                mode tcp
                timeout connect 2s
                timeout client 30s
                timeout server 30s
                retries 3
                option redispatch
            frontend front
                bind fd@%d
                default_backend app
            backend app
                balance roundrobin
            """) % fd + servers

    def get(self):
        """One GET through HAProxy: (backend name, pid)."""
        with socket.create_connection(self.address, timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n"
                         b"Connection: close\r\n\r\n")
            reply = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
        name, pid = reply.partition(b"\r\n\r\n")[2].decode().split()
        return name, int(pid)

    def pids(self, tries=60):
        """The worker pids seen for each backend over *tries* GETs."""
        seen = {}
        for _ in range(tries):
            name, pid = self.get()
            seen.setdefault(name, set()).add(pid)
        return seen

    def _wait_until_all_up(self):
        deadline = time.monotonic() + 15
        names = {name for name, _, _ in self.backends}
        while True:
            try:
                if set(self.pids(len(names) * 2)) == names:
                    return
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("backends never all came up")
            time.sleep(0.1)

    def close(self):
        if self.proxy is not None:
            self.proxy.terminate()
            self.proxy.wait(10)
        for _, proc, _ in self.backends:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(10)
            proc.stdout.close()
        self.tmp.cleanup()


def wrk(address, mode, duration):
    """(req/s, p99 ms, client errors) from one wrk run."""
    argv = ["wrk", "-t1", "-c%d" % CONNECTIONS, "-d%ds" % round(duration),
            "--latency", "--timeout", "5s"]
    if mode == "close":
        argv += ["-H", "Connection: close"]
    argv.append("http://%s:%d/" % tuple(address))
    out = subprocess.run(pinned(argv, FRONT_CPU), capture_output=True,
                         text=True, check=True, timeout=duration + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[p99.group(2)]
    errors = 0
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), "
                              r"write (\d+), timeout (\d+)", out)
    if socket_errors:
        errors += sum(map(int, socket_errors.groups()))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non_2xx:
        errors += int(non_2xx.group(1))
    return rps, float(p99.group(1)) * scale, errors


SCALE_CASES = [(kind, count, mode) for mode in ("keep-alive", "close")
               for kind in ("stdlib", "csock", "prefork") for count in (1, 3)]
RELOAD_CASES = [(mode, reload) for mode in ("keep-alive", "close")
                for reload in (False, True)]


def scale_out(repeat, duration, progress):
    cases = SCALE_CASES
    runs = {case: [] for case in cases}
    for round_ in range(repeat):
        for kind, count, mode in cases:
            progress.step("scale-out, %d × %s, %s (repeat %d of %d)" % (
                count, kind, mode, round_ + 1, repeat))
            cluster = Cluster(kind, count)
            try:
                wrk(cluster.address, mode, 1)               # warm-up
                runs[kind, count, mode].append(
                    wrk(cluster.address, mode, duration))
            finally:
                cluster.close()
            progress.note("%.0f req/s, p99 %.2f ms, %d errors"
                          % runs[kind, count, mode][-1])
    lines = ["| wrk | backends | req/s | p99 ms | vs stdlib | errors |",
             "|---|---|---|---|---|---|"]
    for kind, count, mode in cases:
        rows = runs[kind, count, mode]
        rps = [row[0] for row in rows]
        base = statistics.median(row[0] for row in runs["stdlib", count, mode])
        lines.append("| %s | %d × %s | %.0f [%.0f–%.0f] | %.2f | %.2f× | %d |"
                     % (mode, count, kind, statistics.median(rps), min(rps),
                        max(rps), statistics.median(row[1] for row in rows),
                        statistics.median(rps) / base,
                        sum(row[2] for row in rows)))
    return "\n".join(lines)


def reload_run(mode, reload, duration=RELOAD_RUN):
    """One wrk run over 3 prefork backends, SIGHUPing each in turn when
    *reload*: (req/s, p99, errors, every backend's pids changed)."""
    cluster = Cluster("prefork", 3)
    try:
        wrk(cluster.address, mode, 1)                       # warm-up
        before = cluster.pids()
        result = []
        client = threading.Thread(target=lambda: result.append(
            wrk(cluster.address, mode, duration)))
        client.start()
        if reload:
            for _, proc, _ in cluster.backends:
                time.sleep(2.0)
                proc.send_signal(signal.SIGHUP)
        client.join()
        # The reloads are over well before wrk's run is: old workers gone.
        after = cluster.pids()
        changed = all(not (before[name] & after.get(name, set()))
                      for name in before)
        return result[0] + (changed,)
    finally:
        cluster.close()


def reload_case(repeat, progress):
    cases = RELOAD_CASES
    runs = {case: [] for case in cases}
    for round_ in range(repeat):
        for mode, reload in cases:
            progress.step("rolling reload, %s, %s (repeat %d of %d)" % (
                mode, "SIGHUP each backend" if reload else "no reload",
                round_ + 1, repeat))
            rps, p99, errors, replaced = reload_run(mode, reload)
            runs[mode, reload].append((rps, p99, errors, replaced))
            progress.note("%.0f req/s, p99 %.2f ms, %d errors%s" % (
                rps, p99, errors, ", all workers replaced" if replaced
                else ", not all workers replaced" if reload else ""))
    lines = ["| wrk | SIGHUP each backend | req/s | p99 ms | errors | "
             "all workers replaced |", "|---|---|---|---|---|---|"]
    for mode, reload in cases:
        rows = runs[mode, reload]
        rps = [row[0] for row in rows]
        replaced = ("%d of %d runs" % (sum(row[3] for row in rows), len(rows))
                    if reload else "(no reload)")
        lines.append("| %s | %s | %.0f [%.0f–%.0f] | %.2f | %d | %s |" % (
            mode, "yes, at 2, 4, 6 s" if reload else "no",
            statistics.median(rps), min(rps), max(rps),
            statistics.median(row[1] for row in rows),
            sum(row[2] for row in rows), replaced))
    return "\n".join(lines)


def parser(prog="python -m bench haproxy"):
    ap = argparse.ArgumentParser(prog=prog,
                                 description=__doc__.split("\n")[0])
    output.add_arguments(ap, "haproxy",
                         quick="one repeat, scale-out runs of 1 s (about"
                               " 1.5 min)")
    ap.add_argument("--repeat", type=int, help="runs per case (default 3)")
    ap.add_argument("--duration", type=float,
                    help="seconds of each scale-out run (default 3)")
    return ap


def main(argv=None, prog="python -m bench haproxy"):
    argv = sys.argv[1:] if argv is None else argv
    args = parser(prog).parse_args(argv)
    args.repeat = args.repeat or (1 if args.quick else 3)
    args.duration = args.duration or (1.0 if args.quick else 3.0)
    output.check_out(args)
    for tool in ("haproxy", "wrk"):
        if shutil.which(tool) is None:
            raise SystemExit("%s: needs %s, which is not installed (Debian:"
                             " apt-get install %s)" % (prog, tool, tool))
    progress = Progress(
        [args.duration + OVERHEAD] * (args.repeat * len(SCALE_CASES))
        + [RELOAD_RUN + OVERHEAD] * (args.repeat * len(RELOAD_CASES)))
    text = ("### Scale-out\n\n"
            + scale_out(args.repeat, args.duration, progress)
            + "\n\n### Rolling reload (3 prefork backends, 10 s runs)\n\n"
            + reload_case(args.repeat, progress))
    command = " ".join([prog] + [shlex.quote(a) for a in argv])
    text = "Command: `%s` (%.0f s).\n\n%s" % (command, progress.elapsed(),
                                               text)
    output.tell(output.write_report(text, args), seconds=progress.elapsed())
    return 0


if __name__ == "__main__":
    sys.exit(main(prog="python bench/haproxy_scaleout.py"))
