"""Demo: an upper-case echo server.

    python -m csockserver [--threading | --forking] [--host H] [--port P]

Each line a client sends comes back upper-cased, until the client closes or
Ctrl-C stops the server.  Try it with ``nc 127.0.0.1 9999``.
"""

import argparse
import sys

import csockserver


class UpperCaseEcho(csockserver.StreamRequestHandler):
    """Answers every line with the same line in upper case."""

    def handle(self):
        for line in self.rfile:
            self.wfile.write(line.upper())


def _server_class(dispatch):
    if dispatch == "threading":
        base = csockserver.ThreadingTCPServer
    elif dispatch == "forking":
        base = csockserver.ForkingTCPServer
    else:
        base = csockserver.TCPServer
    # Restarting the demo should not fail on a port left in TIME_WAIT.
    return type("Demo" + base.__name__, (base,), {"allow_reuse_address": True})


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m csockserver",
                                     description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--threading", dest="dispatch", action="store_const",
                      const="threading", help="a thread per connection")
    mode.add_argument("--forking", dest="dispatch", action="store_const",
                      const="forking", help="a child process per connection")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9999)
    args = parser.parse_args(argv)

    server_class = _server_class(args.dispatch)
    with server_class((args.host, args.port), UpperCaseEcho) as server:
        host, port = server.server_address[:2]
        print("csockserver {} ({} engine): {} upper-case echo on {}:{};"
              " Ctrl-C to stop".format(csockserver.VERSION,
                                       csockserver.IMPLEMENTATION,
                                       server_class.__bases__[0].__name__,
                                       host, port), flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            print("stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
