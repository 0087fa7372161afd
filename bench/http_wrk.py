"""http.server handlers under wrk: stdlib servers against csockserver.http.

    python -m bench http [--quick] [--repeat 5] [--duration 3] [--out PATH|-]

(also ``python bench/http_wrk.py``, with the same options).  About 4
minutes with the defaults, 30 s with ``--quick`` (one repeat of 1 s); the
report goes to stdout and to ``--out`` (default build/bench/http.md).
After the servers it measures what the handler's own Python costs per
keep-alive request (bench/http_handler_cost.py), median of 3 runs.

Needs ``wrk`` (Debian package ``wrk``).  The handler is what a user writes
with http.server: ``do_GET`` sends 200 with a 2-byte body (``log_message``
silenced).  ``http10`` keeps the handler's default protocol (HTTP/1.0: the
server closes each connection) and wrk sends ``Connection: close``;
``http11`` sets ``protocol_version = "HTTP/1.1"`` and wrk keeps its
connections alive.  wrk runs ``-t1 -c8`` pinned to CPU 1, the server to CPU
0; each repeat runs every server once, alternating (each repeat starting one
server further on in the list), and the figures are medians over the
repeats.

Servers (all ThreadingHTTPServer with the same handler code):
- ``stdlib``: http.server's, the handler as users write it (Nagle on);
- ``stdlib nodelay``: the same with ``disable_nagle_algorithm = True``;
- ``csock``: csockserver.http's, handler derived from
  csockserver.http.BaseHTTPRequestHandler (compiled rfile/wfile);
- ``csock, stdlib handler``: csockserver.http's server, handler derived
  from http.server.BaseHTTPRequestHandler (only the server line changed);
- ``stdlib via install()``: the stdlib's own code unchanged --
  http.server.ThreadingHTTPServer and a handler derived from
  http.server.BaseHTTPRequestHandler -- in a process that called
  ``csockserver.install()`` before importing http.server, so both are
  built on csockserver (the stand-in path of code one cannot edit).

Internally, ``--serve VARIANT --protocol P`` runs one server (one JSON line
with its address on stdout, then serves until SIGTERM).
"""

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import threading

if __package__ in (None, ""):   # run as a script: make ``bench`` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))

from bench import measure, output
from bench.progress import Progress
from bench.workloads import Server

STANDIN = "stdlib via install()"
VARIANTS = ["stdlib", "stdlib nodelay", STANDIN, "csock",
            "csock, stdlib handler"]
# The variants that run on csockserver (the compiled engine is required).
ON_CSOCKSERVER = (STANDIN, "csock", "csock, stdlib handler")
PROTOCOLS = {"http10": "HTTP/1.0", "http11": "HTTP/1.1"}
SERVER_CPU, CLIENT_CPU = "0", "1"
# Seconds a run takes beyond wrk's measured window: the server's start and
# stop, and wrk's 1 s warm-up run.
OVERHEAD = 1.5
COST_REQUESTS = 20000   # per run of the handler's cost; 3 runs


# -- one server ---------------------------------------------------------------

def build_server(variant, protocol):
    """(server class, handler class) for a variant, imported as users would.

    For STANDIN, csockserver.install() must come first, before anything in
    the process imports http.server: serve() runs in a process of its own.
    """
    if variant == STANDIN:
        if "http.server" in sys.modules:
            raise RuntimeError("http.server was imported before install():"
                               " it would be the standard library's")
        import csockserver
        csockserver.install()
    import http.server
    if variant == STANDIN:
        import csockserver
        if not issubclass(http.server.ThreadingHTTPServer,
                          csockserver.ThreadingMixIn):
            raise RuntimeError("http.server is not built on csockserver")
    if variant.startswith("csock"):
        import csockserver.http as chttp
        server_class = chttp.ThreadingHTTPServer
        base = (http.server.BaseHTTPRequestHandler
                if variant == "csock, stdlib handler"
                else chttp.BaseHTTPRequestHandler)
    else:
        server_class = http.server.ThreadingHTTPServer
        base = http.server.BaseHTTPRequestHandler

    class OkHandler(base):
        protocol_version = PROTOCOLS[protocol]
        if variant == "stdlib nodelay":
            disable_nagle_algorithm = True

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format, *args):
            pass

    return server_class, OkHandler


def serve(variant, protocol):
    server_class, handler = build_server(variant, protocol)
    server_class.request_queue_size = 1024
    server = server_class(("127.0.0.1", 0), handler)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(json.dumps({"address": list(server.server_address)}), flush=True)
    while not stop.wait(1.0):
        pass
    server.shutdown()
    server.server_close()


# -- measuring ----------------------------------------------------------------

def wrk(address, protocol, duration):
    """Requests per second and p50 latency (ms) from one wrk run."""
    argv = ["wrk", "-t1", "-c8", "-d%ds" % max(1, round(duration)),
            "--latency"]
    if protocol == "http10":
        argv += ["-H", "Connection: close"]
    argv.append("http://%s:%d/" % tuple(address))
    out = subprocess.run(measure._pinned(argv, CLIENT_CPU, True),
                         capture_output=True, text=True, check=True,
                         timeout=duration + 30).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)\b", out)
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[p50.group(2)]
    errors = re.search(r"Socket errors:.*|Non-2xx.*", out)
    return rps, float(p50.group(1)) * scale, errors.group(0) if errors else ""


def run_one(variant, protocol, duration):
    engine = "cython" if variant in ON_CSOCKSERVER else ""
    env = measure._server_env(Server(variant, "csock" if engine else "stdlib",
                                     "threading", engine))
    argv = [sys.executable, os.path.abspath(__file__), "--serve", variant,
            "--protocol", protocol]
    proc = subprocess.Popen(measure._pinned(argv, SERVER_CPU, True), env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=measure.ROOT)
    try:
        address = measure._read_ready_line(proc)["address"]
        wrk(address, protocol, 1)                    # warm up
        return wrk(address, protocol, duration)
    finally:
        measure._stop(proc)


def compare(repeat, duration, progress):
    results = {(p, v): [] for p in PROTOCOLS for v in VARIANTS}
    for round_ in range(repeat):
        # Each round starts one server further on, so that no server
        # always follows the same one (a run after a stdlib one, say).
        shift = round_ % len(VARIANTS)
        for protocol in PROTOCOLS:
            for variant in VARIANTS[shift:] + VARIANTS[:shift]:
                progress.step("%s, %s (repeat %d of %d)" % (
                    protocol, variant, round_ + 1, repeat))
                rps, p50, errors = run_one(variant, protocol, duration)
                results[protocol, variant].append((rps, p50))
                progress.note("%.0f req/s  p50 %.2f ms %s" % (rps, p50,
                                                              errors))
    return results


def report(results, repeat, duration):
    lines = ["| protocol | server | req/s (median) | p50 ms | vs stdlib "
             "| vs stdlib nodelay | vs csock |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for protocol in PROTOCOLS:
        median = {v: statistics.median(r for r, _ in results[protocol, v])
                  for v in VARIANTS}
        for variant in VARIANTS:
            p50 = statistics.median(p for _, p in results[protocol, variant])
            lines.append("| %s | %s | %.0f | %.2f | %.2f× | %.2f× | %.2f× |"
                         % (protocol, variant, median[variant], p50,
                            median[variant] / median["stdlib"],
                            median[variant] / median["stdlib nodelay"],
                            median[variant] / median["csock"]))
    lines.append("")
    lines.append("%s of %gs each (wrk -t1 -c8, pinned to CPU %s; servers"
                 " on CPU %s)." % ("Medians of %d rounds" % repeat
                                   if repeat > 1 else "One round", duration,
                                   CLIENT_CPU, SERVER_CPU))
    return "\n".join(lines) + "\n"


def handler_cost(runs, progress):
    """The handler's own Python per keep-alive request: a report line."""
    from bench.http_handler_cost import cost
    what = ("%d runs of %d requests" % (runs, COST_REQUESTS) if runs > 1
            else "one run of %d requests" % COST_REQUESTS)
    progress.step("the handler's own Python, %s" % what)
    figures = sorted(cost(COST_REQUESTS) for _ in range(runs))
    median = statistics.median(figures)
    progress.note("%.1f µs per request" % median)
    return ("The handler's own Python (the `stdlib` rows' handler, HTTP/1.1,"
            " over in-memory files: no socket, no syscall): %.1f µs per"
            " request, %s%s." % (
                median, "median of " if runs > 1 else "", what) + (
                " [%.1f–%.1f]" % (figures[0], figures[-1]) if runs > 1
                else ""))


def parser(prog="python -m bench http"):
    ap = argparse.ArgumentParser(prog=prog,
                                 description=__doc__.split("\n\n")[0])
    output.add_arguments(ap, "http",
                         quick="one repeat of 1 s (about 30 s)")
    ap.add_argument("--repeat", type=int,
                    help="rounds over every server (default 5)")
    ap.add_argument("--duration", type=int,
                    help="seconds of each wrk run (default 3)")
    ap.add_argument("--serve", choices=VARIANTS, help=argparse.SUPPRESS)
    ap.add_argument("--protocol", choices=list(PROTOCOLS), default="http11",
                    help=argparse.SUPPRESS)
    return ap


def main(argv=None, prog="python -m bench http"):
    argv = sys.argv[1:] if argv is None else argv
    args = parser(prog).parse_args(argv)
    if args.serve:
        serve(args.serve, args.protocol)
        return 0
    args.repeat = args.repeat or (1 if args.quick else 5)
    args.duration = args.duration or (1 if args.quick else 3)
    output.check_out(args)
    if shutil.which("wrk") is None:
        raise SystemExit("%s: needs wrk, which is not installed (Debian:"
                         " apt-get install wrk)" % prog)
    cost_runs = 1 if args.quick else 3
    runs = args.repeat * len(PROTOCOLS) * len(VARIANTS)
    progress = Progress([args.duration + OVERHEAD] * runs
                        + [cost_runs * COST_REQUESTS * 25e-6])
    table = report(compare(args.repeat, args.duration, progress),
                   args.repeat, args.duration)
    cost_line = handler_cost(cost_runs, progress)
    command = " ".join([prog] + [shlex.quote(a) for a in argv])
    text = "Command: `%s` (%.0f s).\n\n%s\n%s\n" % (
        command, progress.elapsed(), table, cost_line)
    output.tell(output.write_report(text, args), seconds=progress.elapsed())
    return 0


if __name__ == "__main__":
    sys.exit(main(prog="python bench/http_wrk.py"))
