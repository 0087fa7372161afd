"""How evenly a prefork server's workers share the connections.

    python -m bench prefork [--quick] [--repeat 3] [--duration 3]
                            [--out PATH|-]

(also ``python bench/prefork_spread.py``, with the same options).  About a
minute with the defaults, 10 s with ``--quick`` (one repeat of 1 s); the
report goes to stdout and to ``--out`` (default build/bench/prefork.md).

PreforkMixIn's workers accept on one shared socket by default; with
``reuse_port_per_worker`` each worker (but one) has a SO_REUSEPORT socket
of its own and the kernel hashes each new connection to one of them.  This
counts, for each mode, which worker answered each connection: the busiest
and idlest worker's share of the connections and their ratio (1.00 is a
perfect spread), with requests per second beside them.

The server runs on CPUs 0-1 (it has several processes), the clients - 16
threads, a connection per request, in this process - too: the figures are
about the spread, not the speed.  Each handler does about 0.2 ms of Python
work, so that a busy worker is one that is still working.  Modes alternate
within each repeat; medians over the repeats.
"""

import argparse
import collections
import os
import shlex
import socket
import statistics
import subprocess
import sys
import threading
import time

if __package__ in (None, ""):   # run as a script: make ``bench`` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))

from bench import output
from bench.progress import Progress

SERVER = r"""
import os, sys, time
import csockserver

class Handler(csockserver.StreamRequestHandler):
    def handle(self):
        self.rfile.readline()
        end = time.perf_counter() + 0.0002     # a little Python work
        while time.perf_counter() < end:
            pass
        self.wfile.write(b"%d\n" % os.getpid())

class Server(csockserver.PreforkTCPServer):
    processes = int(sys.argv[1])
    reuse_port_per_worker = sys.argv[2] == "per-worker"
    request_queue_size = 128

with Server(("127.0.0.1", 0), Handler) as server:
    print(server.server_address[1], flush=True)
    server.serve_forever()
"""

CLIENTS = 16
# Seconds a run takes beyond its window: start, every worker's first
# answer, the 0.5 s warm-up, stop.
OVERHEAD = 0.6


def ask(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"x\n")
        return int(sock.makefile("rb").readline())


def load(port, duration):
    """Connections from CLIENTS threads for *duration* seconds: a Counter
    of the answering pids, and how many failed."""
    served = collections.Counter()
    failed = [0]
    lock = threading.Lock()
    stop = time.monotonic() + duration

    def client():
        while time.monotonic() < stop:
            try:
                pid = ask(port)
            except OSError:
                with lock:
                    failed[0] += 1
                continue
            with lock:
                served[pid] += 1
    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return served, failed[0]


def run_one(mode, processes, duration):
    proc = subprocess.Popen(
        ["taskset", "-c", "0-1", sys.executable, "-c", SERVER,
         str(processes), mode], stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        # Every worker up: each has answered once.
        deadline = time.monotonic() + 10
        seen = set()
        while len(seen) < processes and time.monotonic() < deadline:
            seen.add(ask(port))
        load(port, 0.5)                               # warm-up
        started = time.monotonic()
        served, failed = load(port, duration)
        elapsed = time.monotonic() - started
    finally:
        proc.terminate()
        proc.wait(30)
    counts = [served.get(pid, 0) for pid in seen] or [0]
    total = sum(counts)
    return {"rps": total / elapsed, "failed": failed,
            "max_share": max(counts) / total,
            "min_share": min(counts) / total,
            "ratio": max(counts) / max(1, min(counts))}


def parser(prog="python -m bench prefork"):
    ap = argparse.ArgumentParser(prog=prog,
                                 description=__doc__.split("\n")[0])
    output.add_arguments(ap, "prefork",
                         quick="one repeat of 1 s (about 10 s)")
    ap.add_argument("--repeat", type=int, help="runs per case (default 3)")
    ap.add_argument("--duration", type=float,
                    help="seconds of load per run (default 3)")
    return ap


def main(argv=None, prog="python -m bench prefork"):
    argv = sys.argv[1:] if argv is None else argv
    args = parser(prog).parse_args(argv)
    args.repeat = args.repeat or (1 if args.quick else 3)
    args.duration = args.duration or (1.0 if args.quick else 3.0)
    output.check_out(args)
    cases = [(mode, processes) for processes in (2, 4)
             for mode in ("shared", "per-worker")]
    progress = Progress([args.duration + OVERHEAD]
                        * (args.repeat * len(cases)))
    runs = collections.defaultdict(list)
    for repeat in range(args.repeat):
        for mode, processes in cases:
            progress.step("%d workers, %s (repeat %d of %d)" % (
                processes, mode, repeat + 1, args.repeat))
            run = run_one(mode, processes, args.duration)
            runs[mode, processes].append(run)
            progress.note("%.0f req/s, busiest/idlest %.2f, %d failed" % (
                run["rps"], run["ratio"], run["failed"]))
    lines = ["Command: `%s` (%.0f s); %s." % (
                 " ".join([prog] + [shlex.quote(a) for a in argv]),
                 progress.elapsed(), "one repeat" if args.repeat == 1 else
                 "%d repeats, modes alternating; medians" % args.repeat), "",
             "| workers | mode | req/s | busiest | idlest | ratio | failed |",
             "|---|---|---|---|---|---|---|"]
    for mode, processes in cases:
        rows = runs[mode, processes]

        def median(key):
            return statistics.median(row[key] for row in rows)
        lines.append("| %d | %s | %.0f | %.1f%% | %.1f%% | %.2f | %d |" % (
            processes, mode, median("rps"), 100 * median("max_share"),
            100 * median("min_share"), median("ratio"),
            sum(row["failed"] for row in rows)))
    output.tell(output.write_report("\n".join(lines), args),
                seconds=progress.elapsed())
    return 0


if __name__ == "__main__":
    sys.exit(main(prog="python bench/prefork_spread.py"))
