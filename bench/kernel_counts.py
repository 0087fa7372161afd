"""What a request costs the kernel: context switches and syscalls per request
on the server's core, counted by ``perf stat`` while the load runs.

    python -m bench.kernel_counts WORKLOAD [--servers LABEL,LABEL...]
                                  [--repeat N] [--events EVENT,EVENT...]

WORKLOAD is a workload of ``python -m bench`` (tcp-conn-64, udp-64,
tcp-line-16k...), LABEL a server label of its table ("csock-c threading",
"naive_lf"...; default: every server of the workload but forking ones).
The server runs on CPU 0 and the load generator on CPU 1, as in the main
benchmark; ``perf stat -C 0`` counts every task on CPU 0 for 2 s in the
middle of a 3 s run, so the counts include the idle task's switches (that
is the point: a server thread that sleeps and wakes per request shows as
about two switches).  Needs ``perf`` and permission to count system-wide.
"""

import argparse
import json
import shutil
import subprocess
import sys
import time

from . import measure, workloads
from .build import build_tools

DEFAULT_EVENTS = ("context-switches", "raw_syscalls:sys_enter")
COUNTED = 2.0           # seconds counted, from 1 s into a 3 s load


def count(workload, server, tools, events):
    """(req/s, {event: count per request}) for one run."""
    proc = subprocess.Popen(
        measure._pinned(measure._server_argv(workload, server, tools, None),
                        measure.SERVER_CPU, True),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=measure._server_env(server), cwd=server.path or measure.ROOT)
    try:
        host, port = measure._read_ready_line(proc)["address"]
        argv = [tools["loadgen"], "--mode", workload.mode,
                "--conns", str(workload.conns), "--duration", "3",
                "--warmup", "0.5", "--host", host, "--port", str(port)]
        if workload.size:
            argv += ["--size", str(workload.size)]
        if workload.mode == "udp":
            argv += ["--inflight", str(workload.conns)]
        load = subprocess.Popen(
            measure._pinned(argv, measure.CLIENT_CPU, True),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(1.0)
        perf = subprocess.run(
            ["perf", "stat", "-x,", "-C", measure.SERVER_CPU,
             "-e", ",".join(events), "--", "sleep", str(COUNTED)],
            capture_output=True, text=True)
        out, _ = load.communicate(timeout=30)
    finally:
        measure._stop(proc)
    rps = json.loads(out.decode().splitlines()[-1])["rps"]
    counts = {}
    for line in perf.stderr.splitlines():
        fields = line.split(",")
        if len(fields) > 2 and fields[0].isdigit():
            counts[fields[2]] = int(fields[0]) / (rps * COUNTED)
    return rps, counts


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.kernel_counts")
    parser.add_argument("workload")
    parser.add_argument("--servers", help="comma-separated labels")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--events", default=",".join(DEFAULT_EVENTS))
    args = parser.parse_args(argv)
    if shutil.which("perf") is None or shutil.which("taskset") is None:
        raise SystemExit("needs perf and taskset")
    workload = next((w for w in workloads.full_workloads()
                     if w.name == args.workload), None)
    if workload is None:
        raise SystemExit("no workload %r" % args.workload)
    labels = (args.servers.split(",") if args.servers else
              [s.label for s in workload.servers if s.dispatch != "forking"])
    servers = [s for s in workload.servers if s.label in labels]
    events = args.events.split(",")
    tools = build_tools()
    runs = {s.label: [] for s in servers}
    for _ in range(args.repeat):
        for server in servers:          # alternating, as python -m bench
            runs[server.label].append(count(workload, server, tools, events))
    print("| server | req/s | %s |" % " | ".join(
        "%s per request" % e.split(":")[-1] for e in events))
    print("|---|---:|" + "---:|" * len(events))
    for label, results in runs.items():
        middle = sorted(results)[len(results) // 2]     # median by req/s
        print("| %s | %.0f | %s |" % (label, middle[0], " | ".join(
            "%.2f" % middle[1].get(e, float("nan")) for e in events)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
