"""HTTP servers under wrk: http.server, SimpleXMLRPCServer and wsgiref, the
standard library's beside csockserver's, and waitress and cheroot.

    python -m bench http [--quick] [--only WORKLOADS] [--repeat 5]
                         [--duration 3] [--out PATH|-]

(also ``python bench/http_wrk.py``, with the same options).  About 9
minutes with the defaults, 1 min with ``--quick`` (one repeat of 1 s);
the report goes to stdout and to ``--out`` (default
build/bench/http.md).  After the servers it measures what the http.server
handler's own Python costs per keep-alive request
(bench/http_handler_cost.py), median of 3 runs.

Needs ``wrk`` (Debian package ``wrk``); the waitress and cheroot rows need
those packages (``pip install -e '.[bench]'``), and are skipped, with a
note in the report, where they are not installed.

Workloads (bench/http_servers.py serves them, one process per run):

- ``http11``, ``http10``: an http.server handler as users write it
  (``do_GET`` sends 200 with a 2-byte body, ``log_message`` silenced) on
  eight servers: the stdlib's ThreadingHTTPServer with Nagle on and with
  ``disable_nagle_algorithm = True``; the same code after
  ``csockserver.install()``; csockserver.http, with its handler and with
  http.server's; and the handler on a plain ThreadingTCPServer, the
  stdlib's and csockserver's on each engine (what ``import csockserver as
  socketserver`` gives: Nagle on, the stdlib's files).  ``http11`` sets
  ``protocol_version = "HTTP/1.1"`` and wrk keeps its connections alive;
  ``http10`` keeps the default (HTTP/1.0: the server closes each
  connection) and wrk sends ``Connection: close``.
- ``xmlrpc``: SimpleXMLRPCServer, one ``add(2, 3)`` call per request (wrk
  POSTs the call's XML as xmlrpc.client does; the server answers HTTP/1.0
  and closes), the stdlib's and after ``install()``.
- ``wsgi``: a hello-world WSGI application on wsgiref's WSGIServer and
  WSGIRequestHandler (the stdlib's, and after ``install()``), on waitress
  and on cheroot (their default thread pools); wrk sends ``Connection:
  close``, since wsgiref serves one request per connection.

wrk runs ``-t1 -c8`` pinned to CPU 1, each server process to CPU 0.  Every
run starts a server, checks one request's answer, warms it up with a 1 s
wrk run, then measures: wrk's requests, its latency percentiles (p50, p99
and p99.9, from a Lua ``done()``), its errors (replies above 399 among
them), and the server's CPU time (user and system of all its threads and
reaped children, from /proc) over that run.  Each repeat runs every row of a
workload once, alternating (each repeat starting one row further on), and
the figures are medians over the repeats.  The report opens with the
goals, judged from the figures.
"""

import argparse
import http.client
import importlib.util
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import xmlrpc.client
from collections import namedtuple

if __package__ in (None, ""):   # run as a script: make ``bench`` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))

from bench import measure, output, wrk
from bench.http_servers import (BACKLOG, HELLO, HTTP_ROWS, OPTIONAL,
                                STANDIN, WSGI_ROWS, XMLRPC_ROWS, engine_of)
from bench.progress import Progress, duration_text
from bench.workloads import Server

SERVER_CPU, CLIENT_CPU = "0", "1"
WARMUP = 1                # seconds of wrk before each measured run
# Seconds a run takes beyond its two wrk runs: the server's start, the
# check of its answer, and its stop.
OVERHEAD = 0.8
COST_REQUESTS = 20000     # per run of the handler's cost

# request: what wrk sends (bench.wrk.run's method, body, headers);
# check: what the one request before the runs must get back.
Workload = namedtuple("Workload", "name title rows baseline request check")

CLOSE = {"headers": [("Connection", "close")]}
XMLRPC_CALL = xmlrpc.client.dumps((2, 3), "add")
WORKLOADS = [
    Workload("http11", "http.server handler, HTTP/1.1 keep-alive",
             list(HTTP_ROWS), "stdlib", {}, b"ok"),
    Workload("http10", "http.server handler, HTTP/1.0, a connection per"
             " request", list(HTTP_ROWS), "stdlib", CLOSE, b"ok"),
    Workload("xmlrpc", "SimpleXMLRPCServer, one add(2, 3) call per request",
             list(XMLRPC_ROWS), "stdlib",
             {"method": "POST", "body": XMLRPC_CALL,
              "headers": [("Content-Type", "text/xml")]}, 5),
    Workload("wsgi", "WSGI hello world, a connection per request",
             list(WSGI_ROWS), "wsgiref", CLOSE, HELLO),
]
BY_NAME = {w.name: w for w in WORKLOADS}

# What the report checks, each from one workload's rows: (the goal in
# words, workload, row, baseline, judged on, threshold).  Judged on "cpu":
# the baseline's CPU per request over the row's, at least the threshold;
# "both": that and req/s over the baseline's; "p99": the row's p99 over
# the baseline's, at most the threshold; None: reported, no goal.
PLAIN = ("`import csockserver as socketserver` under http.server's handler"
         " (Nagle on), %s engine, %s: p99 within 1.5× the stdlib's")
GOALS = [
    ("http.server after `install()`, HTTP/1.1 keep-alive: 1.6× less server"
     " CPU per request than the stdlib with TCP_NODELAY",
     "http11", STANDIN, "stdlib nodelay", "cpu", 1.6),
    ("http.server after `install()`, HTTP/1.0: 3× less server CPU per"
     " request than the stdlib",
     "http10", STANDIN, "stdlib", "cpu", 3.0),
    ("wsgiref after `install()` beside waitress: at least its req/s, at no"
     " more server CPU per request",
     "wsgi", "wsgiref via install()", "waitress", "both", 1.0),
    ("wsgiref after `install()` beside cheroot (no goal)",
     "wsgi", "wsgiref via install()", "cheroot", None, None),
] + [(PLAIN % (engine, protocol), workload, row, "stdlib TCPServer", "p99",
      1.5)
     for workload, protocol in (("http11", "HTTP/1.1"), ("http10",
                                                         "HTTP/1.0"))
     for engine, row in (("compiled", "csock-c TCPServer"),
                         ("pure-Python", "csock-py TCPServer"))]


# -- one run ------------------------------------------------------------------

def check_answer(workload, address):
    """One request, before wrk: the server answers it as it should."""
    if workload.name == "xmlrpc":
        proxy = xmlrpc.client.ServerProxy("http://%s:%d/" % tuple(address))
        with proxy:
            got = proxy.add(2, 3)
    else:
        conn = http.client.HTTPConnection(*address, timeout=10)
        try:
            conn.request("GET", "/")
            reply = conn.getresponse()
            got = reply.read() if reply.status == 200 else reply.status
        finally:
            conn.close()
    if got != workload.check:
        raise RuntimeError("answered %r instead of %r" % (got,
                                                          workload.check))


def run_one(workload, row, duration):
    """Start *row*'s server, run wrk against it: (wrk.Run, server CPU µs
    per request)."""
    engine = engine_of(workload.name, row)
    env = measure._server_env(Server(row, "csock" if engine else "stdlib",
                                     "threading", engine or ""))
    argv = [sys.executable, "-m", "bench.http_servers", workload.name, row]
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(measure._pinned(argv, SERVER_CPU, True),
                                env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=errors,
                                cwd=measure.ROOT)
        try:
            hello = measure._read_ready_line(proc)
            if hello["engine"] != engine:
                raise RuntimeError("ran on engine %s instead of %s" % (
                    hello["engine"], engine))
            address = hello["address"]
            check_answer(workload, address)
            wrk.run(address, WARMUP, CLIENT_CPU, **workload.request)
            # taskset execs the server: proc.pid is the server's.
            before = measure._cpu_seconds(proc.pid)
            result = wrk.run(address, duration, CLIENT_CPU,
                             **workload.request)
            time.sleep(0.1)     # the last connections' close
            cpu = measure._cpu_seconds(proc.pid) - before
        except (RuntimeError, OSError, ValueError, KeyError,
                subprocess.SubprocessError, xmlrpc.client.Error) as exc:
            measure._stop(proc)
            errors.seek(0)
            tail = errors.read().decode(errors="replace").strip()[-400:]
            raise RuntimeError("%s%s" % (exc, "; its stderr: " + tail
                                         if tail else "")) from exc
        measure._stop(proc)
    if not result["requests"]:
        raise RuntimeError("no request answered")
    return result, cpu / result["requests"] * 1e6, hello


# -- the runs -----------------------------------------------------------------

def missing_packages():
    """The optional rows' packages this interpreter cannot import."""
    return sorted(package for package in set(OPTIONAL.values())
                  if importlib.util.find_spec(package) is None)


def runnable(workload, missing):
    return [row for row in workload.rows if OPTIONAL.get(row) not in missing]


def compare(workloads, repeat, duration, missing, progress):
    """{(workload, row): [per run: dict, or a failure's text]}, and what
    the servers said of themselves."""
    results = {(w.name, row): [] for w in workloads for row in w.rows}
    hellos = {}
    for round_ in range(repeat):
        for workload in workloads:
            rows = runnable(workload, missing)
            # Each round starts one row further on, so that no row always
            # follows the same one.
            shift = round_ % len(rows)
            for row in rows[shift:] + rows[:shift]:
                progress.step("%s, %s (repeat %d of %d)" % (
                    workload.name, row, round_ + 1, repeat))
                try:
                    run, cpu, hellos[workload.name, row] = run_one(
                        workload, row, duration)
                except RuntimeError as exc:
                    results[workload.name, row].append("failed: %s" % exc)
                    progress.note("failed: %s" % exc)
                    continue
                results[workload.name, row].append({
                    "rps": run.rps, "p50": run.ms("p50_us"),
                    "p99": run.ms("p99_us"), "p999": run.ms("p999_us"),
                    "cpu": cpu, "errors": run.error_count,
                    "error_text": run.errors})
                progress.note("%.0f req/s  p99 %.2f ms  p99.9 %.2f ms  %.1f"
                              " µs CPU/req%s" % (
                                  run.rps, run.ms("p99_us"),
                                  run.ms("p999_us"), cpu,
                                  "  errors: " + run.errors if run.errors
                                  else ""))
    return results, hellos


def summary(runs):
    """Medians over a row's runs (None when none was measured)."""
    measured = [r for r in runs if isinstance(r, dict)]
    if not measured:
        return None
    rps = [r["rps"] for r in measured]
    figures = {key: statistics.median(r[key] for r in measured)
               for key in ("rps", "p50", "p99", "p999", "cpu")}
    figures.update(min=min(rps), max=max(rps),
                   errors=sum(r["errors"] for r in measured),
                   failed=len(runs) - len(measured))
    return figures


# -- the report ---------------------------------------------------------------

def _ratio(value):
    return "%.2f×" % value if value else "–"


def _both(row, base, key):
    """The two rows' figures for *key*, "row / baseline", or "–"."""
    if not row or not base:
        return "–"
    return "%.2f / %.2f" % (row[key], base[key])


def ratios(row, base):
    """(req/s over the baseline's, the baseline's CPU/req over the row's,
    the row's p99 over the baseline's); None where unknown."""
    if not row or not base:
        return None, None, None
    return (row["rps"] / base["rps"] if base["rps"] else None,
            base["cpu"] / row["cpu"] if row["cpu"] else None,
            row["p99"] / base["p99"] if base["p99"] else None)


def goals_table(workloads, figures, missing):
    names = [w.name for w in workloads]
    lines = []
    for statement, workload, row, baseline, judged, goal in GOALS:
        if workload not in names:
            continue
        mine = figures.get((workload, row))
        theirs = figures.get((workload, baseline))
        rps, cpu, p99 = ratios(mine, theirs)
        absent = [OPTIONAL[r] for r in (row, baseline)
                  if OPTIONAL.get(r) in missing]
        if absent:
            verdict = "not measured: %s is not installed" % absent[0]
        elif rps is None or cpu is None or p99 is None:
            verdict = "not measured"
        elif judged is None:
            verdict = "no goal"
        elif judged == "cpu":
            verdict = "met" if cpu >= goal else "missed"
        elif judged == "both":
            verdict = "met" if cpu >= goal and rps >= goal else "missed"
        else:
            verdict = "met" if p99 <= goal else "missed"
        lines.append("| %s | `%s`: %s vs %s | %s | %s | %s | %s | %s | %s |"
                     % (statement, workload, row, baseline, _ratio(cpu),
                        _ratio(rps), _ratio(p99),
                        _both(mine, theirs, "p99"),
                        _both(mine, theirs, "p999"), verdict))
    if not lines:
        return []
    return ["## Goals", "",
            "What csockserver set out to reach, judged from the tables"
            " below. Less CPU/req: the second row's server CPU per request"
            " over the first's (above 1: the first row costs less);"
            " req/s and p99: the first row's over the second's; p99 ms and"
            " p99.9 ms: the first row's, then the second's.", "",
            "| goal | rows compared | less CPU/req | req/s | p99 | p99 ms"
            " | p99.9 ms | |",
            "|---|---|---:|---:|---:|---:|---:|---|"] + lines + [""]


def table(workload, figures, results, missing):
    base = figures.get((workload.name, workload.baseline))
    lines = ["| server | req/s: median [min–max] | p50 ms | p99 ms"
             " | p99.9 ms | CPU µs/req | req/s ÷ %s's | %s's CPU/req ÷"
             " row's | errors |" % (workload.baseline, workload.baseline),
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in workload.rows:
        if OPTIONAL.get(row) in missing:
            continue
        mine = figures.get((workload.name, row))
        if mine is None:
            failures = results[workload.name, row]
            lines.append("| %s | %s | | | | | | | |" % (
                row, failures[0] if failures else "not run"))
            continue
        rps, cpu, _ = ratios(mine, base)
        errors = "%d" % mine["errors"]
        if mine["failed"]:
            errors += " (%d runs failed)" % mine["failed"]
        lines.append(
            "| %s | %.0f [%.0f–%.0f] | %.2f | %.2f | %.2f | %.1f | %s | %s"
            " | %s |" % (row, mine["rps"], mine["min"], mine["max"],
                         mine["p50"], mine["p99"], mine["p999"], mine["cpu"],
                         _ratio(rps), _ratio(cpu), errors))
    return lines


def pools(hellos):
    """' (waitress: 4 threads; cheroot: 10 threads)', from what they said
    of themselves."""
    said = ["%s: %d threads" % (row, hellos["wsgi", row]["threads"])
            for row in ("waitress", "cheroot") if ("wsgi", row) in hellos]
    return " (%s)" % "; ".join(said) if said else ""


def notes(workload, hellos, missing, first_http):
    """The paragraph under a workload's table (*first_http*: this is the
    first table of http.server rows)."""
    if workload.name in ("http11", "http10"):
        text = ["Rows: " + "; ".join("`%s`: %s" % item
                                     for item in HTTP_ROWS.items()) + "."
                if first_http else "Rows as in the table above."]
        if workload.name == "http11":
            text.append("With Nagle on, each keep-alive reply's body waits"
                        " for the client's delayed ACK of its headers (40 ms"
                        " on Linux): those rows cannot pass 200 req/s over"
                        " 8 connections, whatever the server.")
        return text
    if workload.name == "xmlrpc":
        return ["Rows: the stdlib's SimpleXMLRPCServer (`logRequests="
                "False`), and the same code after `csockserver.install()`."]
    text = ["Rows: wsgiref's WSGIServer and WSGIRequestHandler"
            " (`log_message` silenced), the stdlib's and after"
            " `csockserver.install()`, and the same application on"
            " waitress and on cheroot with their default thread pools%s."
            % pools(hellos)]
    if missing:
        text.append("Not measured: %s, not installed here (`pip install -e"
                    " '.[bench]'` installs %s)." % (
                        " and ".join(missing),
                        "them" if len(missing) > 1 else "it"))
    return text


def report(workloads, results, hellos, missing, repeat, duration):
    figures = {key: summary(runs) for key, runs in results.items()}
    lines = goals_table(workloads, figures, missing)
    http_tables = [w.name for w in workloads if w.name in ("http11",
                                                           "http10")]
    for workload in workloads:
        lines += ["## %s (`%s`)" % (workload.title, workload.name), ""]
        lines += table(workload, figures, results, missing)
        lines += [""] + notes(workload, hellos, missing,
                              http_tables[:1] == [workload.name]) + [""]
    lines.append(
        "%s of %g s each: wrk -t1 -c8 pinned to CPU %s, each server on CPU %s"
        " with a listen backlog of %d. CPU µs/req: the server process's"
        " user and system time (all its threads, reaped children) over the"
        " run, per request wrk completed; /proc counts it in ticks of %g"
        " ms, so the rows Nagle's algorithm holds near 200 req/s, a few"
        " ticks a run, have a coarse CPU/req. Latency as wrk measures it,"
        " from a request's first byte sent to its reply's last byte read."
        % ("Medians of %d repeats" % repeat if repeat > 1 else "One run",
           duration, CLIENT_CPU, SERVER_CPU, BACKLOG,
           1e3 / os.sysconf("SC_CLK_TCK")))
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
                         quick="one repeat of 1 s (about 1 min)")
    ap.add_argument("--only", metavar="WORKLOADS",
                    help="comma-separated workloads to run, of %s (default:"
                         " all)" % ", ".join(BY_NAME))
    ap.add_argument("--repeat", type=int,
                    help="rounds over every row (default 5)")
    ap.add_argument("--duration", type=int,
                    help="seconds of each measured wrk run (default 3)")
    return ap


def chosen_workloads(only, prog):
    if not only:
        return WORKLOADS
    names = [name.strip() for name in only.split(",") if name.strip()]
    unknown = [name for name in names if name not in BY_NAME]
    if unknown:
        raise SystemExit("%s: no workload %s; choose among %s" % (
            prog, ", ".join(unknown), ", ".join(BY_NAME)))
    return [w for w in WORKLOADS if w.name in names]


def main(argv=None, prog="python -m bench http"):
    argv = sys.argv[1:] if argv is None else argv
    args = parser(prog).parse_args(argv)
    args.repeat = args.repeat or (1 if args.quick else 5)
    args.duration = args.duration or (1 if args.quick else 3)
    workloads = chosen_workloads(args.only, prog)
    output.check_out(args)
    if shutil.which("wrk") is None:
        raise SystemExit("%s: needs wrk, which is not installed (Debian:"
                         " apt-get install wrk)" % prog)
    missing = missing_packages()
    cost_runs = 1 if args.quick else 3
    runs = args.repeat * sum(len(runnable(w, missing)) for w in workloads)
    each = args.duration + WARMUP + OVERHEAD
    progress = Progress([each] * runs + [cost_runs * COST_REQUESTS * 25e-6])
    print("%s: %d runs of %d s and a %d s warm-up each: about %s in all%s"
          % (prog, runs, args.duration, WARMUP,
             duration_text(sum(progress.expected)),
             "; not installed, so not run: %s" % ", ".join(missing)
             if missing else ""), file=sys.stderr, flush=True)
    results, hellos = compare(workloads, args.repeat, args.duration,
                              missing, progress)
    text = report(workloads, results, hellos, missing, args.repeat,
                  args.duration)
    cost_line = handler_cost(cost_runs, progress)
    command = " ".join([prog] + [shlex.quote(a) for a in argv])
    text = "Command: `%s` (%s).\n\n%s\n%s\n" % (
        command, duration_text(progress.elapsed()), text, cost_line)
    output.tell(output.write_report(text, args), seconds=progress.elapsed())
    return 0


if __name__ == "__main__":
    sys.exit(main(prog="python bench/http_wrk.py"))
