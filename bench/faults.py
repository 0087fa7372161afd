"""Process faults, csockserver beside what a stdlib user has instead.

    python -m bench.probes faults [--repeat 3] [--engine c|py]
                                  [--probes NAME...] [--out PATH|-]

(also ``python -m bench.faults``, with the same options).  About a minute
with three repeats; the table goes to stdout and to ``--out`` (default
build/bench/faults.md).

Each probe kills or stops processes under a light load and counts what the
clients saw:

supervisor  kill -9 of a prefork supervisor (2 workers, 4 clients busy):
            how long its workers outlive it.  The stdlib has no prefork
            server; its stand-in is the one users write - a TCPServer bound
            once, os.fork() twice, each child in serve_forever().
workers     10 workers SIGKILLed one after another under 4 clients, a
            connection per request: requests that failed, and the workers
            left after.  (The stand-in never replaces a worker: it gets one
            kill.)
shutdown    shutdown() then server_close() of a ThreadingTCPServer while 8
            clients have 0.2 s requests running: requests cut off, and how
            long the two calls took.
reap        a ForkingTCPServer's children SIGKILLed mid-request (20 of
            them): how long until each is reaped (no zombie left), median
            and max.

Server in a child process on CPU 0, clients in this process on CPU 1;
each repeat's figure is shown, the stdlib and csockserver alternating.
"""

import argparse
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

from . import output
from .progress import Progress

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER_CPU, CLIENT_CPU = 0, 1
CLIENTS = 4
TIMEOUT = 5.0

# The servers.  Each prints its port, then "pids <pid>..." whenever its set
# of workers changes (the supervisor's view), and serves until killed.
PREFORK = r"""
import os, sys, threading, time
import csockserver

class Pid(csockserver.StreamRequestHandler):
    def handle(self):
        self.rfile.readline()
        self.wfile.write(b"%d\n" % os.getpid())

server = csockserver.PreforkTCPServer(("127.0.0.1", 0), Pid)
server.processes = 2
print(server.server_address[1], flush=True)

def announce():
    seen = None
    while True:
        if server.worker_pids != seen:
            seen = server.worker_pids
            print("pids", *sorted(seen), flush=True)
        time.sleep(0.005)
threading.Thread(target=announce, daemon=True).start()
server.serve_forever()
"""

# What a stdlib user writes for a prefork server.
NAIVE_PREFORK = r"""
import os, socketserver

class Pid(socketserver.StreamRequestHandler):
    def handle(self):
        self.rfile.readline()
        self.wfile.write(b"%d\n" % os.getpid())

server = socketserver.TCPServer(("127.0.0.1", 0), Pid)
print(server.server_address[1], flush=True)
pids = []
for _ in range(2):
    pid = os.fork()
    if pid == 0:
        server.serve_forever()
        os._exit(0)
    pids.append(pid)
print("pids", *pids, flush=True)
for _ in pids:
    os.wait()
"""

THREADING = r"""
import os, sys, time
ss = __import__(sys.argv[1])

class Sleepy(ss.StreamRequestHandler):
    def handle(self):
        seconds = float(self.rfile.readline())
        self.wfile.write(b"started\n")
        time.sleep(seconds)
        self.wfile.write(b"done\n")

class Server(ss.ThreadingTCPServer):
    request_queue_size = 64

server = Server(("127.0.0.1", 0), Sleepy)
print(server.server_address[1], flush=True)
import threading
serving = threading.Thread(target=server.serve_forever)
serving.start()
sys.stdin.readline()                     # "stop"
start = time.perf_counter()
server.shutdown()
server.server_close()
print("stopped", time.perf_counter() - start, flush=True)
"""

FORKING = r"""
import os, sys
ss = __import__(sys.argv[1])

class PidThenWait(ss.StreamRequestHandler):
    def handle(self):
        self.wfile.write(b"%d\n" % os.getpid())
        self.wfile.flush()
        self.rfile.readline()

server = ss.ForkingTCPServer(("127.0.0.1", 0), PidThenWait)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def start(script, *args, engine="c"):
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1")
    env.pop("CSOCKSERVER_NO_EXTENSIONS", None)
    if engine == "py":
        env["CSOCKSERVER_NO_EXTENSIONS"] = "1"
    proc = subprocess.Popen(
        [sys.executable, "-W", "ignore", "-c", script, *args], env=env,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        start_new_session=True,
        preexec_fn=lambda: os.sched_setaffinity(0, {SERVER_CPU}))
    port = int(proc.stdout.readline())
    return proc, port


def kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(TIMEOUT)
    proc.stdout.close()
    proc.stdin.close()


def alive(pid):
    """A live process (not a zombie)."""
    try:
        with open("/proc/%d/stat" % pid) as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def ask(port, line=b"\n"):
    with socket.create_connection(("127.0.0.1", port), TIMEOUT) as sock:
        sock.sendall(line)
        reply = sock.makefile("rb").readline()
    if not reply:
        raise ConnectionError("no reply")
    return reply


class Load:
    """CLIENTS threads asking until stopped; answers and failures."""

    def __init__(self, port, count=CLIENTS):
        self.port = port
        self.stopping = threading.Event()
        self.answered = 0
        self.failed = 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, daemon=True)
                        for _ in range(count)]
        for thread in self.threads:
            thread.start()

    def run(self):
        while not self.stopping.is_set():
            try:
                ask(self.port)
                ok = True
            except OSError:
                ok = False
            with self.lock:
                if ok:
                    self.answered += 1
                else:
                    self.failed += 1

    def wait_for(self, more, timeout=TIMEOUT):
        target = self.answered + more
        deadline = time.monotonic() + timeout
        while self.answered < target and time.monotonic() < deadline:
            time.sleep(0.005)
        return self.answered >= target

    def stop(self):
        self.stopping.set()
        for thread in self.threads:
            thread.join(TIMEOUT + 1)


class PidWatch:
    """The server's announcements of its workers' pids, read in a thread."""

    def __init__(self, proc):
        self.history = []
        self.lock = threading.Condition()
        threading.Thread(target=self._read, args=(proc,), daemon=True).start()

    def _read(self, proc):
        for line in proc.stdout:
            words = line.split()
            if words[:1] == ["pids"]:
                with self.lock:
                    self.history.append(set(map(int, words[1:])))
                    self.lock.notify_all()

    def wait(self, predicate, timeout=TIMEOUT):
        with self.lock:
            self.lock.wait_for(lambda: self.history
                               and predicate(self.history[-1]), timeout)
            return set(self.history[-1]) if self.history else set()


def probe_supervisor(kind, engine):
    proc, port = start(PREFORK if kind == "csock" else NAIVE_PREFORK,
                       engine=engine)
    try:
        pids = PidWatch(proc).wait(lambda p: len(p) == 2)
        load = Load(port)
        load.wait_for(50)
        os.kill(proc.pid, signal.SIGKILL)
        killed = time.monotonic()
        deadline = killed + 5.0
        while any(map(alive, pids)) and time.monotonic() < deadline:
            time.sleep(0.002)
        survivors = sum(map(alive, pids))
        gone = time.monotonic() - killed
        load.stop()
        if survivors:
            return "%d of 2 alive after 5 s, port still served" % survivors
        return "gone in %.0f ms" % (gone * 1e3)
    finally:
        kill_group(proc)


def probe_workers(kind, engine):
    proc, port = start(PREFORK if kind == "csock" else NAIVE_PREFORK,
                       engine=engine)
    try:
        watch = PidWatch(proc)
        pids = watch.wait(lambda p: len(p) == 2)
        load = Load(port)
        # The stand-in's workers are never replaced: one kill shows it.
        kills = 10 if kind == "csock" else 1
        for _ in range(kills):
            load.wait_for(20, timeout=2.0)
            victim = min(pids)
            os.kill(victim, signal.SIGKILL)
            if kind == "csock":
                pids = watch.wait(lambda p: len(p) == 2 and victim not in p)
            else:
                pids.discard(victim)
        served_after = load.wait_for(20, timeout=2.0)
        load.stop()
        workers = sum(map(alive, watch.wait(lambda p: True) if kind ==
                          "csock" else pids))
        return "%d kill(s): %d of %d requests failed; %d worker(s) left%s" % (
            kills, load.failed, load.answered + load.failed, workers,
            "" if served_after else ", port unserved")
    finally:
        kill_group(proc)


def probe_shutdown(kind, engine):
    module = "csockserver" if kind == "csock" else "socketserver"
    proc, port = start(THREADING, module, engine=engine)
    started = done = cut = 0
    lock = threading.Lock()

    def client():
        nonlocal started, done, cut
        with socket.create_connection(("127.0.0.1", port), TIMEOUT) as sock:
            sock.sendall(b"0.2\n")
            replies = sock.makefile("rb")
            if replies.readline() != b"started\n":
                return
            with lock:
                started += 1
            ok = replies.readline() == b"done\n"
            with lock:
                done += ok
                cut += not ok
    try:
        clients = [threading.Thread(target=client) for _ in range(8)]
        for thread in clients:
            thread.start()
        deadline = time.monotonic() + TIMEOUT
        while started < 8 and time.monotonic() < deadline:
            time.sleep(0.002)
        proc.stdin.write("stop\n")
        proc.stdin.flush()
        took = float(proc.stdout.readline().split()[1])
        for thread in clients:
            thread.join(TIMEOUT)
        return "%d of %d cut off; stopped in %.0f ms" % (cut, started,
                                                          took * 1e3)
    finally:
        kill_group(proc)


def probe_reap(kind, engine):
    module = "csockserver" if kind == "csock" else "socketserver"
    proc, port = start(FORKING, module, engine=engine)
    held, times = [], []
    try:
        for _ in range(20):
            sock = socket.create_connection(("127.0.0.1", port), TIMEOUT)
            held.append(sock)
            pid = int(sock.makefile("rb").readline())
            os.kill(pid, signal.SIGKILL)
            killed = time.monotonic()
            deadline = killed + 5.0
            while (os.path.exists("/proc/%d" % pid)
                   and time.monotonic() < deadline):
                time.sleep(0.0005)
            times.append(time.monotonic() - killed)
        return "reaped in %.1f ms median, %.0f ms max" % (
            statistics.median(times) * 1e3, max(times) * 1e3)
    finally:
        for sock in held:
            sock.close()
        kill_group(proc)


PROBES = {"supervisor": probe_supervisor, "workers": probe_workers,
          "shutdown": probe_shutdown, "reap": probe_reap}
STANDINS = {"supervisor": "naive os.fork() prefork",
            "workers": "naive os.fork() prefork",
            "shutdown": "socketserver.ThreadingTCPServer",
            "reap": "socketserver.ForkingTCPServer"}
# Seconds each probe takes on each side, for the estimates of time left:
# the stand-in's workers outlive the supervisor for the 5 s watched; the
# stdlib reaps each of 20 children at its next 0.5 s poll.
SECONDS = {("supervisor", "stdlib"): 6, ("supervisor", "csock"): 1,
           ("workers", "stdlib"): 1, ("workers", "csock"): 3,
           ("shutdown", "stdlib"): 1, ("shutdown", "csock"): 1,
           ("reap", "stdlib"): 10, ("reap", "csock"): 1}


def parser(prog="python -m bench.probes faults"):
    ap = argparse.ArgumentParser(prog=prog,
                                 description=__doc__.split("\n")[0])
    output.add_arguments(ap, "faults")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--engine", choices=["c", "py"], default="c")
    ap.add_argument("--probes", nargs="*", default=list(PROBES),
                    choices=list(PROBES))
    return ap


def main(argv=None, prog="python -m bench.probes faults"):
    argv = sys.argv[1:] if argv is None else argv
    args = parser(prog).parse_args(argv)
    output.check_out(args)
    if hasattr(os, "sched_setaffinity") and os.cpu_count() >= 2:
        os.sched_setaffinity(0, {CLIENT_CPU})
    kinds = ("stdlib", "csock")
    progress = Progress([SECONDS[name, kind] for name in args.probes
                         for _ in range(args.repeat) for kind in kinds])
    lines = ["| probe | stdlib (%s) | csockserver (%s engine) |" % (
                 "what a stdlib user has", args.engine),
             "|---|---|---|"]
    for name in args.probes:
        rows = {kind: [] for kind in kinds}
        for repeat in range(args.repeat):
            for kind in kinds:     # side by side, alternating
                progress.step("%s, %s (repeat %d of %d)" % (
                    name, STANDINS[name] if kind == "stdlib"
                    else "csockserver", repeat + 1, args.repeat))
                rows[kind].append(PROBES[name](kind, args.engine))
                progress.note(rows[kind][-1])
        lines.append("| %s | %s: %s | %s |" % (
            name, STANDINS[name], "; ".join(rows["stdlib"]),
            "; ".join(rows["csock"])))
    command = " ".join([prog] + [shlex.quote(a) for a in argv])
    text = "Command: `%s` (%.0f s).\n\n%s" % (
        command, progress.elapsed(), "\n".join(lines))
    output.tell(output.write_report(text, args), seconds=progress.elapsed())
    return 0


if __name__ == "__main__":
    sys.exit(main(prog="python -m bench.faults"))
