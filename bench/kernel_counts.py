"""What a request costs the kernel: context switches and syscalls per request
on the server's core, counted by ``perf stat`` while the load runs.

    python -m bench kernel-counts [WORKLOAD...] [--quick]
                                  [--servers LABEL,LABEL...] [--repeat N]
                                  [--events EVENT,EVENT...] [--out PATH|-]

(also ``python -m bench.kernel_counts``, with the same arguments).  About 5
minutes with the defaults, 1.5 with ``--quick`` (one repeat); the report
goes to stdout and to ``--out`` (default build/bench/kernel-counts.md).

WORKLOAD is a workload of the matrix (tcp-conn-64, udp-64, tcp-line-16k...;
default: those three), LABEL a server label of its table ("csock-c
threading", "naive_lf"...; default: every server of the workload but
forking ones).  The server runs on CPU 0 and the load generator on CPU 1,
as in the matrix; ``perf stat -C 0`` counts every task on CPU 0 for 2 s in
the middle of a 3 s run, so the counts include the idle task's switches
(that is the point: a server thread that sleeps and wakes per request shows
as about two switches).  Needs ``perf`` and permission to count
system-wide.
"""

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import time

from . import measure, output, workloads
from .build import build_tools
from .progress import Progress

DEFAULT_EVENTS = ("context-switches", "raw_syscalls:sys_enter")
# The table's words for the events it knows.
EVENT_NAMES = {"context-switches": "switches",
               "raw_syscalls:sys_enter": "syscalls"}
COUNTED = 2.0           # seconds counted, from 1 s into a 3 s load
RUN = 4.0               # seconds per run: the 3.5 s load, start and stop
DEFAULT_WORKLOADS = ("tcp-conn-64", "udp-64", "tcp-line-16k")


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


def parser(prog="python -m bench kernel-counts"):
    ap = argparse.ArgumentParser(prog=prog,
                                 description=__doc__.split("\n\n")[0])
    output.add_arguments(ap, "kernel-counts",
                         quick="one repeat (about 1.5 min)")
    ap.add_argument("workload", nargs="*",
                    help="workloads of the matrix (default: %s)"
                         % " ".join(DEFAULT_WORKLOADS))
    ap.add_argument("--servers", help="comma-separated labels")
    ap.add_argument("--repeat", type=int, help="runs per server (default 3)")
    ap.add_argument("--events", default=",".join(DEFAULT_EVENTS))
    return ap


def main(argv=None, prog="python -m bench kernel-counts"):
    argv = sys.argv[1:] if argv is None else argv
    args = parser(prog).parse_args(argv)
    args.repeat = args.repeat or (1 if args.quick else 3)
    output.check_out(args)
    if shutil.which("perf") is None or shutil.which("taskset") is None:
        raise SystemExit("%s: needs perf and taskset" % prog)
    known = {w.name: w for w in workloads.full_workloads()}
    chosen = []
    for name in args.workload or DEFAULT_WORKLOADS:
        if name not in known:
            raise SystemExit("%s: no workload %r; the matrix has: %s" % (
                prog, name, ", ".join(known)))
        workload = known[name]
        labels = (args.servers.split(",") if args.servers else
                  [s.label for s in workload.servers
                   if s.dispatch != "forking"])
        chosen.append((workload,
                       [s for s in workload.servers if s.label in labels]))
    events = args.events.split(",")
    tools = build_tools()
    progress = Progress([RUN] * (args.repeat * sum(len(servers)
                                                   for _, servers in chosen)))
    runs = {}
    for workload, servers in chosen:
        for repeat in range(args.repeat):
            for server in servers:      # alternating, as the matrix
                progress.step("%s, %s (repeat %d of %d)" % (
                    workload.name, server.label, repeat + 1, args.repeat))
                rps, counts = count(workload, server, tools, events)
                runs.setdefault((workload.name, server.label), []).append(
                    (rps, counts))
                progress.note("%.0f req/s, %s" % (rps, ", ".join(
                    "%s %.2f" % (EVENT_NAMES.get(e, e),
                                 counts.get(e, float("nan")))
                    for e in events)))
    lines = [
        "Command: `%s` (%.0f s); `perf stat -C %s` for %g s of a 3 s run;"
        " %s." % (
            " ".join([prog] + [shlex.quote(a) for a in argv]),
            progress.elapsed(), measure.SERVER_CPU, COUNTED,
            "one run per server" if args.repeat == 1 else
            "the median run by req/s of %d" % args.repeat),
        "",
        "| workload | server | req/s | %s |" % " | ".join(
            "%s / req" % EVENT_NAMES.get(e, e) for e in events),
        "|---|---|---:|" + "---:|" * len(events)]
    for (name, label), results in runs.items():
        middle = sorted(results, key=lambda r: r[0])[len(results) // 2]
        lines.append("| %s | %s | %.0f | %s |" % (name, label, middle[0],
                                                  " | ".join(
            "%.2f" % middle[1].get(e, float("nan")) for e in events)))
    output.tell(output.write_report("\n".join(lines), args),
                seconds=progress.elapsed())
    return 0


if __name__ == "__main__":
    sys.exit(main(prog="python -m bench.kernel_counts"))
