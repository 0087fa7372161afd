"""What a free-threaded CPython buys a threaded server.

    python -m bench free-threading [--quick] [--repeat 3] [--duration 3]
                                   [--warmup 1] [--out PATH|-]

(also ``python -m bench.free_threading``, with the same options).  About 5
minutes with the defaults (60 measurements), a minute with ``--quick`` (one
repeat of 1.5 s); the first time, add provisioning CPython 3.13t (about 3
minutes, see tools/pythons.py) and building the engine for an interpreter
that has no build in the checkout yet (under a minute).  The report goes to
stdout and to ``--out`` (default build/bench/free-threading.md).

A handler that spends about 200 us in Python per message (the ``cpu200``
workload of bench/servers.py) is served by:

- csockserver's ThreadingTCPServer on CPython 3.13t, the GIL off;
- the standard library's ThreadingTCPServer on the same interpreter;
- csockserver's ThreadingTCPServer on CPython 3.13 with the GIL;
- csockserver's PreforkTCPServer with 2 processes on CPython 3.13 (what one
  does today to use two cores): PreforkThreadingTCPServer under persistent
  connections, which a process serving one connection at a time would leave
  waiting;

each pinned to CPU 0 (``taskset -c 0``) and then free on CPUs 0-1, under 8
persistent connections and under connection per request from 8 clients.
The table says how far threads scale from one CPU to two without the GIL,
and whether csockserver keeps its lead over the standard library there.  A
second table serves a plain echo on CPU 0 with csockserver on 3.13t and on
3.13: the price of the free-threaded build for one thread.

Why a suite of its own: the matrix (``python -m bench``) runs every
server on the interpreter that runs it, pins the load generator to CPU 1
and busy-polls it, and charges only the server process's CPU.  Here the
servers run on two other interpreters, the load generator is not pinned
and sleeps when idle (so that it leaves CPU time to a server free on both
CPUs), and a server's CPU time includes its live child processes (prefork
workers, counted from /proc before they exit).  Servers alternate within
each repeat, so drift hits them alike; the figures are medians of the
repeats.
"""

import argparse
import collections
import glob
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time

if __package__ in (None, ""):   # run as a script: make ``bench`` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))

from bench import measure, output
from bench.build import build_tools
from bench.progress import Progress
from bench.workloads import Server

ROOT = measure.ROOT
FREE, GIL = "3.13t", "3.13"
ONE_CPU, TWO_CPUS = "0", "0-1"
CPUS_LABEL = {ONE_CPU: "1 (CPU 0)", TWO_CPUS: "2 (CPUs 0-1)"}
CPUS_WHERE = {ONE_CPU: "pinned to CPU 0", TWO_CPUS: "free on CPUs 0-1"}
SETTLE = 0.3        # seconds between the ready line and the load (workers)
# Seconds each measurement takes beyond warm-up and window (start, settle,
# stop), for the estimate printed at the start.
OVERHEAD = 0.5

# server: the table's label; python: FREE or GIL; the rest are
# bench.servers arguments.
Row = collections.namedtuple("Row", "server impl dispatch processes python")
Mode = collections.namedtuple("Mode", "name title conns size")

THREADS_CSOCK = Row("csockserver ThreadingTCPServer", "csock", "threading",
                    0, FREE)
THREADS_STDLIB = Row("stdlib ThreadingTCPServer", "stdlib", "threading", 0,
                     FREE)
THREADS_GIL = Row("csockserver ThreadingTCPServer", "csock", "threading", 0,
                  GIL)
PREFORK = Row("csockserver PreforkTCPServer, 2 processes", "csock",
              "prefork", 2, GIL)
PREFORK_THREADS = Row("csockserver PreforkThreadingTCPServer, 2 processes",
                      "csock", "prefork-threading", 2, GIL)

CPU_MODES = [Mode("persistent", "8 persistent connections", 8, 64),
             Mode("conn", "connection per request, 8 clients", 8, 64)]
ECHO_MODES = [Mode("persistent", "16 persistent connections, 1 KiB echo",
                   16, 1024),
              Mode("conn", "connection per request, 64 B echo, 16 clients",
                   16, 64)]
GOAL_SCALING = 1.7      # two CPUs over one, csockserver on 3.13t
GOAL_VS_STDLIB = 1.0    # csockserver over the stdlib, 3.13t, two CPUs


def cpu_rows(mode):
    """(row, cpus) of the cpu200 table for *mode*, in the order run."""
    prefork = PREFORK_THREADS if mode.name == "persistent" else PREFORK
    return [(row, cpus)
            for row in (THREADS_CSOCK, THREADS_STDLIB, THREADS_GIL, prefork)
            for cpus in (ONE_CPU, TWO_CPUS)]


ECHO_ROWS = [(THREADS_CSOCK, ONE_CPU), (THREADS_GIL, ONE_CPU)]


# --------------------------------------------------------------------------
# Interpreters

class Python:
    """One interpreter: where it is, and what it runs (or why it cannot)."""

    def __init__(self, name, path=None, missing=None):
        self.name, self.path, self.missing = name, path, missing
        self.version = name
        self.gil = {}       # impl -> the GIL's state once its module loaded
        self.unusable = {}  # impl -> why its rows are left out

    def label(self, impl):
        gil = self.gil.get(impl)
        return "%s, GIL %s" % (self.version, {True: "on", False: "off",
                                              None: "?"}[gil])

    def usable(self, impl):
        return not self.missing and impl not in self.unusable


def find_free_threaded():
    """CPython 3.13t, provisioned by tools/pythons.py if need be."""
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    try:
        import pythons
        [(_, path)] = pythons.ensure([FREE])
    except Exception as exc:   # ProvisionError, or no network, no compiler
        return Python(FREE, missing="could not provision it (%s)" % exc)
    finally:
        sys.path.pop(0)
    return Python(FREE, path)


def find_gil():
    """CPython 3.13 with the GIL: pyenv's newest 3.13.x, else python3.13."""
    pyenv = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    found = []
    for path in glob.glob(os.path.join(pyenv, "versions", "3.13.*", "bin",
                                       "python3")):
        version = path.split(os.sep)[-3]
        if re.fullmatch(r"3\.13\.\d+", version):   # not 3.13.0t, 3.13-dev
            found.append((tuple(map(int, version.split("."))), path))
    if found:
        return Python(GIL, max(found)[1])
    path = shutil.which("python3.13")
    if path:
        return Python(GIL, path)
    return Python(GIL, missing="not found (looked in %s and for python3.13"
                  " on PATH)" % os.path.join(pyenv, "versions"))


PROBE = """\
import json, sys, sysconfig
import %s as module
free = "t" if sysconfig.get_config_var("Py_GIL_DISABLED") else ""
print(json.dumps({
    "version": "%%d.%%d.%%d%%s" %% (sys.version_info[:3] + (free,)),
    "gil": getattr(sys, "_is_gil_enabled", lambda: True)(),
    "engine": getattr(module, "IMPLEMENTATION", "stdlib")}))
"""


def server_env(impl):
    """The environment bench.servers runs in (the checkout's csockserver,
    its compiled engine required)."""
    return measure._server_env(Server(impl, impl, "threading",
                                      "cython" if impl == "csock" else ""))


def probe(python, impl):
    """Import *impl*'s module as a server would; the probe's JSON, or an
    exception."""
    module = "csockserver" if impl == "csock" else "socketserver"
    result = subprocess.run([python.path, "-c", PROBE % module], cwd=ROOT,
                            env=server_env(impl), capture_output=True,
                            text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip().splitlines()[-1]
                           if result.stderr.strip() else "exit %d"
                           % result.returncode)
    return json.loads(result.stdout)


def engine_built(python):
    """Whether the checkout has csockserver's engine built for *python*."""
    suffix = subprocess.run(
        [python.path, "-c", "import sysconfig;"
         " print(sysconfig.get_config_var('EXT_SUFFIX'))"],
        capture_output=True, text=True).stdout.strip()
    return os.path.exists(os.path.join(ROOT, "csockserver",
                                       "_cengine" + suffix))


def build_engine(python):
    """Build the compiled engine in place for *python*; None, or why not."""
    has_cython = subprocess.run([python.path, "-c", "import Cython"],
                                capture_output=True).returncode == 0
    if not has_cython:
        return ("no compiled engine for it in this checkout, and no Cython"
                " to build one (`%s -m pip install Cython`, then `%s setup.py"
                " build_ext --inplace`)" % (python.path, python.path))
    say("building csockserver's engine for %s (under a minute)"
        % python.path)
    result = subprocess.run([python.path, "setup.py", "-q", "build_ext",
                             "--inplace"], cwd=ROOT, capture_output=True,
                            text=True)
    if result.returncode != 0:
        return "building the engine failed: %s" % (
            result.stderr.strip().splitlines() or ["exit %d"
                                                   % result.returncode])[-1]
    return None


def check(python, impls):
    """Fill in *python*'s version and GIL state for each of *impls*, building
    csockserver's engine if it is missing."""
    if python.missing:
        return
    for impl in impls:
        if impl == "csock" and not engine_built(python):
            why = build_engine(python)
            if why:
                python.unusable[impl] = why
                continue
        try:
            found = probe(python, impl)
        except (OSError, RuntimeError, ValueError,
                subprocess.TimeoutExpired) as exc:
            python.unusable[impl] = "importing it failed: %s" % exc
            continue
        if impl == "csock" and found["engine"] != "cython":
            python.unusable[impl] = "csockserver loaded its %s engine" % (
                found["engine"])
            continue
        python.version = found["version"]
        python.gil[impl] = found["gil"]
    free = python.version.endswith("t")
    if free != (python.name == FREE):
        python.missing = "%s is CPython %s, %s" % (
            python.path, python.version,
            "a free-threaded build" if free else "not a free-threaded build")


# --------------------------------------------------------------------------
# One measurement

class Run(measure.Measurement):
    """A Measurement that also knows how long its CPU window was."""

    def __init__(self, load, server_cpu, window):
        super().__init__(load=load, server_cpu=server_cpu)
        self.window = window

    @property
    def cores(self):
        return self.server_cpu / self.window

    @property
    def faults(self):
        return self.load.get("errors", 0) + self.load.get("timeouts", 0)


def _children(pid):
    """The pids of *pid*'s live children (their parent may be any of its
    threads)."""
    found = []
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                found += [int(child) for child in f.read().split()]
        except FileNotFoundError:   # the thread ended meanwhile
            pass
    return found


def tree_cpu_seconds(pid):
    """CPU seconds of *pid*, its live descendants and the children each
    reaped (a prefork server's workers are alive until it stops)."""
    total, todo = 0.0, [pid]
    while todo:
        pid = todo.pop()
        try:
            total += measure._cpu_seconds(pid)
            todo += _children(pid)
        except (FileNotFoundError, ProcessLookupError):   # exited meanwhile
            pass
    return total


def run_one(row, python, cpus, mode, workload, settings, loadgen):
    """Start one server, load it, and return a Run."""
    argv = [python.path, "-m", "bench.servers", "--impl", row.impl,
            "--dispatch", row.dispatch, "--workload", workload]
    if row.processes:
        argv += ["--processes", str(row.processes)]
    server = subprocess.Popen(
        ["taskset", "-c", cpus] + argv, cwd=ROOT, env=server_env(row.impl),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        hello = measure._read_ready_line(server)
        if "skip" in hello:
            raise RuntimeError(hello["skip"])
        time.sleep(SETTLE)
        host, port = hello["address"][:2]
        # Not pinned, and sleeping when idle: it shares the CPUs with a
        # server that is free on both.
        load = subprocess.Popen(
            [loadgen, "--mode", mode.name, "--host", host, "--port",
             str(port), "--conns", str(mode.conns), "--size", str(mode.size),
             "--duration", str(settings.duration),
             "--warmup", str(settings.warmup), "--busy-poll", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            time.sleep(settings.warmup)
            # taskset execs the server, so server.pid is the server's.
            cpu_before, started = (tree_cpu_seconds(server.pid),
                                   time.monotonic())
            time.sleep(settings.duration)
            cpu_after, ended = (tree_cpu_seconds(server.pid),
                                time.monotonic())
        except BaseException:
            load.kill()
            load.wait()
            raise
        result = measure.load_result(
            load, settings.duration + settings.warmup + 30)
        return Run(result, cpu_after - cpu_before, ended - started)
    finally:
        measure._stop(server)


# --------------------------------------------------------------------------
# The tables

def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def figures(runs):
    """The medians of one row's runs, or None if none gave figures."""
    ok = [r for r in runs if isinstance(r, Run)]
    if not ok:
        return None
    return {"rps": median([r.rps for r in ok]),
            "cpu": median([r.cpu_us_per_request for r in ok]),
            "cores": median([r.cores for r in ok]),
            "p99": median([r.load.get("p99_us") for r in ok]),
            "errors": sum(r.faults for r in ok),
            "failed": len(runs) - len(ok)}


def why_not(runs):
    """The first failure among *runs*, for a row with no figures."""
    why = next((str(r) for r in runs if not isinstance(r, Run)), "not run")
    return why.strip().splitlines()[-1][:200] if why.strip() else why


def fmt(value, form):
    return "–" if value is None else form % value


def cpu_table(mode, results, pythons):
    lines = ["### %s, about 200 µs of Python per message" % (
                 mode.title[0].upper() + mode.title[1:]), "",
             "| server | interpreter | CPUs | req/s | server CPU µs/req"
             " | cores used | p99 µs | errors |",
             "|---|---|---|---|---|---|---|---|"]
    for row, cpus in cpu_rows(mode):
        python = pythons[row.python]
        runs = results.get(("cpu200", mode.name, row, cpus))
        if runs is None:
            continue
        got = figures(runs)
        head = "| %s | %s | %s |" % (row.server, python.label(row.impl),
                                     CPUS_LABEL[cpus])
        if got is None:
            lines.append(head + " failed: %s | | | | |" % why_not(runs))
            continue
        errors = "%d" % got["errors"]
        if got["failed"]:
            errors += " (%d runs failed)" % got["failed"]
        lines.append(head + " %.0f | %s | %s | %s | %s |" % (
            got["rps"], fmt(got["cpu"], "%.0f"), fmt(got["cores"], "%.2f"),
            fmt(got["p99"], "%.0f"), errors))
    if mode.name == "persistent":
        lines += ["", "The prefork row is PreforkThreadingTCPServer here: a"
                  " PreforkTCPServer process serves one connection at a"
                  " time, so two of them would leave six of the eight"
                  " connections waiting."]
    return "\n".join(lines) + "\n\n" + verdict(mode, results)


def verdict(mode, results):
    """The scaling lines and the goals, for the cpu200 table of *mode*."""
    def rps(row, cpus):
        got = figures(results.get(("cpu200", mode.name, row, cpus), []))
        return got["rps"] if got else None

    pinned, free = rps(THREADS_CSOCK, ONE_CPU), rps(THREADS_CSOCK, TWO_CPUS)
    stdlib = rps(THREADS_STDLIB, TWO_CPUS)
    lines, goals = [], []
    if pinned and free:
        scaling = free / pinned
        lines.append("csockserver on 3.13t: %.0f req/s on two CPUs / %.0f"
                     " pinned to one = %.2f×" % (free, pinned, scaling))
        goals.append("two CPUs over one ≥ %.1f×: %.2f×, %s" % (
            GOAL_SCALING, scaling,
            "met" if scaling >= GOAL_SCALING else "missed"))
    if free and stdlib:
        ratio = free / stdlib
        lines.append("csockserver on 3.13t (two CPUs) vs the stdlib on 3.13t"
                     " (two CPUs): %.2f×" % ratio)
        goals.append("csockserver ≥ the stdlib (3.13t, two CPUs): %.2f×,"
                     " %s" % (ratio,
                              "met" if ratio >= GOAL_VS_STDLIB else "missed"))
    if not lines:
        return "Scaling: not measured (rows missing).\n"
    return ("Scaling: " + "; ".join(lines) + ".\n\n"
            + "Goals: " + "; ".join(goals) + ".\n")


def echo_table(results, pythons):
    free, gil = pythons[FREE], pythons[GIL]
    lines = ["### Plain echo, one CPU: what the free-threaded build costs"
             " one thread", "",
             "csockserver's ThreadingTCPServer pinned to CPU 0.", "",
             "| workload | req/s on %s | on %s | server CPU µs/req on %s"
             " | on %s | CPU %s / %s | errors |" % (
                 free.version, gil.version, free.version, gil.version,
                 free.version, gil.version),
             "|---|---|---|---|---|---|---|"]
    for mode in ECHO_MODES:
        got = [figures(results.get(("echo", mode.name, row, cpus), []))
               for row, cpus in ECHO_ROWS]
        if not any(got):
            continue
        rps = [fmt(g and g["rps"], "%.0f") for g in got]
        cpu = [g and g["cpu"] for g in got]
        ratio = fmt(cpu[0] / cpu[1] if all(cpu) else None, "%.2f×")
        errors = sum(g["errors"] for g in got if g)
        lines.append("| %s | %s | %s | %s | %s | %s | %d |" % (
            mode.title, rps[0], rps[1], fmt(cpu[0], "%.1f"),
            fmt(cpu[1], "%.1f"), ratio, errors))
    return "\n".join(lines) + "\n"


def header(command, seconds, settings, pythons):
    lines = [
        "Command: `%s` (%.0f s); %d repeat%s × %g s after %g s of warm-up;"
        " servers alternate within each repeat; medians." % (
            command, seconds, settings.repeat,
            "" if settings.repeat == 1 else "s", settings.duration,
            settings.warmup),
        "",
        "%s, %d CPUs.  Interpreters: %s.  Each server runs pinned to CPU 0"
        " (`taskset -c 0`) or free on CPUs 0-1; the load generator is not"
        " pinned and sleeps when idle.  Server CPU is user+system time of"
        " the server process, its threads and its child processes (prefork"
        " workers included) over the measured window; cores used is that"
        " time over the window.  Errors count failed and timed-out requests"
        " over all runs." % (
            platform.platform(), os.cpu_count() or 0,
            "; ".join("CPython %s (`%s`)" % (p.version, p.path)
                      for p in pythons.values() if not p.missing))]
    for python in pythons.values():
        if python.missing:
            lines.append("\nCPython %s: %s; its rows are left out."
                         % (python.name, python.missing))
        for impl, why in python.unusable.items():
            lines.append("\n%s on CPython %s: %s; its rows are left out." % (
                "csockserver" if impl == "csock" else "The stdlib",
                python.version, why))
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------

Settings = collections.namedtuple("Settings", "repeat duration warmup")


def say(message):
    print(message, file=sys.stderr, flush=True)


def parser(prog="python -m bench free-threading"):
    ap = argparse.ArgumentParser(prog=prog,
                                 description=__doc__.splitlines()[0])
    output.add_arguments(ap, "free-threading",
                         quick="one repeat of 1.5 s (about a minute)")
    ap.add_argument("--repeat", type=int, default=None,
                    help="runs per row (default 3)")
    ap.add_argument("--duration", type=float, default=None,
                    help="measured seconds per run (default 3)")
    ap.add_argument("--warmup", type=float, default=1.0,
                    help="seconds of load before measuring (default 1)")
    return ap


def main(argv=None, prog="python -m bench free-threading"):
    argv = sys.argv[1:] if argv is None else argv
    args = parser(prog).parse_args(argv)
    settings = Settings(args.repeat or (1 if args.quick else 3),
                        args.duration or (1.5 if args.quick else 3.0),
                        args.warmup)
    output.check_out(args)
    command = " ".join([prog] + [shlex.quote(a) for a in argv])
    if shutil.which("taskset") is None:
        raise SystemExit("%s: needs taskset (util-linux) to pin the servers"
                         % prog)
    loadgen = build_tools()["loadgen"]

    pythons = {FREE: find_free_threaded(), GIL: find_gil()}
    check(pythons[FREE], ("csock", "stdlib"))
    check(pythons[GIL], ("csock",))
    for python in pythons.values():
        say("CPython %s: %s" % (python.name, python.missing or "%s (%s)" % (
            python.path, ", ".join("%s: %s" % (impl, python.label(impl))
                                   for impl in python.gil))))

    sections = [("cpu200", mode, cpu_rows(mode)) for mode in CPU_MODES]
    sections += [("echo", mode, ECHO_ROWS) for mode in ECHO_MODES]
    plan = [(repeat, workload, mode, row, cpus)
            for repeat in range(settings.repeat)
            for workload, mode, rows in sections
            for row, cpus in rows
            if pythons[row.python].usable(row.impl)]
    each = settings.warmup + settings.duration + OVERHEAD
    progress = Progress([each] * len(plan))

    results = {}    # (workload, mode name, row, cpus) -> [Run or exception]
    for repeat, workload, mode, row, cpus in plan:
        python = pythons[row.python]
        progress.step("%s %s: %s on %s, %s (repeat %d of %d)" % (
            workload, mode.name, row.server, python.version,
            CPUS_WHERE[cpus], repeat + 1, settings.repeat))
        try:
            run = run_one(row, python, cpus, mode, workload, settings,
                          loadgen)
            summary = "%s  cores %.2f" % (run.summary(), run.cores)
        except (OSError, RuntimeError, ValueError,
                subprocess.TimeoutExpired) as exc:
            run, summary = exc, "failed: %s" % exc
        results.setdefault((workload, mode.name, row, cpus), []).append(run)
        progress.note(summary)

    parts = [header(command, progress.elapsed(), settings, pythons)]
    parts += [cpu_table(mode, results, pythons) for mode in CPU_MODES]
    parts.append(echo_table(results, pythons))
    output.tell(output.write_report("\n".join(parts), args),
                seconds=progress.elapsed())
    return 0


if __name__ == "__main__":
    sys.exit(main(prog="python -m bench.free_threading"))
