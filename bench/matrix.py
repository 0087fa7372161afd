"""The side-by-side benchmark: ``python -m bench [--quick] [options]``.

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

Results go to stdout and to ``bench/RESULTS.md`` (``--out``), with a PNG
chart of the ratios when matplotlib is installed.
"""

import argparse
import os
import shlex
import shutil
import sys
import time

from . import report
from .measure import measure
from .workloads import against_build, preset

HERE = os.path.dirname(os.path.abspath(__file__))


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="a short preset that runs in under 2 minutes")
    parser.add_argument("--repeat", type=int, help="runs per measurement")
    parser.add_argument("--duration", type=float,
                        help="measured seconds per run")
    parser.add_argument("--warmup", type=float,
                        help="seconds before measuring")
    parser.add_argument("--only", action="append", default=[],
                        help="run only workloads whose name contains this")
    parser.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"),
                        help="markdown report (default bench/RESULTS.md); "
                             "'-' for none")
    parser.add_argument("--no-pin", action="store_true",
                        help="do not pin with taskset")
    parser.add_argument("--compare-build", metavar="NAME=PATH",
                        help="measure only the stdlib and the compiled"
                             " engine, beside the csockserver found in PATH"
                             " (another build: its rows are labelled NAME)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
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
    command = "python -m bench " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))

    from .build import build_tools
    tools = build_tools()

    plan = [(r, w, s) for r in range(settings["repeat"])
            for w in workloads for s in w.servers]
    results = {}  # (workload name, server label) -> [Measurement]
    started = time.monotonic()
    for done, (repeat, workload, server) in enumerate(plan, 1):
        m = measure(workload, server, tools, settings, pin)
        results.setdefault((workload.name, server.label), []).append(m)
        elapsed = time.monotonic() - started
        left = elapsed / done * (len(plan) - done)
        print("[%d/%d] repeat %d  %-28s %-22s %s   (%.0fs left)" % (
            done, len(plan), repeat + 1, workload.name, server.label,
            m.summary(), left), file=sys.stderr, flush=True)

    text = report.markdown(command, workloads, results, settings, pin,
                           time.monotonic() - started)
    print(text)
    if args.out != "-":
        text += report.kept_section(args.out)
        with open(args.out, "w") as f:
            f.write(text)
        chart = report.chart(workloads, results,
                             os.path.splitext(args.out)[0] + ".png")
        if chart:
            print("chart: %s" % chart, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
