"""``make fuzz``: the differential fuzz of SocketReader, run long.

Runs the ``fuzz``-marked tests of tests/streams/test_stream_fuzz.py on the
compiled engine with CSOCKSERVER_FUZZ_EXAMPLES set to --examples (per socket
kind) and a seed (random unless --seed is given, printed either way), then
prints what ran: examples compared, pairs run again after a stalled peer,
examples dropped, findings (distinct failures hypothesis reported), how
soon the first one came, and the time.  On stderr it says up front about
how long the run will take, and as it goes which test runs (one per socket
kind and kind of comparison), how many of its examples are done and about
how long is left.
Exits 1 on any finding.  Arguments after ``--`` go to pytest.

    python tools/fuzz.py --examples 5000
    python tools/fuzz.py --examples 200 --seed 1234 -- -x -k unix
"""

import argparse
import json
import os
import random
import re
import select
import socket
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE = "tests/streams/test_stream_fuzz.py"
# How long one test (one socket kind) may take, per example: far above the
# few milliseconds an example takes, so that only a hang trips it.
SECONDS_PER_EXAMPLE = 0.5
# What an example takes on two cores, as earlier runs measured it (about 20
# minutes for the default 20,000 examples per socket kind): the estimate
# before this run has measured its own pace.
TYPICAL_SECONDS_PER_EXAMPLE = 0.028
# How often, at most, to say how far the fuzz is (and once per test).
REPORT_EVERY = 60.0

# The fuzz tests, how many examples each runs for --examples N (as their
# settings in the test module say), and what each compares.
TESTS = {
    "test_random_reads_match_makefile": (
        lambda n: n, "SocketReader against makefile('rb')"),
    "test_harness_is_deterministic": (
        lambda n: max(10, n // 10), "makefile('rb') against itself"),
}

# Loaded into the fuzz's pytest (-p PLUGIN, from a scratch directory): it
# writes to this script, through the pipe whose fd it is given, each test's
# name as it starts and, every second, how many examples the test module
# has counted (its STATS).  A line printed from inside pytest would be
# captured with the test's output.  The fd is non-blocking: the fuzz never
# waits on its reporting.
PLUGIN = "csock_fuzz_progress"
PROGRESS_PLUGIN = """\
import json
import os
import threading
import time

_FD = int(os.environ.pop("CSOCKSERVER_FUZZ_PROGRESS_FD"))
os.set_inheritable(_FD, False)
os.set_blocking(_FD, False)
_module = []


def _send(**message):
    try:
        os.write(_FD, (json.dumps(message) + "\\n").encode())
    except OSError:
        pass


def _count():
    while True:
        time.sleep(1)
        stats = getattr(_module[-1], "STATS", None) if _module else None
        if stats is not None:
            _send(examples=stats.get("examples", 0)
                  + stats.get("harness examples", 0))


def pytest_collection_finish(session):
    _send(tests=[item.name for item in session.items])
    threading.Thread(target=_count, name="csockserver-fuzz-progress",
                     daemon=True).start()


def pytest_runtest_setup(item):
    _module.append(item.module)
    _send(test=item.name)
"""


def about(seconds):
    """A duration, roughly, for a person: "40 s", "12 min"."""
    if seconds < 90:
        return "%d s" % max(1, round(seconds))
    return "%d min" % round(seconds / 60)


class Progress:
    """How far the fuzz is, and how long it has to go, said on stderr as
    each test starts and every REPORT_EVERY seconds."""

    def __init__(self, examples):
        self.examples = examples
        self.tests = []            # pytest's test names, in its order
        self.current = None        # the test running
        self.done = 0              # examples run so far, in all tests
        self.done_before = 0       # of those, before the current test
        self.started = None        # when the first test started
        self.reported = time.monotonic()

    def planned(self, test):
        """How many examples *test* runs: "name[kind]"."""
        count, _ = TESTS.get(test.partition("[")[0], (lambda n: n, None))
        return count(self.examples)

    def seconds_left(self):
        later = self.tests[self.tests.index(self.current) + 1:]
        left = max(0, self.planned(self.current)
                   - (self.done - self.done_before))
        left += sum(self.planned(test) for test in later)
        pace = TYPICAL_SECONDS_PER_EXAMPLE
        if self.done >= 20:        # this run's own pace, once it has one
            pace = (time.monotonic() - self.started) / self.done
        return left * pace

    def message(self, message):
        """Take one message of PROGRESS_PLUGIN's."""
        if "tests" in message:
            self.tests = message["tests"]
        elif "test" in message and message["test"] in self.tests:
            self.current = message["test"]
            self.done_before = self.done
            if self.started is None:
                self.started = time.monotonic()
            # After the finished test's dot on pytest's line.
            first = self.tests.index(self.current) == 0
            self.report(starting=True, newline=not first)
        elif "examples" in message:
            self.done = message["examples"]
            if time.monotonic() - self.reported >= REPORT_EVERY:
                self.report()

    def report(self, starting=False, newline=False):
        if self.current is None:
            return
        self.reported = time.monotonic()
        name, _, kind = self.current.partition("[")
        what = TESTS.get(name, (None, name))[1]
        planned = self.planned(self.current)
        if starting:
            done = "%d examples" % planned
        else:
            done = "%d of %d examples" % (self.done - self.done_before,
                                          planned)
        print("%s[%d/%d] %s, %s: %s; about %s left" % (
            "\n" if newline else "",
            self.tests.index(self.current) + 1, len(self.tests),
            kind.rstrip("]") or "-", what, done,
            about(self.seconds_left())), file=sys.stderr, flush=True)


def run_pytest(command, env, scratch, examples):
    """Run *command*, the fuzz's pytest, with PROGRESS_PLUGIN (named
    PLUGIN) in *scratch*, saying how far it is; its exit status."""
    with open(os.path.join(scratch, PLUGIN + ".py"), "w") as out:
        out.write(PROGRESS_PLUGIN)
    read_fd, write_fd = os.pipe()
    env = dict(env, CSOCKSERVER_FUZZ_PROGRESS_FD=str(write_fd),
               PYTHONPATH=os.pathsep.join(filter(None, [
                   scratch, env.get("PYTHONPATH")])))
    progress = Progress(examples)
    pending = b""
    try:
        process = subprocess.Popen(command, cwd=ROOT, env=env,
                                   pass_fds=[write_fd])
    finally:
        os.close(write_fd)
    try:
        while process.poll() is None:
            if not select.select([read_fd], [], [], 1.0)[0]:
                continue
            chunk = os.read(read_fd, 65536)
            if not chunk:          # no writer left: wait for the end
                process.wait()
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                progress.message(json.loads(line))
    except BaseException:          # Ctrl-C, as subprocess.call() does
        process.kill()
        process.wait()
        raise
    finally:
        os.close(read_fd)
    return process.returncode


def findings_in(junit_path):
    """[(test id, count, first line of the failure)] from pytest's XML."""
    found = []
    for case in ElementTree.parse(junit_path).iter("testcase"):
        for failure in list(case.iter("failure")) + list(case.iter("error")):
            message = failure.get("message") or failure.text or ""
            many = re.search(r"Hypothesis found (\d+) distinct failures",
                             message + (failure.text or ""))
            found.append(("%s::%s" % (case.get("classname"), case.get("name")),
                          int(many.group(1)) if many else 1,
                          message.strip().splitlines()[0][:200]
                          if message.strip() else "(no message)"))
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=20000,
                        help="examples per socket kind (default 20000)")
    parser.add_argument("--seed", type=int,
                        help="hypothesis seed (default: a random one)")
    parser.add_argument("pytest_args", nargs="*",
                        help="more pytest arguments (after --)")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(2 ** 32)

    with tempfile.TemporaryDirectory(prefix="csock-fuzz-") as scratch:
        stats_path = os.path.join(scratch, "stats.json")
        junit_path = os.path.join(scratch, "junit.xml")
        env = dict(os.environ,
                   CSOCKSERVER_FUZZ_EXAMPLES=str(args.examples),
                   CSOCKSERVER_FUZZ_SEED=str(seed),
                   CSOCKSERVER_FUZZ_STATS=stats_path,
                   # A fuzz that skips for want of the extension is no fuzz.
                   CSOCKSERVER_REQUIRE_EXTENSIONS="1")
        env.pop("CSOCKSERVER_NO_EXTENSIONS", None)
        timeout = max(600, int(args.examples * SECONDS_PER_EXAMPLE))
        command = [sys.executable, "-m", "pytest", MODULE, "-m", "fuzz",
                   "-p", "no:cacheprovider", "-p", PLUGIN, "-q",
                   "--timeout=%d" % timeout,
                   "--junitxml=%s" % junit_path] + args.pytest_args
        print("fuzz: %d examples per socket kind, seed %d" % (args.examples,
                                                              seed),
              flush=True)
        kinds = 2 if hasattr(socket, "AF_UNIX") else 1
        total = kinds * sum(count(args.examples)
                            for count, _ in TESTS.values())
        print("fuzz: %d examples in all, about %s (at about %d ms each)"
              % (total, about(total * TYPICAL_SECONDS_PER_EXAMPLE),
                 TYPICAL_SECONDS_PER_EXAMPLE * 1000), file=sys.stderr)
        print("+ " + " ".join(command), flush=True)
        started = time.monotonic()
        status = run_pytest(command, env, scratch, args.examples)
        elapsed = time.monotonic() - started

        stats = {}
        if os.path.exists(stats_path):
            with open(stats_path) as source:
                stats = json.load(source)
        findings = (findings_in(junit_path) if os.path.exists(junit_path)
                    else [])

    count = sum(n for _, n, _ in findings)
    print()
    print("fuzz summary (seed %d)" % seed)
    print("  examples run:    %d SocketReader against makefile, %d "
          "makefile against itself" % (stats.get("examples", 0),
                                       stats.get("harness examples", 0)))
    print("  run again:       %d (a stalled peer), %d dropped"
          % (stats.get("reruns", 0), stats.get("dropped", 0)))
    print("  findings:        %d" % count)
    if "first failure at" in stats:
        print("  first found:     at example %d, after %.1f s (then shrunk)"
              % (stats["first failure at"], stats["first failure after"]))
    for test, n, line in findings:
        print("    %s (%d): %s" % (test, n, line))
    print("  time:            %.0f s" % elapsed)
    if status not in (0, 1):
        print("  pytest exited with status %d" % status)
    return 0 if status == 0 and not count else 1


if __name__ == "__main__":
    sys.exit(main())
