"""Forking and prefork servers side by side: throughput only.

    python bench/process_scaling.py [--repeat 3] [--duration 3] [--out -]

Why a separate script: the main runner charges the server process's CPU
time, and live prefork workers are not counted in it until they exit; here
only requests per second are compared, in one run, alternating servers in
each repeat.  The load generator is pinned to CPU 1 and does not busy-poll
(so it leaves CPU time to a server process sharing that CPU); single-process
servers run on CPU 0, two-process prefork servers on CPUs 0-1.

Two workloads, connection per request from 16 clients:
- ``echo``: a 64 B echo handler: the stdlib's ForkingTCPServer against
  csockserver's ForkingTCPServer and PreforkTCPServer (1 and 2 processes);
- ``cpu``: the same echo after about 1 ms of Python work per message: one
  process (sync TCPServer, prefork with 1 process) against prefork with 2
  processes, which shows how far a second process scales.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

if __package__ in (None, ""):   # run as a script: make ``bench`` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))

from bench import measure
from bench.workloads import Server

ROOT = measure.ROOT
LOADGEN = os.path.join(ROOT, "bench", "_build", "loadgen")

# (label, impl, dispatch, processes, server cpus)
ECHO = [
    ("stdlib ForkingTCPServer", "stdlib", "forking", 0, "0"),
    ("csock ForkingTCPServer", "csock", "forking", 0, "0"),
    ("csock PreforkTCPServer, 1 process", "csock", "prefork", 1, "0"),
    ("csock PreforkTCPServer, 2 processes", "csock", "prefork", 2, "0-1"),
]
CPU = [
    ("stdlib TCPServer (1 process)", "stdlib", "sync", 0, "0"),
    ("csock TCPServer (1 process)", "csock", "sync", 0, "0"),
    ("csock PreforkTCPServer, 1 process", "csock", "prefork", 1, "0"),
    ("csock PreforkTCPServer, 2 processes", "csock", "prefork", 2, "0-1"),
]


def run_one(impl, dispatch, processes, cpus, workload, duration, warmup):
    """Start one server, load it, return requests per second (None:
    skipped)."""
    argv = [sys.executable, "-m", "bench.servers", "--impl", impl,
            "--dispatch", dispatch, "--workload", workload]
    if processes:
        argv += ["--processes", str(processes)]
    engine = "cython" if impl == "csock" else ""
    server = subprocess.Popen(
        measure._pinned(argv, cpus, True), cwd=ROOT,
        env=measure._server_env(Server(impl, impl, dispatch, engine)),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        hello = measure._read_ready_line(server)
        if "skip" in hello:
            return None
        time.sleep(0.3)  # let prefork workers start
        host, port = hello["address"][:2]
        load = subprocess.run(
            measure._pinned(
                [LOADGEN, "--mode", "conn", "--host", host,
                 "--port", str(port), "--conns", "16", "--size", "64",
                 "--duration", str(duration), "--warmup", str(warmup),
                 "--busy-poll", "0"], measure.CLIENT_CPU, True),
            capture_output=True, text=True, timeout=duration + warmup + 30)
        result = json.loads(load.stdout.strip().splitlines()[-1])
        if result.get("errors"):
            print("  %d errors" % result["errors"], file=sys.stderr)
        return result["rps"]
    finally:
        measure._stop(server)


def measure_rows(rows, workload, repeat, duration, warmup):
    runs = {row[0]: [] for row in rows}
    for _ in range(repeat):
        for label, impl, dispatch, processes, cpus in rows:
            rps = run_one(impl, dispatch, processes, cpus, workload,
                          duration, warmup)
            if rps is not None:
                runs[label].append(rps)
            print("  %-40s %s" % (label, rps), file=sys.stderr)
    return {label: values for label, values in runs.items() if values}


def table(title, runs, reference):
    lines = ["### " + title, "",
             "| server | req/s median [min–max] | vs %s |" % reference,
             "|---|---|---|"]
    base = statistics.median(runs[reference]) if reference in runs else None
    for label, values in runs.items():
        median = statistics.median(values)
        ratio = "%.2f×" % (median / base) if base else "?"
        lines.append("| %s | %.0f [%.0f–%.0f] | %s |" % (
            label, median, min(values), max(values), ratio))
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--warmup", type=float, default=0.5)
    args = ap.parse_args(argv)
    if not os.path.exists(LOADGEN):
        subprocess.run([sys.executable, "-m", "bench.build"], cwd=ROOT,
                       check=True)
    started = time.monotonic()
    echo = measure_rows(ECHO, "echo", args.repeat, args.duration, args.warmup)
    cpu = measure_rows(CPU, "cpu", args.repeat, args.duration, args.warmup)
    print("Command: `python bench/process_scaling.py --repeat %d"
          " --duration %g` (%.0f s); %d repeats, servers alternating.\n" % (
              args.repeat, args.duration, time.monotonic() - started,
              args.repeat))
    print(table("Connection per request, 64 B echo, 16 clients", echo,
                "stdlib ForkingTCPServer"))
    print(table("Connection per request, ~1 ms of Python per request", cpu,
                "csock PreforkTCPServer, 1 process"))


if __name__ == "__main__":
    main()
