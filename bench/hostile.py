"""Hostile clients, the standard library beside csockserver.

    python -m bench.probes hostile [--engine c|py] [--only NAME...]
                                   [--out PATH|-]

(also ``python -m bench.hostile``, with the same options).  About a minute;
the table goes to stdout and to ``--out`` (default build/bench/hostile.md).

Runs the scenarios of tests/reliability/test_hostile_clients.py (the same code:
tests/support/hostile.py) against a server child built on socketserver
(or http.server) and one built on csockserver (or csockserver.http), one
after the other, and prints a markdown table.  Each cell says what
happened, how long a normal client took to be served while the hostile
clients were on, the server's CPU (share of one core while they were
quiet, or over the whole storm), and its fds and threads once they had
gone, against the baseline before (after/before).

The processes are not pinned: the figures that matter here are bounds,
not speeds.
"""

import argparse
import os
import shlex
import sys

from . import output
from .progress import Progress

# name: (what, the server's config, the scenario, its arguments,
#        the stdlib's module or http kind, csockserver's)
# Seconds each scenario took on one side, for the estimates of time left.
SECONDS = {"silent": 4, "silent-deadline": 4, "never-reads": 2, "reset": 5,
           "huge-line": 2, "huge-http": 2, "http-line": 1, "http-header": 1,
           "http-count": 1, "http-installed": 2, "half-closed": 1,
           "half-closed-http": 1, "out-of-fds": 4}
SCENARIOS = {
    "silent": ("2,000 clients send a partial line, go silent",
               {}, "silent_partial_lines", (2000,),
               "socketserver", "csockserver"),
    "silent-deadline": ("same, with a 1 s deadline (csockserver: "
                        "read_deadline; stdlib: timeout)",
                        {"deadline": 1.0}, "silent_partial_lines",
                        (2000, 1.0), "socketserver", "csockserver"),
    "never-reads": ("20 clients ask for a flood, never read",
                    {}, "never_reads", (20,),
                    "socketserver", "csockserver"),
    "reset": ("10,000 connect-and-reset (SO_LINGER 0), one after the "
              "other", {}, "connect_and_reset", (10000,),
              "socketserver", "csockserver"),
    "huge-line": ("100 MiB line, no newline, to readline(65537)",
                  {}, "huge_line", (), "socketserver", "csockserver"),
    "huge-http": ("100 MiB HTTP request line",
                  {"handler": "http"}, "huge_line", (), "stdlib", "csock"),
    "http-line": ("HTTP request line of 65,537 bytes",
                  {"handler": "http"}, "oversized_request",
                  ("request line",), "stdlib", "csock"),
    "http-header": ("HTTP header line of 65,537 bytes",
                    {"handler": "http"}, "oversized_request",
                    ("header line",), "stdlib", "csock"),
    "http-count": ("101 HTTP headers",
                   {"handler": "http"}, "oversized_request",
                   ("header count",), "stdlib", "csock"),
    "http-installed": ("the three above, http.server after "
                       "csockserver.install()",
                       {"handler": "http"}, "oversized_all", (),
                       "stdlib", "installed"),
    "half-closed": ("200 clients send two lines, SHUT_WR, then read",
                    {}, "half_closed", (200,),
                    "socketserver", "csockserver"),
    "half-closed-http": ("200 HTTP clients send a GET, SHUT_WR, then read",
                         {"handler": "http"}, "half_closed", (200,),
                         "stdlib", "csock"),
    "out-of-fds": ("out of fds: RLIMIT_NOFILE 256, 400 clients hold "
                   "connections", {"nofile": 256}, "out_of_fds", (400,),
                   "socketserver", "csockserver"),
}


def oversized_all(hostile, server):
    """The three oversized requests on one server; their status lines."""
    figures = {}
    replies = []
    for what in hostile.OVERSIZED:
        figures = hostile.oversized_request(server, what)
        replies.append(str(figures["status"]))
    figures["reply"] = "/".join(replies)
    return figures


def outcome(name, figures):
    if name == "silent":
        return "all held" if figures["all_held"] else "not all accepted"
    if name == "silent-deadline":
        return ("hung up on in %.1f s" % figures["hung_up_in"]
                if figures["hung_up"] else "kept them")
    if name == "never-reads":
        return "%d threads while stuck in send()" % figures["threads_held"]
    if name == "reset":
        failed = len(figures["failed"])
        return "storm took %.1f s, %d normal requests%s" % (
            figures["storm_s"], figures["asked"],
            ", %d failed" % failed if failed else "")
    if name.startswith("huge"):
        return "%s after %.0f MiB sent; peak RSS +%.1f MiB" % (
            figures["reply"], figures["sent_mib"], figures["rss_growth_mib"])
    if name.startswith("http"):
        return figures["reply"]
    if name.startswith("half-closed"):
        return "%d/%d replies whole" % (figures["whole"], figures["count"])
    if name == "out-of-fds":
        return "%s (%d fds)" % ("exhausted" if figures["exhausted"]
                                else "not exhausted", figures["fds_held"])
    return ""


def cell(name, figures):
    parts = [outcome(name, figures)]
    if figures.get("latency") is not None:
        parts.append("normal client %s %.1f ms" % (
            "max" if name == "reset" else "in", figures["latency"] * 1e3))
    if "cpu" in figures:
        parts.append("CPU %.0f%%" % (figures["cpu"] * 100))
    parts.append("after: fds %d/%d, threads %d/%d, served in %.1f ms" % (
        figures["fds"], figures["baseline"][0], figures["threads"],
        figures["baseline"][1], figures["served_after"] * 1e3))
    return "; ".join(parts)


def run(hostile, name, side):
    what, config, scenario, args, stdlib, csock = SCENARIOS[name]
    config = dict(config)
    kind = stdlib if side == "stdlib" else csock
    if config.get("handler") == "http":
        config["http"] = kind
        module = "socketserver"
    else:
        module = kind
    if scenario == "oversized_all":
        def function(server, *args):
            return oversized_all(hostile, server)
    else:
        function = getattr(hostile, scenario)
    with hostile.ServerProcess(module, **config) as server:
        server.take_baseline()
        try:
            figures = function(server, *args)
        except (OSError, AssertionError) as exc:
            return "failed: %r" % exc
        printed = server.errors_printed()
    text = cell(name, figures)
    if "Traceback" in printed:
        text += "; **the server printed a traceback**"
    return text


def parser(prog="python -m bench.probes hostile"):
    ap = argparse.ArgumentParser(prog=prog,
                                 description=__doc__.split("\n")[0])
    output.add_arguments(ap, "hostile")
    ap.add_argument("--engine", choices=["c", "py"], default="c")
    ap.add_argument("--only", nargs="*", default=list(SCENARIOS),
                    choices=list(SCENARIOS))
    return ap


def main(argv=None, prog="python -m bench.probes hostile"):
    argv = sys.argv[1:] if argv is None else argv
    args = parser(prog).parse_args(argv)
    output.check_out(args)
    os.environ.pop("CSOCKSERVER_NO_EXTENSIONS", None)
    os.environ.pop("CSOCKSERVER_REQUIRE_EXTENSIONS", None)
    if args.engine == "py":
        os.environ["CSOCKSERVER_NO_EXTENSIONS"] = "1"
    else:
        os.environ["CSOCKSERVER_REQUIRE_EXTENSIONS"] = "1"
    # Imported once the engine is chosen (above): it imports csockserver.
    # The tests' package is importable from where bench is: the
    # repository's root.
    import resource

    from tests.support import hostile

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < 4200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4200, hard), hard))
    sides = ("stdlib", "csock")
    progress = Progress([SECONDS[name] for name in args.only
                         for _ in sides])
    lines = ["| scenario | stdlib | csockserver (%s engine) |" % (
                 "compiled" if args.engine == "c" else "pure"),
             "|---|---|---|"]
    for name in args.only:
        figures = {}
        for side in sides:
            progress.step("%s, %s" % (name, "the stdlib" if side == "stdlib"
                                      else "csockserver"))
            figures[side] = run(hostile, name, side)
            progress.note(figures[side])
        lines.append("| %s | %s | %s |" % (
            SCENARIOS[name][0], figures["stdlib"], figures["csock"]))
    command = " ".join([prog] + [shlex.quote(a) for a in argv])
    text = "Command: `%s` (%.0f s; not pinned).\n\n%s" % (
        command, progress.elapsed(), "\n".join(lines))
    output.tell(output.write_report(text, args), seconds=progress.elapsed())
    return 0


if __name__ == "__main__":
    sys.exit(main(prog="python -m bench.hostile"))
