"""``make fuzz``: the differential fuzz of SocketReader, run long.

Runs the ``fuzz``-marked tests of tests/test_stream_fuzz.py on the compiled
engine with CSOCKSERVER_FUZZ_EXAMPLES set to --examples (per socket kind)
and a seed (random unless --seed is given, printed either way), then prints
what ran: examples compared, pairs run again after a stalled peer, examples
dropped, findings (distinct failures hypothesis reported), how soon the
first one came, and the time.
Exits 1 on any finding.  Arguments after ``--`` go to pytest.

    python tools/fuzz.py --examples 5000
    python tools/fuzz.py --examples 200 --seed 1234 -- -x -k unix
"""

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE = "tests/test_stream_fuzz.py"
# How long one test (one socket kind) may take, per example: far above the
# few milliseconds an example takes, so that only a hang trips it.
SECONDS_PER_EXAMPLE = 0.5


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
                   "-p", "no:cacheprovider", "-q", "--timeout=%d" % timeout,
                   "--junitxml=%s" % junit_path] + args.pytest_args
        print("fuzz: %d examples per socket kind, seed %d" % (args.examples,
                                                              seed))
        print("+ " + " ".join(command), flush=True)
        started = time.monotonic()
        status = subprocess.call(command, cwd=ROOT, env=env)
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
