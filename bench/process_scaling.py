"""Forking and prefork servers side by side: throughput only.

    python -m bench scaling [--quick] [--repeat 3] [--duration 3]
                            [--warmup 0.5] [--out PATH|-]

(also ``python bench/process_scaling.py``, with the same options).  About
1.5 minutes with the defaults, 15 s with ``--quick`` (one repeat of 1 s).
The report goes to stdout and to ``--out`` (default
build/bench/scaling.md).

Why a suite of its own: the matrix charges the server process's CPU time,
and live prefork workers are not counted in it until they exit; here only
requests per second are compared, in one run, alternating servers in each
repeat.  The load generator is pinned to CPU 1 and does not busy-poll
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
import shlex
import statistics
import subprocess
import sys
import time

if __package__ in (None, ""):   # run as a script: make ``bench`` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))

from bench import measure, output
from bench.progress import Progress
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
# Seconds a run takes beyond its warm-up and window (start, settle, stop).
OVERHEAD = 0.6


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


def measure_rows(rows, workload, settings, progress):
    runs = {row[0]: [] for row in rows}
    for repeat in range(settings.repeat):
        for label, impl, dispatch, processes, cpus in rows:
            progress.step("%s, %s (repeat %d of %d)" % (
                workload, label, repeat + 1, settings.repeat))
            rps = run_one(impl, dispatch, processes, cpus, workload,
                          settings.duration, settings.warmup)
            if rps is not None:
                runs[label].append(rps)
            progress.note("skipped" if rps is None else "%.0f req/s" % rps)
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


def parser(prog="python -m bench scaling"):
    ap = argparse.ArgumentParser(prog=prog,
                                 description=__doc__.splitlines()[0])
    output.add_arguments(ap, "scaling",
                         quick="one repeat of 1 s (about 15 s)")
    ap.add_argument("--repeat", type=int, help="runs per server (default 3)")
    ap.add_argument("--duration", type=float,
                    help="measured seconds per run (default 3)")
    ap.add_argument("--warmup", type=float, default=0.5,
                    help="seconds of load before measuring (default 0.5)")
    return ap


def main(argv=None, prog="python -m bench scaling"):
    argv = sys.argv[1:] if argv is None else argv
    args = parser(prog).parse_args(argv)
    args.repeat = args.repeat or (1 if args.quick else 3)
    args.duration = args.duration or (1.0 if args.quick else 3.0)
    output.check_out(args)
    if not os.path.exists(LOADGEN):
        subprocess.run([sys.executable, "-m", "bench.build"], cwd=ROOT,
                       check=True)
    each = args.duration + args.warmup + OVERHEAD
    progress = Progress([each] * (args.repeat * (len(ECHO) + len(CPU))))
    echo = measure_rows(ECHO, "echo", args, progress)
    cpu = measure_rows(CPU, "cpu", args, progress)
    command = " ".join([prog] + [shlex.quote(a) for a in argv])
    text = "\n".join([
        "Command: `%s` (%.0f s); %d repeat%s × %g s after %g s of warm-up,"
        " servers alternating.\n" % (
            command, progress.elapsed(), args.repeat,
            "" if args.repeat == 1 else "s", args.duration, args.warmup),
        table("Connection per request, 64 B echo, 16 clients", echo,
              "stdlib ForkingTCPServer"),
        table("Connection per request, ~1 ms of Python per request", cpu,
              "csock PreforkTCPServer, 1 process")])
    output.tell(output.write_report(text, args), seconds=progress.elapsed())
    return 0


if __name__ == "__main__":
    sys.exit(main(prog="python bench/process_scaling.py"))
