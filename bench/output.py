"""Where a run's report goes: the ``--quick`` and ``--out`` every suite has.

A report is printed on stdout and written to ``--out``: by default
``build/bench/SUITE.md`` (``SUITE-quick.md`` with ``--quick``), under the
build folder git ignores, so that a run never changes a tracked file unless
told to; ``--out -`` prints it only.  The paths written are named on stderr
at the end.
"""

import os
import sys

from .report import KEPT_MARKER

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build", "bench")
NO_MATPLOTLIB = ("no chart: matplotlib is not installed"
                 " (pip install -e '.[bench]')")


def add_arguments(parser, suite, quick=None):
    """--out, and --quick when the suite has a shorter preset (*quick*: what
    it does)."""
    if quick:
        parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument(
        "--out", metavar="PATH|-",
        help="write the markdown report to PATH (default %s%s); '-': print"
             " it only" % (shown(default_path(suite, False)),
                           ", or %s with --quick" % os.path.basename(
                               default_path(suite, True)) if quick else ""))
    parser.set_defaults(suite=suite)


def default_path(suite, quick):
    return os.path.join(BUILD, "%s%s.md" % (suite, "-quick" if quick else ""))


def report_path(args):
    """The file the report goes to (absolute), or None for stdout only."""
    if args.out == "-":
        return None
    if args.out is None:
        return default_path(args.suite, getattr(args, "quick", False))
    return os.path.abspath(args.out)


def check_out(args):
    """Refuse, before anything runs, to overwrite bench/RESULTS.md (or a
    copy of it) with another suite's report: its tables below the matrix
    are kept by hand."""
    path = report_path(args)
    if path is None or args.suite == "matrix":
        return
    try:
        with open(path) as f:
            kept = KEPT_MARKER in f.read()
    except OSError:
        return
    if kept:
        raise SystemExit(
            "%s holds the matrix's report and sections kept by hand: write"
            " the %s report elsewhere (the default is %s) and copy its"
            " table in" % (shown(path), args.suite,
                           shown(default_path(args.suite, False))))


def write_report(text, args, file_text=None):
    """Print *text*; write *file_text* (default *text*) to the report path.
    Returns that path, or None."""
    sys.stdout.write(text.rstrip("\n") + "\n")
    sys.stdout.flush()
    path = report_path(args)
    if path is not None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write((text if file_text is None else file_text).rstrip("\n")
                    + "\n")
    return path


def chart_path(report):
    """Beside the report; but a report in the source tree outside build/
    (``--out bench/RESULTS.md``) gets its chart under build/bench/, so that
    no untracked file is left among the sources."""
    name = os.path.splitext(os.path.basename(report))[0] + ".png"
    inside = os.path.commonpath([ROOT, report]) == ROOT
    in_build = os.path.commonpath([os.path.join(ROOT, "build"),
                                   report]) == os.path.join(ROOT, "build")
    if inside and not in_build:
        return os.path.join(BUILD, name)
    return os.path.join(os.path.dirname(report), name)


def shown(path):
    """*path* relative to the working directory when it is below it."""
    rel = os.path.relpath(path)
    return path if rel.startswith(os.pardir) else rel


def tell(report, chart=None, seconds=None):
    """Name on stderr what the run wrote."""
    lines = []
    if seconds is not None:
        from .progress import duration_text
        lines.append("done in %s" % duration_text(seconds))
    if report:
        lines.append("report: %s" % shown(report))
    if chart:
        lines.append("chart: %s" % shown(chart))
    if lines:
        print("\n".join(lines), file=sys.stderr, flush=True)
