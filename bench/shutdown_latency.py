"""How long shutdown() takes to return, stdlib vs csockserver.

    python bench/shutdown_latency.py [--runs 20] [--poll-interval 0.5]

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
import statistics
import subprocess
import sys
import threading
import time

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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--poll-interval", type=float, default=0.5)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        idle = json.loads(sys.stdin.read())
        print(json.dumps([one_run(args.child, args.poll_interval, i)
                          for i in idle]))
        return
    idle = [random.uniform(0.05, 0.25) for _ in range(args.runs)]
    print("command: python bench/shutdown_latency.py --runs %d "
          "--poll-interval %g" % (args.runs, args.poll_interval))
    print("| server | median shutdown() | max |\n|---|---|---|")
    for name, extra in ENGINES.items():
        env = dict(os.environ, PYTHONPATH=ROOT, **extra)
        out = subprocess.run(
            [sys.executable, __file__, "--child", name, "--poll-interval",
             str(args.poll_interval)], input=json.dumps(idle), env=env,
            capture_output=True, text=True, timeout=60 + 2 * args.runs,
            check=True).stdout
        times = json.loads(out)
        print("| %s | %.3f ms | %.3f ms |" % (
            name, statistics.median(times) * 1e3, max(times) * 1e3))


if __name__ == "__main__":
    main()
