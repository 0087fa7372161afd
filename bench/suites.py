"""The suites of ``python -m bench SUITE``, and the probes of
``python -m bench.probes PROBE``: one table each, from which the commands'
help and dispatch are made.

Every module named here has ``parser(prog)`` (its argparse parser, with
``--out``) and ``main(argv, prog)``; it also runs on its own, as it always
has (``python bench/process_scaling.py``, ``python -m bench.soak``).
Durations are those of runs on this project's 2-core machine.
"""

import importlib
import textwrap
from collections import namedtuple

Suite = namedtuple("Suite", "name module summary duration")

SUITES = [
    Suite("matrix", "bench.matrix",
          "every workload on every server, side by side; the default",
          "about 11 min; --quick under 2 min"),
    Suite("http", "bench.http_wrk",
          "http.server, xmlrpc, wsgiref; waitress, cheroot (needs wrk)",
          "about 9 min; --quick about 1 min"),
    Suite("scaling", "bench.process_scaling",
          "forking and prefork servers over one and two processes",
          "about 1.5 min; --quick about 15 s"),
    Suite("prefork", "bench.prefork_spread",
          "how evenly prefork workers share the connections",
          "about 1 min; --quick about 10 s"),
    Suite("haproxy", "bench.haproxy_scaleout",
          "scale-out and reload behind HAProxy (needs haproxy, wrk)",
          "about 5 min; --quick about 1.5 min"),
    Suite("kernel-counts", "bench.kernel_counts",
          "context switches and syscalls per request (needs perf)",
          "about 5 min; --quick about 1.5 min"),
    Suite("free-threading", "bench.free_threading",
          "what a free-threaded CPython buys a threaded server",
          "about 5 min, 3 more the first time; --quick about 1 min"),
    Suite("shutdown", "bench.shutdown_latency",
          "how long shutdown() takes to return",
          "about 20 s; --quick about 5 s"),
]

PROBES = [
    Suite("soak", "bench.soak",
          "1M requests per server kind, watching RSS, fds, threads",
          "about 10 min; with --stdlib about 16 min"),
    Suite("hostile", "bench.hostile",
          "hostile clients, the stdlib beside csockserver",
          "about 1 min"),
    Suite("faults", "bench.faults",
          "killed supervisor, workers, children; shutdown under load",
          "about 1 min"),
]


def listing(suites, columns=79):
    """Per suite: its name, what it does, how long it takes."""
    width = max(len(s.name) for s in suites) + 4
    lines = []
    for suite in suites:
        lines += textwrap.wrap(suite.summary + ".", columns,
                               initial_indent="  %-*s" % (width - 2,
                                                          suite.name),
                               subsequent_indent=" " * width)
        lines += textwrap.wrap(suite.duration[0].upper()
                               + suite.duration[1:] + ".", columns,
                               initial_indent=" " * width,
                               subsequent_indent=" " * width)
    return "\n".join(lines)


def find(suites, name, command):
    for suite in suites:
        if suite.name == name:
            return suite
    raise SystemExit("%s: no %r; choose one of: %s (%s --help says more)" % (
        command, name, ", ".join(s.name for s in suites), command))


def module(suite):
    return importlib.import_module(suite.module)


def run(suites, argv, command):
    """``COMMAND NAME [options]``: run the named suite's main."""
    suite = find(suites, argv[0], command)
    return module(suite).main(argv[1:], prog="%s %s" % (command, suite.name))
