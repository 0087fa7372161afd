"""http.server's servers and handlers, running on csockserver.

Use it where you used ``http.server``::

    from csockserver.http import ThreadingHTTPServer, SimpleHTTPRequestHandler

- ``HTTPServer`` and ``ThreadingHTTPServer`` are http.server's two servers
  built from csockserver's classes: the compiled serve loop, reused
  threads.  They turn Nagle's algorithm off for every connection (once, on
  the listening socket, which accepted connections inherit on Linux), so a
  keep-alive reply sent as headers then body is not held back by the
  client's delayed ACK; set ``disable_nagle_algorithm = False`` on the
  server class to keep the kernel's default.
- ``BaseHTTPRequestHandler``, ``SimpleHTTPRequestHandler`` (and
  ``CGIHTTPRequestHandler`` where the interpreter has it) are http.server's
  own handlers with csockserver's ``setup()``/``finish()``: compiled
  ``rfile``/``wfile``.  They remain subclasses of the http.server classes of
  the same name.  Derive your handlers from these to get the compiled files;
  a handler derived straight from ``http.server``'s classes works with these
  servers too, with the standard library's files.

``python -m csockserver.http [options] [port]`` is ``python -m http.server``
(the same options, from the running interpreter) serving on csockserver.
"""

import http.server as _stdlib_http
import socket

from . import _socketserver, _streams

__all__ = ["HTTPServer", "ThreadingHTTPServer", "BaseHTTPRequestHandler",
           "SimpleHTTPRequestHandler"]


class HTTPServer(_socketserver.TCPServer):
    """http.server.HTTPServer on csockserver's TCPServer."""

    allow_reuse_address = 1
    # Beyond http.server: TCP_NODELAY for every connection (see module doc).
    disable_nagle_algorithm = True

    def server_bind(self):
        """Bind, then record the server's name and port as http.server does."""
        _socketserver.TCPServer.server_bind(self)
        if self.disable_nagle_algorithm:
            _streams.disable_nagle(self.socket)
        host, port = self.server_address[:2]
        self.server_name = socket.getfqdn(host)
        self.server_port = port


class ThreadingHTTPServer(_socketserver.ThreadingMixIn, HTTPServer):
    """HTTPServer with a thread per connection (reused between them)."""

    daemon_threads = True


class _CsockserverFiles:
    """csockserver's setup()/finish() for a handler from http.server."""

    disable_nagle_algorithm = True
    # setup() reads these; http.server's classes do not have them.
    read_deadline = None
    _csock_movable_deadline = False
    setup = _socketserver.StreamRequestHandler.setup
    finish = _socketserver.StreamRequestHandler.finish


class BaseHTTPRequestHandler(_CsockserverFiles,
                             _stdlib_http.BaseHTTPRequestHandler):
    __doc__ = _stdlib_http.BaseHTTPRequestHandler.__doc__


class SimpleHTTPRequestHandler(_CsockserverFiles,
                               _stdlib_http.SimpleHTTPRequestHandler):
    __doc__ = _stdlib_http.SimpleHTTPRequestHandler.__doc__


if hasattr(_stdlib_http, "CGIHTTPRequestHandler"):
    class CGIHTTPRequestHandler(_CsockserverFiles,
                                _stdlib_http.CGIHTTPRequestHandler):
        __doc__ = _stdlib_http.CGIHTTPRequestHandler.__doc__

    __all__.append("CGIHTTPRequestHandler")


def main():
    """Run ``python -m http.server``'s command line on csockserver.

    The standard library's own module is executed afresh as ``__main__``
    with csockserver standing in for socketserver, so every option, message
    and default is the running interpreter's.
    """
    import runpy
    from ._standin import install
    install()
    runpy.run_path(_stdlib_http.__file__, run_name="__main__")


if __name__ == "__main__":
    main()
