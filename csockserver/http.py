"""http.server's servers and handlers, running on csockserver.

Use it where you used ``http.server``::

    from csockserver.http import ThreadingHTTPServer, SimpleHTTPRequestHandler

- ``HTTPServer`` and ``ThreadingHTTPServer`` are http.server's two servers
  built from csockserver's classes: the compiled serve loop, reused
  threads; from Python 3.14, ``HTTPSServer`` and ``ThreadingHTTPSServer``
  too (HTTP over TLS, served by the standard library's path).  They turn
  Nagle's algorithm off for every connection (once, on
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

Slow clients (all off by default, when the handlers behave exactly as
http.server's):

- ``request_timeout``: seconds a request's line and headers may take to
  arrive, counted from the connection's start for its first request and
  from the first byte of each later one.  A request begun but not read in
  time is answered ``408 Request Timeout`` and the connection closed; if
  no byte of it came, the connection is closed without a word.
- ``keepalive_timeout``: seconds a keep-alive connection may stay idle
  between requests; then it is closed without a word.  When None, the
  idle time counts towards ``request_timeout`` (if set), as Go's
  net/http does with IdleTimeout and ReadTimeout.
- ``read_deadline``: StreamRequestHandler's, for all of a connection's
  reading (bodies included).

Under ``PreforkMixIn``, a worker that is retiring (a reload, or
``max_requests``) answers the next request on each keep-alive connection
with ``Connection: close`` and then closes it, so that clients move to the
new workers without finding a connection closed under them.

A client that closes or resets its connection before the first byte of a
request (its first, or the next one on a keep-alive connection) ends it
quietly, as nginx and gunicorn do; http.server reports such a reset
through handle_error, traceback and all.  A reset once a request has
begun is reported, as there.

``python -m csockserver.http [options] [port]`` is ``python -m http.server``
(the same options, from the running interpreter) serving on csockserver.
"""

import email.utils
import http.server as _stdlib_http
import socket
import time
from http import HTTPStatus
from time import monotonic

from . import _headers, _socketserver
from ._engine import streams as _streams

# The compiled header parser, for these handlers and every other user of
# http.client.parse_headers in the process: its results are the same.
_headers.place(__name__)

__all__ = ["HTTPServer", "ThreadingHTTPServer", "BaseHTTPRequestHandler",
           "SimpleHTTPRequestHandler"]


class HTTPServer(_socketserver.TCPServer):
    """http.server.HTTPServer on csockserver's TCPServer.

    Beyond http.server:

    ``disable_nagle_algorithm = True``
        TCP_NODELAY on the listening socket, so on every connection it
        accepts; False keeps the kernel's default.
    """

    # The running http.server's values, whatever they are on this Python
    # (allow_reuse_port exists from 3.14).
    allow_reuse_address = _stdlib_http.HTTPServer.allow_reuse_address
    if "allow_reuse_port" in vars(_stdlib_http.HTTPServer):
        allow_reuse_port = _stdlib_http.HTTPServer.allow_reuse_port
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


if hasattr(_stdlib_http, "HTTPSServer"):
    class HTTPSServer(HTTPServer):
        """http.server.HTTPSServer (Python 3.14+) on csockserver: HTTP over
        TLS, the listening socket wrapped once it listens.

        The TLS handshake happens as a connection is accepted, in the
        serving thread, as with http.server; connections are served by the
        standard library's path (csockserver's compiled files and accept
        loop are for plain sockets).
        """

        def __init__(self, server_address, RequestHandlerClass,
                     bind_and_activate=True, *, certfile, keyfile=None,
                     password=None, alpn_protocols=None):
            try:
                import ssl
            except ImportError:
                raise RuntimeError("SSL module is missing; HTTPS support is"
                                   " unavailable") from None
            self.ssl = ssl
            self.certfile = certfile
            self.keyfile = keyfile
            self.password = password
            # HTTP/1.1 is what these handlers speak.
            self.alpn_protocols = (["http/1.1"] if alpn_protocols is None
                                   else alpn_protocols)
            super().__init__(server_address, RequestHandlerClass,
                             bind_and_activate)

        def server_activate(self):
            """Listen, then put TLS over the listening socket."""
            super().server_activate()
            self.socket = self._create_context().wrap_socket(
                self.socket, server_side=True)

        def _create_context(self):
            """The server's TLS context: defaults for serving clients, this
            server's certificate, and its ALPN protocols."""
            ssl = self.ssl
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self.certfile, self.keyfile,
                                    self.password)
            context.set_alpn_protocols(self.alpn_protocols)
            return context

    class ThreadingHTTPSServer(_socketserver.ThreadingMixIn, HTTPSServer):
        """HTTPSServer with a thread per connection (reused between them)."""

        daemon_threads = True

    __all__ += ["HTTPSServer", "ThreadingHTTPSServer"]


# Where handle_one_request() is, while a request deadline applies.
_LINE = "request line"
_HEAD = "headers"
_HANDLING = "handling"


# The last Date header made: (whole second, text).  formatdate() takes the
# time to the microsecond, rounding half to even, so the text is the
# second's own only below its last microsecond.
_date = (None, None)
_LAST_SAFE_FRACTION = 0.999999


def _after(now, seconds):
    return None if seconds is None else now + seconds


def _earliest(a, b):
    """The earlier of two deadlines, where None is no deadline."""
    if a is None:
        return b
    if b is None:
        return a
    return a if a < b else b


class _CsockserverFiles:
    """csockserver's setup()/finish() for a handler from http.server, and
    the deadlines for slow clients (see the module doc)."""

    disable_nagle_algorithm = True
    read_deadline = None
    # Seconds for a request's line and headers, or None.
    request_timeout = None
    # Seconds a keep-alive connection may wait for its next request, or None.
    keepalive_timeout = None
    setup = _socketserver.StreamRequestHandler.setup
    finish = _socketserver.StreamRequestHandler.finish

    # One connection's state, while the deadlines apply.
    _csock_served = 0           # handle_one_request() calls so far
    _csock_holder = None        # what carries rfile's deadline
    _csock_overall = None       # read_deadline's time, or None
    _csock_phase = None         # None, _LINE, _HEAD or _HANDLING

    @property
    def _csock_movable_deadline(self):
        return (self.request_timeout is not None
                or self.keepalive_timeout is not None)

    def date_time_string(self, timestamp=None):
        """http.server's, the current time's text made once per second."""
        global _date
        if timestamp is not None:
            return super().date_time_string(timestamp)
        timestamp = time.time()
        second = int(timestamp)
        if timestamp - second >= _LAST_SAFE_FRACTION:
            return email.utils.formatdate(timestamp, usegmt=True)
        cached_second, text = _date
        if cached_second != second:
            text = email.utils.formatdate(timestamp, usegmt=True)
            _date = (second, text)
        return text

    def end_headers(self):
        """http.server's, saying ``Connection: close`` on a keep-alive
        connection of a retiring prefork worker (reload, max_requests):
        the client then takes its next request to a new connection, which
        a serving worker accepts.  Only a reply can say so: closing after
        a reply that promised keep-alive would race the client's next
        request, so a connection idle when retiring begins gets one more."""
        if (not self.close_connection
                and getattr(self.server, "retiring", False)):
            self.send_header("Connection", "close")
        super().end_headers()

    def handle_one_request(self):
        """http.server's handle_one_request(), within ``request_timeout``
        and ``keepalive_timeout`` when they are set, and without a word
        when the client resets the connection before the request begins."""
        head_limit = self.request_timeout
        idle_limit = self.keepalive_timeout
        holder = None
        if head_limit is not None or idle_limit is not None:
            holder = _streams.deadline_holder(self.rfile)
        if holder is None:  # no deadlines, or a connection that takes none
            if self._csock_request_begins(None):
                super().handle_one_request()
            return
        first = self._csock_served == 0
        self._csock_served += 1
        if first:
            self._csock_holder = holder
            self._csock_overall = holder.deadline
        overall = self._csock_overall
        # Wait for the first byte of the request: on a connection's first
        # request, within request_timeout; later, within keepalive_timeout
        # (or request_timeout without it).
        if not first and idle_limit is None:
            idle_limit = head_limit
        wait_until = _earliest(overall, _after(
            monotonic(), head_limit if first else idle_limit))
        holder.deadline = wait_until
        if not self._csock_request_begins(wait_until):
            holder.deadline = overall
            return
        head_until = wait_until if first else _earliest(
            overall, _after(monotonic(), head_limit))
        holder.deadline = head_until
        self._csock_phase = _LINE
        try:
            super().handle_one_request()
        finally:
            phase, self._csock_phase = self._csock_phase, None
            holder.deadline = overall
        if (phase != _HANDLING and head_limit is not None
                and holder.timed_out):
            self._csock_request_timed_out(phase)

    def _csock_request_begins(self, until):
        """Wait for the first byte of a request, or the connection's end
        (which http.server's handle_one_request() then finds); *until* is
        the wait's deadline, or None.

        False, with the connection to be closed, when no request can come:
        the client reset the connection first, which ends it quietly (as
        nginx and gunicorn do; a reset once a request has begun is still
        reported), or the wait timed out.  An unbuffered rfile without a
        deadline is left to http.server, which reads it byte by byte.
        """
        if until is None and not hasattr(self.rfile, "peek"):
            return True
        try:
            _streams.wait_readable(self.rfile)
        except ConnectionResetError:
            self.close_connection = True
            return False
        except socket.timeout as exc:
            self.close_connection = True
            if until is None or monotonic() < until:
                # The socket's own timeout: what http.server does.
                self.log_error("Request timed out: %r", exc)
            return False
        return True

    def parse_request(self):
        """http.server's parse_request(); the request's deadline is lifted
        once the headers are in, so the method's own reads (a body) are not
        bound by it."""
        if self._csock_phase is None:
            return super().parse_request()
        self._csock_phase = _HEAD
        parsed = super().parse_request()
        self._csock_phase = _HANDLING
        self._csock_holder.deadline = self._csock_overall
        return parsed

    def _csock_request_timed_out(self, phase):
        """Answer 408 to a request whose head did not come in time."""
        if phase == _LINE:
            # No request line to speak of: as http.server before a 414.
            self.requestline = ""
            self.request_version = ""
            self.command = ""
        try:
            self.send_error(HTTPStatus.REQUEST_TIMEOUT)
            self.wfile.flush()
        except OSError:
            pass        # the client has gone: nothing to tell it
        self.close_connection = True


_HANDLER_ADDITIONS = """

csockserver.http adds these class attributes, off by default:

``request_timeout = None``
    Seconds a request's line and headers may take: past it, 408 Request
    Timeout, or a silent close when no byte of the request came.
``keepalive_timeout = None``
    Seconds a keep-alive connection may stay idle between requests.
``read_deadline = None``
    Seconds for all of a connection's reading (StreamRequestHandler's).
"""


def _with_additions(stdlib_class):
    """*stdlib_class*'s docstring, then what csockserver.http adds (under
    -OO there are no docstrings, and none is made up)."""
    if stdlib_class.__doc__ is None:
        return None
    return stdlib_class.__doc__.rstrip() + _HANDLER_ADDITIONS


class BaseHTTPRequestHandler(_CsockserverFiles,
                             _stdlib_http.BaseHTTPRequestHandler):
    __doc__ = _with_additions(_stdlib_http.BaseHTTPRequestHandler)


class SimpleHTTPRequestHandler(_CsockserverFiles,
                               _stdlib_http.SimpleHTTPRequestHandler):
    __doc__ = _with_additions(_stdlib_http.SimpleHTTPRequestHandler)


if hasattr(_stdlib_http, "CGIHTTPRequestHandler"):
    class CGIHTTPRequestHandler(_CsockserverFiles,
                                _stdlib_http.CGIHTTPRequestHandler):
        __doc__ = _with_additions(_stdlib_http.CGIHTTPRequestHandler)

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
