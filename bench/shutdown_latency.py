"""How long shutdown() takes to return, stdlib vs csockserver.

    python -m bench shutdown [--quick] [--runs 20] [--poll-interval 0.5]
                             [--out PATH|-]

(also ``python bench/shutdown_latency.py``, with the same options).  About
20 s with the defaults, 5 s with ``--quick`` (5 runs); the report goes to
stdout and to ``--out`` (default build/bench/shutdown.md).

Each run starts serve_forever(poll_interval) in a thread on an idle
TCPServer, waits a random 50-250 ms, then times shutdown().  The stdlib's
loop notices the request only at its next poll, so it averages about half a
poll_interval; csockserver's loop is woken at once.  Each engine runs in its
own subprocess, with the same random idle times.
"""

import argparse
import json
import os
import random
import shlex
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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENGINES = {"stdlib": {},
           "csock-cython": {"CSOCKSERVER_REQUIRE_EXTENSIONS": "1"},
           "csock-python": {"CSOCKSERVER_NO_EXTENSIONS": "1"}}


def one_run(name, poll_interval, idle):
    if name == "stdlib":
        import socketserver as ss
    else:
        import csockserver as ss
    server = ss.TCPServer(("127.0.0.1", 0), ss.BaseRequestHandler)
    thread = threading.Thread(target=server.serve_forever,
                              args=(poll_interval,))
    thread.start()
    time.sleep(idle)
    start = time.perf_counter()
    server.shutdown()
    elapsed = time.perf_counter() - start
    thread.join()
    server.server_close()
    return elapsed


def parser(prog="python -m bench shutdown"):
    ap = argparse.ArgumentParser(prog=prog,
                                 description=__doc__.splitlines()[0])
    output.add_arguments(ap, "shutdown", quick="5 runs (about 5 s)")
    ap.add_argument("--runs", type=int, help="runs per server (default 20)")
    ap.add_argument("--poll-interval", type=float, default=0.5,
                    help="serve_forever()'s poll_interval (default 0.5)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    return ap


def main(argv=None, prog="python -m bench shutdown"):
    argv = sys.argv[1:] if argv is None else argv
    args = parser(prog).parse_args(argv)
    if args.child:
        idle = json.loads(sys.stdin.read())
        print(json.dumps([one_run(args.child, args.poll_interval, i)
                          for i in idle]))
        return 0
    args.runs = args.runs or (5 if args.quick else 20)
    output.check_out(args)
    idle = [random.uniform(0.05, 0.25) for _ in range(args.runs)]
    # The stdlib's shutdown() waits half a poll interval on average.
    progress = Progress([0.5 + args.runs * (0.15 + (
        args.poll_interval / 2 if name == "stdlib" else 0))
        for name in ENGINES])
    lines = ["| server | median shutdown() | max |", "|---|---|---|"]
    for name, extra in ENGINES.items():
        progress.step("%s, %d runs" % (name, args.runs))
        env = dict(os.environ, PYTHONPATH=ROOT, **extra)
        out = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--child", name,
             "--poll-interval", str(args.poll_interval)],
            input=json.dumps(idle), env=env, capture_output=True, text=True,
            timeout=60 + 2 * args.runs, check=True).stdout
        times = json.loads(out)
        lines.append("| %s | %.3f ms | %.3f ms |" % (
            name, statistics.median(times) * 1e3, max(times) * 1e3))
        progress.note("median %.3f ms" % (statistics.median(times) * 1e3))
    command = " ".join([prog] + [shlex.quote(a) for a in argv])
    text = "Command: `%s` (%.0f s).\n\n%s" % (
        command, progress.elapsed(), "\n".join(lines))
    output.tell(output.write_report(text, args), seconds=progress.elapsed())
    return 0


if __name__ == "__main__":
    sys.exit(main(prog="python bench/shutdown_latency.py"))
