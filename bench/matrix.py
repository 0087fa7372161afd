"""The side-by-side matrix: ``python -m bench [matrix] [--quick] [options]``.

For each workload, the same user-style handler code is served by the
standard library's socketserver, by csockserver (compiled and pure engines),
by two dispatchers a user could write in 20 lines instead (``naive_pool``,
``naive_lf``), by asyncio, and by a minimal C epoll server (the practical
limit of this machine).  A compiled, event-driven load generator
(``bench/c/loadgen.c``) drives each one.  Server and load generator are
pinned to different cores with ``taskset`` when it exists; the servers of a
workload are measured one after the other within each repeat, so drift hits
them alike.  Per measurement it records req/s, latency percentiles, errors,
and the server's CPU time per request (user+system, all threads, reaped
children), read from /proc over the measured window: when the load
generator saturates its core, CPU per request still tells servers apart.

The report goes to stdout and to ``--out`` (default build/bench/matrix.md,
or matrix-quick.md with --quick), with a PNG chart of the ratios when
matplotlib is installed.  ``--out bench/RESULTS.md`` updates the tracked
report: its sections below the matrix are kept.
"""

import argparse
import os
import shlex
import shutil
import sys

from . import output, report
from .measure import measure
from .progress import Progress
from .workloads import against_build, preset

# Seconds a measurement takes beyond its warm-up and window (starting and
# stopping the server, the load generator's exit), for the estimates.
OVERHEAD = 0.25


def parser(prog="python -m bench matrix", description=None):
    ap = argparse.ArgumentParser(
        prog=prog, description=description or __doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    output.add_arguments(ap, "matrix",
                         quick="the headline workloads, compiled engine"
                               " only: under 2 minutes")
    ap.add_argument("--repeat", type=int, help="runs per measurement")
    ap.add_argument("--duration", type=float,
                    help="measured seconds per run")
    ap.add_argument("--warmup", type=float,
                    help="seconds before measuring")
    ap.add_argument("--only", action="append", default=[],
                    help="run only workloads whose name contains this")
    ap.add_argument("--no-pin", action="store_true",
                    help="do not pin with taskset")
    ap.add_argument("--compare-build", metavar="NAME=PATH",
                    help="measure only the stdlib and the compiled"
                         " engine, beside the csockserver found in PATH"
                         " (another build: its rows are labelled NAME)")
    return ap


def main(argv=None, prog="python -m bench matrix", ap=None):
    argv = sys.argv[1:] if argv is None else argv
    args = (ap or parser(prog)).parse_args(argv)
    settings = preset(args.quick)
    for name in ("repeat", "duration", "warmup"):
        if getattr(args, name) is not None:
            settings[name] = getattr(args, name)
    workloads = [w for w in settings["workloads"]
                 if not args.only or any(o in w.name for o in args.only)]
    if args.compare_build:
        name, _, path = args.compare_build.partition("=")
        if not os.path.isdir(os.path.join(path, "csockserver")):
            raise SystemExit("--compare-build: no csockserver in %r" % path)
        workloads = against_build(workloads, name, os.path.abspath(path))
    pin = not args.no_pin and shutil.which("taskset") is not None
    command = " ".join([prog] + [shlex.quote(a) for a in argv])

    from .build import build_tools
    tools = build_tools()

    plan = [(r, w, s) for r in range(settings["repeat"])
            for w in workloads for s in w.servers]
    each = settings["warmup"] + settings["duration"] + OVERHEAD
    progress = Progress([each] * len(plan))
    results = {}  # (workload name, server label) -> [Measurement]
    for repeat, workload, server in plan:
        progress.step("%s, %s (repeat %d of %d)" % (
            workload.name, server.label, repeat + 1, settings["repeat"]))
        m = measure(workload, server, tools, settings, pin)
        results.setdefault((workload.name, server.label), []).append(m)
        progress.note(m.summary())

    text = report.markdown(command, workloads, results, settings, pin,
                           progress.elapsed())
    path = output.report_path(args)
    written = output.write_report(
        text, args, text + report.kept_section(path) if path else None)
    chart = None
    if written:
        chart = report.chart(workloads, results, output.chart_path(written))
        if chart is None:
            print(output.NO_MATPLOTLIB, file=sys.stderr)
    output.tell(written, chart, progress.elapsed())
    return 0


if __name__ == "__main__":
    sys.exit(main(prog="python -m bench.matrix"))
