"""Demo: an upper-case echo server.

    python -m csockserver [--threading | --forking] [--host H] [--port P]

Each line a client sends comes back upper-cased, until the client closes or
Ctrl-C stops the server.  Try it with ``nc 127.0.0.1 9999``.  The host may
be an IPv6 address (``--host ::1``, or ``--host ::`` for every address);
``--port 0`` takes any free port, and the line printed at start says which.
"""

import argparse
import errno
import os
import signal
import socket
import sys

import csockserver

PROG = "python -m csockserver"


class UpperCaseEcho(csockserver.StreamRequestHandler):
    """Answers every line with the same line in upper case."""

    def handle(self):
        for line in self.rfile:
            self.wfile.write(line.upper())


def _server_class(dispatch, family):
    if dispatch == "threading":
        base = csockserver.ThreadingTCPServer
    elif dispatch == "forking":
        base = csockserver.ForkingTCPServer
    else:
        base = csockserver.TCPServer
    attributes = {
        "address_family": family,
        # Restarting the demo should not fail on a port left in TIME_WAIT.
        "allow_reuse_address": True,
    }
    if dispatch:
        # Ctrl-C stops the demo at once, clients connected or not: it waits
        # neither for handler threads nor for children.
        attributes.update(daemon_threads=True, block_on_close=False)
    return type("Demo" + base.__name__, (base,), attributes)


def _port(text):
    """--port's type: a TCP port number (getaddrinfo would wrap 70000)."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError("%s is not a port (0-65535)" % text)
    return port


def _listen_address(host, port):
    """(family, address to bind) for *host*: IPv6 hosts such as ``::1``
    need an AF_INET6 socket, and a name takes its first address."""
    family, _, _, _, address = socket.getaddrinfo(
        host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0,
        socket.AI_PASSIVE)[0]
    return family, address


def _show(family, address):
    host, port = address[:2]
    return ("[%s]:%d" if family == socket.AF_INET6 else "%s:%d") % (host,
                                                                    port)


def _stop_children(server):
    """End the forking demo's children, each busy with a client."""
    for pid in list(getattr(server, "active_children", None) or ()):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def main(argv=None):
    parser = argparse.ArgumentParser(prog=PROG,
                                     description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--threading", dest="dispatch", action="store_const",
                      const="threading", help="a thread per connection")
    mode.add_argument("--forking", dest="dispatch", action="store_const",
                      const="forking", help="a child process per connection")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on, IPv4 or IPv6 (default"
                             " 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=9999,
                        help="port to listen on; 0 for any free one"
                             " (default 9999)")
    args = parser.parse_args(argv)

    wanted = "%s port %d" % (args.host, args.port)
    try:
        family, address = _listen_address(args.host, args.port)
        wanted = _show(family, address)
        server_class = _server_class(args.dispatch, family)
        server = server_class(address, UpperCaseEcho)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            print("%s: %s is already in use; choose another port with"
                  " --port N (--port 0 takes any free one)" % (PROG, wanted),
                  file=sys.stderr)
        else:
            print("%s: cannot listen on %s: %s" % (
                PROG, wanted, exc.strerror or exc), file=sys.stderr)
        return 1
    with server:
        print("csockserver {} ({} engine): {} upper-case echo on {};"
              " Ctrl-C to stop".format(csockserver.VERSION,
                                       csockserver.IMPLEMENTATION,
                                       server_class.__bases__[0].__name__,
                                       _show(family, server.server_address)),
              flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            _stop_children(server)
            print("stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
