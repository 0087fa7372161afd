"""The reliability probes of RELIABILITY.md: ``python -m bench.probes PROBE``.

PROBE is one of bench.suites.PROBES (``python -m bench.probes --help``
lists them); ``python -m bench.probes PROBE --help`` gives its options.
Each prints its progress on stderr and its table on stdout, and writes the
table under build/bench/ unless --out says otherwise.
"""

import argparse
import sys

from . import suites

COMMAND = "python -m bench.probes"


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and not argv[0].startswith("-"):
        return suites.run(suites.PROBES, argv, COMMAND)
    ap = argparse.ArgumentParser(
        prog=COMMAND, usage="%s PROBE [options]" % COMMAND,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="What csockserver survives, beside what a user of the"
                    " standard library has.\n\nprobes (%s PROBE --help for"
                    " each one's options):\n%s" % (
                        COMMAND, suites.listing(suites.PROBES)))
    ap.parse_args(argv)
    ap.print_help(sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
