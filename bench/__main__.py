"""The benchmark, one tool: ``python -m bench [SUITE] [--quick] [options]``.

SUITE is one of bench.suites.SUITES (``python -m bench --help`` lists them);
without one, the matrix runs.  ``python -m bench SUITE --help`` gives a
suite's options.
"""

import sys

from . import matrix, suites

COMMAND = "python -m bench"


def top_parser():
    """The matrix's parser, introduced as the whole tool's."""
    return matrix.parser(
        COMMAND,
        description="csockserver and the standard library, side by side.\n\n"
                    "suites (python -m bench SUITE --help for each one's"
                    " options):\n%s\n\nEach prints its progress on stderr"
                    " and its report on stdout, and\nwrites the report under"
                    " build/bench/ unless --out says otherwise.\nThe"
                    " reliability probes (soak, hostile clients, process"
                    " faults):\npython -m bench.probes --help.\n\nThe"
                    " options below are the matrix's, the default suite's."
                    % suites.listing(suites.SUITES))


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and not argv[0].startswith("-"):
        return suites.run(suites.SUITES, argv, COMMAND)
    ap = top_parser()
    ap.usage = "%s [SUITE] [--quick] [--out PATH|-] [options]" % COMMAND
    return matrix.main(argv, prog=COMMAND, ap=ap)


if __name__ == "__main__":
    sys.exit(main())
