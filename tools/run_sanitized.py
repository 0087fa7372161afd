"""Run the tests of the compiled engine's C paths under ASan and UBSan.

    python tools/run_sanitized.py               # build, test, rebuild
    python tools/run_sanitized.py --keep        # leave the sanitized build
    python tools/run_sanitized.py --no-build --keep   # and test it again
    python tools/run_sanitized.py -- -k reader  # more pytest arguments

About 910 tests; 4 to 5 minutes of pytest on two busy cores, under a
minute more for both builds (CPython 3.11 and 3.13 alike).  On stderr it
says up front about how long the run will take, then which step runs, and
during the tests how many are done and about how long is left.

1. The engine is built in place with ``CSOCKSERVER_SANITIZE=1``
   (``-fsanitize=address,undefined``, see setup.py), forced: setuptools
   would otherwise keep objects compiled with other flags.
2. pytest runs the modules in TESTS with the compiled engine required,
   ASan's runtime preloaded (a sanitized extension cannot load into an
   interpreter that was not started with it) and both sanitizers told to
   stop the process at their first report and to write it to a file in a
   temporary directory.  Forked children and the subprocesses the tests
   start inherit all of that, so their reports are collected too, even
   when the test that started them does not notice the child died.  (A
   sitecustomize module on PYTHONPATH points UBSan at its file: see
   SITECUSTOMIZE.  A child started with ``-I``, ``-S`` or an environment
   of its own would miss it, and without LD_PRELOAD could not load the
   engine at all; none of the tests in TESTS starts one.)
   Python's allocator is replaced by malloc (``PYTHONMALLOC=malloc``), so
   that ASan sees the bounds of every object and buffer, not just of
   pymalloc's arenas.  Leak detection is off: the interpreter keeps memory
   to its exit on purpose, and ASan would report that at every exit.
3. The run fails (exit 1) if pytest did, or if any report was written;
   the reports are printed.
4. The ordinary build is put back in place (forced, as in 1): a sanitized
   extension left in the tree would stop every later ``import csockserver``
   that is not run through this tool.  ``--keep`` skips this (for running
   again with ``--no-build``); ``make build`` will not replace the
   sanitized objects by itself, ``python setup.py build_ext --inplace
   --force`` does.

Needs GCC with libasan and libubsan (the compiler setuptools builds with:
$CC, else Python's own): their paths are what ``-print-file-name`` says.
"""

import argparse
import glob
import json
import os
import shlex
import subprocess
import sys
import sysconfig
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The modules whose tests run the compiled engine's C code: the stream
# reader (and its differential fuzz, in the suite's short run) and writer,
# the handler files over them, both dispatch modes, every
# server family, the robustness cases, the PROXY protocol parser, the
# deadlines (which the reader and the serve loop enforce) and the header
# parser (its differential test, in the suite's short run).
TESTS = [
    "tests/streams/test_stream_reader.py",
    "tests/streams/test_stream_fuzz.py",
    "tests/streams/test_stream_writer.py",
    "tests/streams/test_handler_files.py",
    "tests/engine/test_threading_dispatch.py",
    "tests/engine/test_forking_dispatch.py",
    "tests/api/test_families.py",
    "tests/reliability/test_robustness.py",
    "tests/features/test_proxy_protocol.py",
    "tests/features/test_deadlines.py",
    "tests/features/test_header_parsing.py",
]

# halt_on_error: the first report ends the process (a test that went on
# after it could pass, and hide it); abort_on_error: by SIGABRT, not by an
# exit status a test could take for the handler's own.
# allocator_may_return_null: a huge allocation fails as malloc's does (a
# MemoryError), which is what the code under test expects to handle.
ASAN_OPTIONS = ("detect_leaks=0", "halt_on_error=1", "abort_on_error=1",
                "allocator_may_return_null=1", "print_summary=1")
UBSAN_OPTIONS = ("print_stacktrace=1", "halt_on_error=1")

# What each step takes on two busy cores, as measured (the builds 22-26 s
# and 9 s, the tests 4 to 5 minutes): the estimates until the tests have
# measured their own pace.
SANITIZED_BUILD_SECONDS = 30.0
TESTS_SECONDS = 270.0
ORDINARY_BUILD_SECONDS = 15.0
# How often, at most, to say how far the tests are.
REPORT_EVERY = 30.0

# Loaded into the tests' pytest (-p PLUGIN, from the directory that holds
# SITECUSTOMIZE): after a test, at most every REPORT_EVERY seconds, it says
# on stderr how many tests are done and about how long the run has left.
# It writes between tests, when pytest's capture is off: it ends pytest's
# line of dots (ensure_newline) and then tells pytest that the line it is
# on is still that module's, so that the dots go on below, without a blank
# line or the module's name again.  Time left: the tests' own pace, trusted
# more as more of them are done, and the later steps' estimates.
# CSOCKSERVER_PROGRESS holds [what to call this step, its estimate in
# seconds, the later steps' estimate, REPORT_EVERY].
PLUGIN = "csock_sanitized_progress"
PROGRESS_PLUGIN = """\
import json
import os
import sys
import time

_STEP, _ESTIMATE, _LATER, _EVERY = json.loads(
    os.environ.pop("CSOCKSERVER_PROGRESS"))
_run = {"config": None, "total": 0, "done": 0, "started": time.monotonic()}
_run["reported"] = _run["started"]


def _about(seconds):
    if seconds < 90:
        return "%d s" % max(1, round(seconds))
    return "%d min" % round(seconds / 60)


def pytest_configure(config):
    _run["config"] = config


def pytest_collection_finish(session):
    _run["total"] = len(session.items)
    _run["started"] = time.monotonic()


def pytest_runtest_logfinish(nodeid, location):
    _run["done"] += 1
    now = time.monotonic()
    done, total = _run["done"], _run["total"]
    if now - _run["reported"] < _EVERY or not total:
        return
    _run["reported"] = now
    part = done / total
    measured = (now - _run["started"]) / done * (total - done)
    left = part * measured + (1 - part) * _ESTIMATE * (1 - part) + _LATER
    reporter = _run["config"].pluginmanager.get_plugin("terminalreporter")
    line = getattr(reporter, "currentfspath", None)
    if reporter is not None:
        reporter.ensure_newline()
    sys.stdout.flush()
    sys.stderr.write("%s: %d of %d tests done; about %s left in all\\n"
                     % (_STEP, done, total, _about(max(0, left))))
    sys.stderr.flush()
    if reporter is not None and line is not None:
        reporter.currentfspath = line
"""


def about(seconds):
    """A duration, roughly, for a person: "40 s", "4 min"."""
    if seconds < 90:
        return "%d s" % max(1, round(seconds))
    return "%d min" % round(seconds / 60)


class Steps:
    """The run's steps and their estimates; each is announced on stderr
    with the time left in all."""

    def __init__(self, steps):
        self.steps = steps         # [(what, estimated seconds)]
        self.current = -1

    def announce(self):
        what = ", ".join("%s %s" % (name, about(seconds))
                         for name, seconds in self.steps)
        say("run_sanitized: about %s in all (%s)"
            % (about(self.left()), what))

    def left(self):
        """Seconds left, as estimated: the current step's and the later
        ones'."""
        return sum(seconds for _, seconds
                   in self.steps[max(0, self.current):])

    def later(self):
        """Seconds the steps after the current one take, as estimated."""
        return sum(seconds for _, seconds in self.steps[self.current + 1:])

    def start(self, what):
        self.current = [name for name, _ in self.steps].index(what)
        say("%s: about %s; about %s left in all" % (
            self.label(), about(self.steps[self.current][1]),
            about(self.left())))

    def label(self):
        """The current step, as "[2/3] the tests"."""
        return "[%d/%d] %s" % (self.current + 1, len(self.steps),
                               self.steps[self.current][0])


def say(line):
    print(line, file=sys.stderr, flush=True)


STEP_BUILD = "the sanitized build"
STEP_TESTS = "the tests"
STEP_REBUILD = "the ordinary build"


def compiler():
    """The C compiler setuptools uses, as a command list."""
    return shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC")
                       or "cc")


def runtime(name):
    """The path of a sanitizer's shared runtime, as the compiler links it."""
    try:
        out = subprocess.run(compiler() + ["-print-file-name=" + name],
                             capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        sys.exit("cannot ask the compiler for %s: %s" % (name, exc))
    found = out.stdout.strip()
    if not os.path.isabs(found) or not os.path.exists(found):
        sys.exit("the compiler knows no %s (is it installed?)" % name)
    return os.path.realpath(found)


# GCC links UBSan's runtime as a library of its own, beside ASan's, and both
# carry a copy of the sanitizers' common code.  With ASan's loaded first,
# libubsan's call to set its report path binds to ASan's copy, so UBSan
# ignores its log_path and writes to stderr -- which pytest captures, and
# throws away when the process dies.  Each Python started under this tool
# (and, through fork, each child) imports this first and sets libubsan's
# own path, by calling it through libubsan's handle.
SITECUSTOMIZE = """\
import ctypes
import os

if "CSOCKSERVER_UBSAN_LOG" in os.environ:
    ubsan = ctypes.CDLL(os.environ["CSOCKSERVER_UBSAN_RUNTIME"])
    ubsan.__sanitizer_set_report_path(
        os.environ["CSOCKSERVER_UBSAN_LOG"].encode())
"""


def build(sanitize, steps):
    """Build the extension in place, sanitized or not, from scratch."""
    steps.start(STEP_BUILD if sanitize else STEP_REBUILD)
    env = dict(os.environ)
    env.pop("CSOCKSERVER_SANITIZE", None)
    if sanitize:
        env["CSOCKSERVER_SANITIZE"] = "1"
    command = [sys.executable, "setup.py", "build_ext", "--inplace",
               "--force"]
    label = "sanitized" if sanitize else "ordinary"
    print("== building the %s extension: %s" % (label, " ".join(command)),
          flush=True)
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True,
                          text=True)
    if done.returncode:
        sys.stdout.write(done.stdout)
        sys.stderr.write(done.stderr)
        sys.exit("the %s build failed" % label)


def sanitized_env(logs, site):
    """The environment the tests run in: reports go to files in logs,
    site holds the sitecustomize module."""
    env = dict(os.environ)
    env.pop("CSOCKSERVER_NO_EXTENSIONS", None)
    env["CSOCKSERVER_REQUIRE_EXTENSIONS"] = "1"
    env["LD_PRELOAD"] = " ".join(filter(None, [runtime("libasan.so"),
                                               env.get("LD_PRELOAD")]))
    env["CSOCKSERVER_UBSAN_RUNTIME"] = runtime("libubsan.so")
    env["CSOCKSERVER_UBSAN_LOG"] = os.path.join(logs, "ubsan")
    # Both runtimes get the same log_path: whichever of them sets ASan's
    # report path last (see SITECUSTOMIZE), ASan's reports land in logs.
    log_path = "log_path=" + os.path.join(logs, "asan")
    env["ASAN_OPTIONS"] = ":".join(ASAN_OPTIONS + (log_path,))
    env["UBSAN_OPTIONS"] = ":".join(UBSAN_OPTIONS + (log_path,))
    env["PYTHONMALLOC"] = "malloc"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [site,
                                                      env.get("PYTHONPATH")]))
    return env


# Run in the test environment before the suite: the engine that loads is
# the compiled one, and it is the sanitized build.
ENGINE_CHECK = """
import csockserver, csockserver._cengine as engine
assert csockserver.IMPLEMENTATION == "cython", csockserver.IMPLEMENTATION
with open(engine.__file__, "rb") as so:
    assert b"__asan_init" in so.read(), engine.__file__ + " is not sanitized"
print(engine.__file__)
"""


def reports(logs):
    """The sanitizer reports written so far: (path, text) pairs."""
    found = []
    for path in sorted(glob.glob(os.path.join(logs, "*"))):
        with open(path, errors="replace") as report:
            found.append((path, report.read()))
    return found


def run_tests(pytest_args, steps):
    """pytest over TESTS under the sanitizers: True if all went well."""
    with tempfile.TemporaryDirectory(prefix="csock-sanitizers-") as tmp:
        logs = os.path.join(tmp, "logs")
        site = os.path.join(tmp, "site")
        os.mkdir(logs)
        os.mkdir(site)
        with open(os.path.join(site, "sitecustomize.py"), "w") as module:
            module.write(SITECUSTOMIZE)
        env = sanitized_env(logs, site)
        check = subprocess.run([sys.executable, "-c", ENGINE_CHECK], cwd=ROOT,
                               env=env, capture_output=True, text=True)
        if check.returncode:
            sys.stderr.write(check.stdout + check.stderr)
            for path, text in reports(logs):
                sys.stderr.write("== %s\n%s" % (path, text))
            print("the sanitized engine does not load (build it, or drop"
                  " --no-build)", file=sys.stderr)
            return False
        print("== engine: " + check.stdout.strip())
        command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                   "-p", PLUGIN, *TESTS, *pytest_args]
        print("== " + " ".join(
            "%s=%s" % (name, env[name]) for name in (
                "LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS", "PYTHONMALLOC",
                "PYTHONPATH")), flush=True)
        print("== " + " ".join(command), flush=True)
        with open(os.path.join(site, PLUGIN + ".py"), "w") as plugin:
            plugin.write(PROGRESS_PLUGIN)
        started = time.monotonic()
        steps.start(STEP_TESTS)
        status = subprocess.run(command, cwd=ROOT, env=dict(
            env, CSOCKSERVER_PROGRESS=json.dumps(
                [steps.label(), TESTS_SECONDS, steps.later(),
                 REPORT_EVERY]))).returncode
        found = reports(logs)
        for path, text in found:
            print("== sanitizer report %s\n%s" % (
                os.path.basename(path), text), file=sys.stderr)
        print("== pytest exit %d, %d sanitizer report(s), %.0f s" % (
            status, len(found), time.monotonic() - started), flush=True)
        return status == 0 and not found


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog="Arguments after -- go to pytest, after the test modules"
               " (narrow the run with -k).")
    parser.add_argument("--no-build", action="store_true",
                        help="test the sanitized build already in place")
    parser.add_argument("--keep", action="store_true",
                        help="leave the sanitized build in place afterwards")
    parser.add_argument("pytest_args", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    runtime("libasan.so")     # before a build that would be of no use
    steps = Steps([step for step, wanted in (
        ((STEP_BUILD, SANITIZED_BUILD_SECONDS), not args.no_build),
        ((STEP_TESTS, TESTS_SECONDS), True),
        ((STEP_REBUILD, ORDINARY_BUILD_SECONDS), not args.keep)) if wanted])
    steps.announce()
    if not args.no_build:
        build(sanitize=True, steps=steps)
    try:
        passed = run_tests(args.pytest_args, steps)
    finally:
        if not args.keep:
            build(sanitize=False, steps=steps)
    if not passed:
        print("sanitized run FAILED", file=sys.stderr)
        return 1
    print("sanitized run passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
