"""How evenly a prefork server's workers share the connections.

    python bench/prefork_spread.py [--repeat 3] [--duration 3] [--out -]

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
import socket
import statistics
import subprocess
import sys
import threading
import time

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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--out", default="-")
    args = parser.parse_args()
    cases = [(mode, processes) for processes in (2, 4)
             for mode in ("shared", "per-worker")]
    runs = collections.defaultdict(list)
    for _ in range(args.repeat):
        for case in cases:
            runs[case].append(run_one(*case, args.duration))
    lines = ["| workers | mode | req/s | busiest | idlest | ratio | failed |",
             "|---|---|---|---|---|---|---|"]
    for mode, processes in cases:
        rows = runs[mode, processes]

        def median(key):
            return statistics.median(row[key] for row in rows)
        lines.append("| %d | %s | %.0f | %.1f%% | %.1f%% | %.2f | %d |" % (
            processes, mode, median("rps"), 100 * median("max_share"),
            100 * median("min_share"), median("ratio"),
            sum(row["failed"] for row in rows)))
    text = "\n".join(lines) + "\n"
    if args.out == "-":
        sys.stdout.write(text)
    else:
        with open(args.out, "w") as out:
            out.write(text)


if __name__ == "__main__":
    main()
