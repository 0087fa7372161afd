"""Soak: a long run per server kind, watching the server's resources.

    python -m bench.probes soak [--requests N] [--kinds KIND ...] [--stdlib]
                                [--stdlib-requests N] [--out PATH|-]
                                [--write] [--dump FILE]

(also ``python -m bench.soak``, with the same options).  About 10 minutes
with the defaults, 16 with ``--stdlib``; the table goes to stdout and to
``--out`` (default build/bench/soak.md).

Not a timed test: it serves many requests (1,000,000 per kind by default)
and watches whether the server grows.  Kinds, each with the user-style
handler of bench/servers.py and 16 clients from the C load generator
(bench/c/loadgen.c, not busy-polling):

threading-conn  ThreadingTCPServer, StreamRequestHandler line echo, a
                connection per request (loadgen linecpr)
persistent      the same server, 16 persistent connections, each asking
                line after line (loadgen line; the connections are new for
                each chunk of load, every few seconds)
udp             ThreadingUDPServer echo, 16 datagrams in flight
prefork         PreforkThreadingTCPServer, 2 workers, line echo, a
                connection per request: the supervisor and each worker are
                watched, and their sum
forking         ForkingTCPServer, line echo, a connection per request.
                Each request forks, so it gets fewer requests:
                --forking-requests (100,000 by default)
http-keepalive  csockserver.http.ThreadingHTTPServer, HTTP/1.1 handler
                answering 200 "ok", 16 keep-alive clients (loadgen http11)

``--stdlib`` runs the same kinds on the standard library (socketserver,
http.server) with ``--stdlib-requests`` (200,000 by default), beside each
csockserver row; the stdlib has no prefork server (n/a).  The HTTP handler
sets the stdlib's own ``disable_nagle_algorithm = True`` on both, as
csockserver.http's servers do for every connection: without it a
keep-alive reply written as headers then body waits for the client's
delayed ACK (40 ms) on http.server.

Each server runs in a process of its own on CPU 0; the load generator and
this script on CPU 1.  Every 0.5 s during the load the script reads
/proc/<pid>/status (VmRSS, Threads) and counts /proc/<pid>/fd, for the
server and, for prefork, each worker; for forking it counts the server's
children and zombies.  The figures:

idle    threads once the server listens, before any request
start   after a warm-up (1 s of load) and 1 s of rest
end     after the load stops and the server rests 1 s
max     over every sample, start and end included

Bounds (a run exits 1, naming the broken one, if any fails):

- errors (client side: failed, timed out, lost) <= 0.1% of the requests;
- RSS end <= RSS start + 10 MiB: a warmed-up server's memory plateaus
  (allocator arenas, the pool's threads and their buffers are made during
  the warm-up), so what is left is at most noise of a few pages;
- RSS growth over the second half of the load (least-squares slope of the
  samples, times that half's duration) <= 2 MiB, which 4 bytes leaked per
  request over 500,000 requests would break; checked only when that half
  has at least 8 samples (4 s), so a short run is judged by the end bound;
- fds end <= fds start: every connection, pipe and pidfd given back;
- threads at rest: csockserver's ThreadingMixIn has no fixed idle size:
  it keeps a finished worker for ``thread_idle_timeout`` (10 s), so its
  pool stays at the size the load made it.  That size follows the
  clients, not the request count: end <= idle + 3 x clients + 1 per pool
  (each client has one request out; the worker that answered its last one
  may still be closing it or be descheduled before it waits again, while
  another takes the next; leader/followers keeps one more waiting.  2 x
  clients + 1 is the most seen).  Then, after ``--retire-wait`` more
  seconds (thread_idle_timeout + 1 by default; 0 skips it), <= idle + 1
  per pool: the pool's idle size, the one worker a crew keeps.  A process
  without request threads (forking server, prefork supervisor): end <=
  idle.  ``--idle-timeout`` sets thread_idle_timeout on csockserver's
  servers (the smoke test uses it to see workers retire sooner);
- forking: no child and no zombie at the end;
- prefork: the same worker pids at the end as at the start (none died).

``--write`` also replaces the "## Soak" section of bench/RESULTS.md with
the table and the command; ``--dump FILE`` writes every sample as JSON.
"""

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time

from . import output, report
from .progress import Progress

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SERVER_CPU, CLIENT_CPU = 0, 1
CLIENTS = 16
SAMPLE_EVERY = 0.5
REST = 1.0
WARMUP = 1.0
CHUNK_MAX = 10.0          # seconds of one loadgen run
LOADGEN_TIMEOUT = 10.0    # a request unanswered this long is an error
MIB = 1024 * 1024

# Bounds (see the module docstring).
RSS_END_SLACK = 10 * MIB
RSS_SLOPE_MAX = 2 * MIB
SLOPE_MIN_SAMPLES = 8
ERRORS_MAX = 0.001

# Requests per second each kind served on this project's machine, for the
# estimates of time left: (kind, module) -> rate.
RATES = {("threading-conn", "csockserver"): 12000,
         ("persistent", "csockserver"): 28000,
         ("udp", "csockserver"): 49000,
         ("prefork", "csockserver"): 9300,
         ("forking", "csockserver"): 490,
         ("http-keepalive", "csockserver"): 14000,
         ("threading-conn", "socketserver"): 3800,
         ("persistent", "socketserver"): 23000,
         ("udp", "socketserver"): 8100,
         ("forking", "socketserver"): 450,
         ("http-keepalive", "socketserver"): 18000}
OVERHEAD = 4.0      # seconds per kind: start, warm-up, rests, stop

KINDS = {
    # kind: (loadgen mode, has request threads)
    "threading-conn": ("linecpr", True),
    "persistent": ("line", True),
    "udp": ("udp", True),
    "prefork": ("linecpr", True),
    "forking": ("linecpr", False),
    "http-keepalive": ("http11", True),
}

SERVER = r"""
import json, os, sys
kind, module, idle_timeout = sys.argv[1], sys.argv[2], sys.argv[3]
if module == "csockserver":
    import csockserver as ss
    import csockserver.http as hs
    engine = "csockserver (%s)" % ss.IMPLEMENTATION
else:
    import socketserver as ss
    import http.server as hs
    engine = "stdlib"

class LineEcho(ss.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(line)

class UDPEcho(ss.BaseRequestHandler):
    def handle(self):
        data, sock = self.request
        sock.sendto(data, self.client_address)

class Ok(hs.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format, *args):
        pass

cls, handler = {
    "threading-conn": (ss.ThreadingTCPServer, LineEcho),
    "persistent": (ss.ThreadingTCPServer, LineEcho),
    "udp": (ss.ThreadingUDPServer, UDPEcho),
    "prefork": (getattr(ss, "PreforkThreadingTCPServer", None), LineEcho),
    "forking": (ss.ForkingTCPServer, LineEcho),
    "http-keepalive": (hs.ThreadingHTTPServer, Ok),
}[kind]

class Server(cls):
    request_queue_size = 1024   # 16 clients connecting at once
    processes = 2               # prefork only
    if idle_timeout != "default":   # csockserver's pool only
        thread_idle_timeout = float(idle_timeout)

server = Server(("127.0.0.1", 0), handler)
print(json.dumps({"port": server.server_address[1], "pid": os.getpid(),
                  "engine": engine}), flush=True)
server.serve_forever()
"""


# --------------------------------------------------------------------------
# /proc

def proc_stat(pid):
    """(state, ppid) of a process, or None once it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return fields[0], int(fields[1])


def children_of(pid):
    """{child pid: state} of every process whose parent is *pid*."""
    found = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            stat = proc_stat(int(name))
            if stat and stat[1] == pid:
                found[int(name)] = stat[0]
    return found


def usage(pid):
    """{"rss": bytes, "threads": n, "fds": n} of a live process, or None."""
    try:
        with open("/proc/%d/status" % pid) as f:
            status = f.read()
        fds = len(os.listdir("/proc/%d/fd" % pid))
    except (FileNotFoundError, ProcessLookupError):
        return None
    out = {"fds": fds}
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key == "VmRSS":
            out["rss"] = int(value.split()[0]) * 1024
        elif key == "Threads":
            out["threads"] = int(value)
        elif key == "State" and value.split()[0] == "Z":
            return None
    return out if "rss" in out else None


class Watched:
    """The processes of one server: the server and, for prefork, each
    worker (named once, at the start)."""

    def __init__(self, pid, kind):
        self.pid = pid
        self.kind = kind
        self.names = {pid: "supervisor" if kind == "prefork" else "server"}

    def name_workers(self):
        workers = sorted(p for p, state in children_of(self.pid).items()
                         if state != "Z")
        for i, pid in enumerate(workers, 1):
            self.names[pid] = "worker %d" % i
        return workers

    def snapshot(self):
        """One sample: per process usage, the sum, and children."""
        sample = {"t": time.monotonic(), "procs": {}}
        kids = children_of(self.pid)
        for pid, name in self.names.items():
            u = usage(pid)
            if u is not None:
                sample["procs"][name] = u
        if self.kind == "prefork":
            sample["procs"]["sum"] = {
                key: sum(u[key] for name, u in sample["procs"].items()
                         if name != "sum")
                for key in ("rss", "fds", "threads")}
            sample["workers"] = sorted(p for p, s in kids.items()
                                       if s != "Z")
        sample["children"] = sum(1 for s in kids.values() if s != "Z")
        sample["zombies"] = sum(1 for s in kids.values() if s == "Z")
        return sample


class Sampler(threading.Thread):
    """Snapshots every SAMPLE_EVERY seconds until stopped."""

    def __init__(self, watched):
        super().__init__(daemon=True)
        self.watched = watched
        self.samples = []
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            self.samples.append(self.watched.snapshot())
            self.stopping.wait(SAMPLE_EVERY)

    def stop(self):
        self.stopping.set()
        self.join()


# --------------------------------------------------------------------------
# Running one server

def pin(cpu):
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        return lambda: os.sched_setaffinity(0, {cpu})
    return None


def start_server(kind, module, idle_timeout, log):
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-W", "ignore", "-c", SERVER, kind, module,
         "default" if idle_timeout is None else str(idle_timeout)],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=log, text=True, start_new_session=True,
        preexec_fn=pin(SERVER_CPU))
    line = proc.stdout.readline()
    if not line:
        proc.wait()
        log.seek(0)
        raise RuntimeError("the %s server did not start:\n%s"
                           % (kind, log.read()[-2000:]))
    return proc, json.loads(line)


def stop_server(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    proc.stdout.close()


def loadgen(tool, mode, port, seconds):
    """One run of the load generator: its JSON result."""
    cmd = [tool, "--mode", mode, "--host", "127.0.0.1", "--port", str(port),
           "--conns", str(CLIENTS), "--inflight", str(CLIENTS),
           "--size", "64", "--duration", "%.3f" % seconds, "--warmup", "0",
           "--timeout", str(LOADGEN_TIMEOUT), "--busy-poll", "0"]
    run = subprocess.run(cmd, capture_output=True, text=True,
                         preexec_fn=pin(CLIENT_CPU),
                         timeout=seconds + LOADGEN_TIMEOUT + 30)
    if run.returncode != 0:
        raise RuntimeError("loadgen failed (%d): %s" % (run.returncode,
                                                         run.stderr[-2000:]))
    return json.loads(run.stdout)


def errors_of(result):
    return result["errors"] + result["timeouts"] + result["lost"]


def soak_one(kind, module, requests, tool, idle_timeout, retire_wait,
             progress):
    """Serve *requests* requests on one server; its figures and samples."""
    mode, threaded = KINDS[kind]
    with tempfile.TemporaryFile("w+") as log:
        proc, hello = start_server(kind, module, idle_timeout, log)
        try:
            watched = Watched(hello["pid"], kind)
            time.sleep(0.5)
            if kind == "prefork":
                deadline = time.monotonic() + 5
                while (len(watched.name_workers()) < 2
                       and time.monotonic() < deadline):
                    time.sleep(0.1)
            idle = watched.snapshot()
            warm = loadgen(tool, mode, hello["port"], WARMUP)
            time.sleep(REST)
            start = watched.snapshot()

            sampler = Sampler(watched)
            sampler.start()
            done = errors = 0
            rate = warm["requests"] / warm["seconds"] or None
            load_start = time.monotonic()
            while done < requests:
                # The warm-up's rate is a cold pool's: trust it for 1 s.
                limit = CHUNK_MAX if done else 1.0
                seconds = limit if rate is None else min(
                    max((requests - done) / rate * 1.02, 0.2), limit)
                result = loadgen(tool, mode, hello["port"], seconds)
                done += result["requests"]
                errors += errors_of(result)
                if result["requests"] == 0:
                    break       # the server answers nothing: stop here
                rate = result["requests"] / result["seconds"]
                progress("%s %s: %d/%d requests, %.0f req/s" % (
                    kind, hello["engine"], done, requests, rate),
                    min(done / requests, 1.0))
            load_end = time.monotonic()
            sampler.stop()
            time.sleep(REST)
            end = watched.snapshot()
            retired = None
            if (threaded and retire_wait > 0
                    and any(end["procs"][name]["threads"]
                            > idle["procs"][name]["threads"] + 1
                            for name in watched.names.values()
                            if name in end["procs"]
                            and name in idle["procs"])):
                progress("%s %s: waiting %.0f s for idle threads to"
                         " retire" % (kind, hello["engine"], retire_wait))
                time.sleep(retire_wait)
                retired = watched.snapshot()
        finally:
            stop_server(proc)
    return {"kind": kind, "engine": hello["engine"], "module": module,
            "target": requests, "requests": done, "errors": errors,
            "seconds": load_end - load_start, "load_start": load_start,
            "load_end": load_end, "idle": idle, "start": start, "end": end,
            "retired": retired, "samples": sampler.samples,
            "names": list(watched.names.values())}


# --------------------------------------------------------------------------
# Judging

def second_half_growth(run, name):
    """Bytes of RSS growth over the second half of the load, from a
    least-squares line through that half's samples; None if too few."""
    mid = (run["load_start"] + run["load_end"]) / 2
    points = [(s["t"], s["procs"][name]["rss"]) for s in run["samples"]
              if s["t"] >= mid and name in s["procs"]]
    if len(points) < SLOPE_MIN_SAMPLES:
        return None
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mr = sum(r for _, r in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    if var == 0:
        return None
    slope = sum((t - mt) * (r - mr) for t, r in points) / var
    return slope * (run["load_end"] - mid)


def judge(run, name, threaded, clients=CLIENTS):
    """Figures of one process (or the prefork sum) and broken bounds."""
    def series(key):
        values = [s["procs"][name][key]
                  for s in [run["start"], *run["samples"], run["end"]]
                  if name in s["procs"]]
        return values

    row = {"name": name, "broken": [], "notes": []}
    for key in ("rss", "fds", "threads"):
        values = series(key)
        row[key] = (run["start"]["procs"].get(name, {}).get(key),
                    run["end"]["procs"].get(name, {}).get(key),
                    max(values) if values else None)
    broken = row["broken"]
    if name not in run["end"]["procs"]:
        broken.append("process gone")
        return row
    rss_start, rss_end, _ = row["rss"]
    if rss_end > rss_start + RSS_END_SLACK:
        broken.append("RSS end %.1f MiB > start %.1f + 10 MiB"
                      % (rss_end / MIB, rss_start / MIB))
    growth = second_half_growth(run, name)
    row["growth"] = growth
    if growth is not None and growth > RSS_SLOPE_MAX:
        broken.append("RSS grew %.1f MiB over the second half (> 2 MiB)"
                      % (growth / MIB))
    if row["fds"][1] > row["fds"][0]:
        broken.append("fds end %d > start %d" % (row["fds"][1],
                                                     row["fds"][0]))
    idle = run["idle"]["procs"].get(name, {}).get("threads")
    if name == "sum":
        idle = sum(u["threads"] for n, u in run["idle"]["procs"].items()
                   if n != "sum")
    row["threads_idle"] = idle
    workers = 2 if name == "sum" else 1     # pools in a prefork sum
    has_pool = threaded and name not in ("supervisor",)
    at_rest = idle + (workers * (3 * clients + 1) if has_pool else 0)
    if row["threads"][1] > at_rest:
        broken.append("threads at rest %d > %d (idle %d%s)" % (
            row["threads"][1], at_rest, idle,
            " + (3 × %d clients + 1) × %d" % (clients, workers)
            if has_pool else ""))
    retired = run["retired"]
    if retired is not None and name in retired["procs"]:
        left = retired["procs"][name]["threads"]
        row["notes"].append("threads %d after %.0f s more" % (
            left, retired["t"] - run["end"]["t"]))
        if has_pool and left > idle + workers:
            broken.append("threads %d after the idle timeout > idle %d + %d"
                          % (left, idle, workers))
    if name in ("server", "sum"):
        total = run["requests"]
        if total < run["target"]:
            broken.append("only %d of %d requests answered"
                          % (total, run["target"]))
        if run["errors"] > ERRORS_MAX * max(total, 1):
            broken.append("%d errors > 0.1%% of %d requests"
                          % (run["errors"], total))
    if run["kind"] == "forking" and name == "server":
        kids = max(s["children"] for s in run["samples"] + [run["end"]])
        row["notes"].append("children max %d, end %d; zombies end %d" % (
            kids, run["end"]["children"], run["end"]["zombies"]))
        if run["end"]["children"] or run["end"]["zombies"]:
            broken.append("%d children, %d zombies at the end" % (
                run["end"]["children"], run["end"]["zombies"]))
    if run["kind"] == "prefork" and name == "sum":
        if run["end"].get("workers") != run["start"].get("workers"):
            broken.append("workers changed: %s -> %s" % (
                run["start"].get("workers"), run["end"].get("workers")))
    return row


def rows_of(run):
    """Table rows of one run: the server, or the prefork sum and each."""
    threaded = KINDS[run["kind"]][1]
    if run["kind"] == "prefork":
        names = ["sum"] + run["names"]
    else:
        names = ["server"]
    return [judge(run, name, threaded) for name in names]


# --------------------------------------------------------------------------
# The table

HEADER = ("| kind | engine | requests | errors | req/s | RSS MiB start / end"
          " / max | fds start / end / max | threads idle: start / end / max"
          " | verdict |")
RULE = "|---|---|---|---|---|---|---|---|---|"


def table_lines(results):
    lines = [HEADER, RULE]
    for run in results:
        if run.get("na"):
            lines.append("| %s | %s | – | – | – | – | – | – | n/a: %s |" % (
                run["kind"], run["engine"], run["na"]))
            continue
        for row in rows_of(run):
            kind = run["kind"]
            if row["name"] not in ("server",):
                kind += " " + row["name"]
            first = row["name"] in ("server", "sum")
            verdict = ("FAIL: " + "; ".join(row["broken"]) if row["broken"]
                       else "ok")
            if row["notes"]:
                verdict += " (%s)" % "; ".join(row["notes"])
            rss, fds, thr = row["rss"], row["fds"], row["threads"]
            lines.append(
                "| %s | %s | %s | %s | %s | %.1f / %.1f / %.1f | %d / %d / %d"
                " | %d: %d / %d / %d | %s |" % (
                    kind, run["engine"],
                    "{:,}".format(run["requests"]) if first else "",
                    run["errors"] if first else "",
                    "%.0f" % (run["requests"] / run["seconds"])
                    if first else "",
                    rss[0] / MIB, rss[1] / MIB, rss[2] / MIB,
                    fds[0], fds[1], fds[2],
                    row["threads_idle"], thr[0], thr[1], thr[2], verdict))
    return lines


BOUNDS = (
    'Bounds: errors <= 0.1% of requests; RSS end <= start + 10 MiB; RSS '
    'growth over the second half of the load (least-squares slope × that '
    "half's duration, when it has >= 8 samples) <= 2 MiB; fds end <= start;"
    ' threads at rest <= idle + 3 × 16 clients + 1 per pool (csockserver '
    'keeps finished workers for thread_idle_timeout, 10 s: its pool stays '
    'as large as the load made it), and <= idle + 1 per pool once that '
    'timeout has passed ("after N s more"); no thread growth in a process '
    'without request threads; forking: no child and no zombie at the end; '
    'prefork: no worker replaced. Start: after 1 s of warm-up load and 1 s '
    'of rest; end: 1 s after the load; max: over all samples (every 0.5 s).'
)


def write_section(path, command, lines, elapsed):
    body = ["## Soak", "",
            "Command: `%s` (%.0f s, %s UTC). Python %s; server on CPU 0, "
            "clients (bench/c/loadgen, 16 at a time, not busy-polling) on "
            "CPU 1; see bench/soak.py for the kinds." % (
                command, elapsed, time.strftime("%Y-%m-%d %H:%M",
                                                time.gmtime()),
                sys.version.split()[0]), "",
            BOUNDS, "", *lines, ""]
    report.replace_section(path, "## Soak", "\n".join(body))


# --------------------------------------------------------------------------

def parser(prog="python -m bench.probes soak"):
    ap = argparse.ArgumentParser(prog=prog,
                                 description=__doc__.splitlines()[0])
    output.add_arguments(ap, "soak")
    ap.add_argument("--requests", type=int, default=1000000,
                    help="requests per kind (default 1,000,000)")
    ap.add_argument("--forking-requests", type=int, default=100000,
                    help="at most this many for forking (default"
                         " 100,000: each request forks)")
    ap.add_argument("--kinds", nargs="+", choices=list(KINDS),
                    default=list(KINDS))
    ap.add_argument("--stdlib", action="store_true",
                    help="also run each kind on the standard library")
    ap.add_argument("--stdlib-requests", type=int, default=200000)
    ap.add_argument("--idle-timeout", type=float,
                    help="thread_idle_timeout of csockserver's servers"
                         " (default: the class's, 10 s)")
    ap.add_argument("--retire-wait", type=float, default=None,
                    help="seconds to wait for idle threads to retire"
                         " (default thread_idle_timeout + 1; 0: skip)")
    ap.add_argument("--write", action="store_true",
                    help="also replace the Soak section of"
                         " bench/RESULTS.md")
    ap.add_argument("--dump", metavar="FILE",
                    help="write every sample to FILE as JSON")
    return ap


def expected_seconds(kind, module, requests, retire_wait):
    """How long one kind should take, for the estimates of time left."""
    load = requests / RATES.get((kind, module), 10000)
    threaded = KINDS[kind][1] and module == "csockserver"
    return load, load + OVERHEAD + (retire_wait if threaded else 0)


def main(argv=None, prog="python -m bench.probes soak"):
    argv = sys.argv[1:] if argv is None else argv
    args = parser(prog).parse_args(argv)
    if not sys.platform.startswith("linux"):
        raise SystemExit("%s reads /proc: Linux only" % prog)
    output.check_out(args)
    retire_wait = args.retire_wait
    if retire_wait is None:
        import csockserver
        retire_wait = 1 + (
            csockserver.ThreadingMixIn.thread_idle_timeout
            if args.idle_timeout is None else args.idle_timeout)
    if (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {CLIENT_CPU})

    from .build import build_tools
    tool = build_tools()["loadgen"]

    plan = []
    for kind in args.kinds:
        plan.append((kind, "csockserver", args.requests))
        if args.stdlib:
            plan.append((kind, "socketserver", args.stdlib_requests))
    plan = [(kind, module, min(requests, args.forking_requests)
             if kind == "forking" else requests)
            for kind, module, requests in plan
            if not (kind == "prefork" and module == "socketserver")]
    estimates = [expected_seconds(kind, module, requests, retire_wait)
                 for kind, module, requests in plan]
    progress = Progress([total for _, total in estimates])
    results = []
    for (kind, module, requests), (load, total) in zip(plan, estimates):
        progress.step("%s on %s: %d requests" % (kind, module, requests))

        def note(text, done=None):
            # The load is the step's bulk: what is left of it, and the rest.
            progress.note(text, None if done is None else
                          (total - load * (1 - done)) / total)
        run = soak_one(kind, module, requests, tool, args.idle_timeout,
                       retire_wait, note)
        results.append(run)
        for row in rows_of(run):
            for broken in row["broken"]:
                progress.note("FAIL %s %s %s: %s" % (kind, run["engine"],
                                                     row["name"], broken))
    if args.stdlib and "prefork" in args.kinds:
        at = next(i for i, run in enumerate(results)
                  if run["kind"] == "prefork") + 1
        results.insert(at, {"kind": "prefork", "engine": "stdlib",
                            "na": "socketserver has no prefork server"})
    elapsed = progress.elapsed()

    lines = table_lines(results)
    failed = [(run, row) for run in results if not run.get("na")
              for row in rows_of(run) if row["broken"]]
    verdict = ["FAIL: %s on %s (%s): %s" % (
        run["kind"], run["engine"], row["name"], "; ".join(row["broken"]))
        for run, row in failed]
    verdict.append("%s in %.0f s" % ("FAILED" if failed
                                     else "all bounds held", elapsed))
    command = " ".join([prog] + [shlex.quote(a) for a in argv])
    text = "\n".join(["Command: `%s`." % command, "", *lines, "", BOUNDS,
                      "", *verdict])
    written = output.write_report(text, args)
    if args.write:
        write_section(os.path.join(HERE, "RESULTS.md"), command, lines,
                      elapsed)
    if args.dump:
        with open(args.dump, "w") as f:
            json.dump(results, f)
    output.tell(written, seconds=elapsed)
    if args.write:
        print("soak section: %s" % output.shown(
            os.path.join(HERE, "RESULTS.md")), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(prog="python -m bench.soak"))
