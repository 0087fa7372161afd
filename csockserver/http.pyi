# Types for csockserver.http: http.server's servers built on csockserver's
# classes, and http.server's handlers with csockserver's files (they stay
# subclasses of http.server's handlers, so they are typed as those).

import http.server as _stdlib_http
import sys

from typing_extensions import deprecated

from . import ThreadingMixIn, TCPServer

__all__ = [
    "HTTPServer",
    "ThreadingHTTPServer",
    "BaseHTTPRequestHandler",
    "SimpleHTTPRequestHandler",
]
if sys.version_info < (3, 15):
    __all__ += ["CGIHTTPRequestHandler"]

class HTTPServer(TCPServer):
    # Beyond http.server: TCP_NODELAY on the listening socket, hence on
    # every connection accepted from it.
    disable_nagle_algorithm: bool
    server_name: str
    server_port: int

class ThreadingHTTPServer(ThreadingMixIn, HTTPServer): ...

# Beyond http.server, on each handler: the deadlines for slow clients, all
# None by default (see the README's "Slow clients").
class BaseHTTPRequestHandler(_stdlib_http.BaseHTTPRequestHandler):
    read_deadline: float | None
    request_timeout: float | None
    keepalive_timeout: float | None

class SimpleHTTPRequestHandler(_stdlib_http.SimpleHTTPRequestHandler):
    read_deadline: float | None
    request_timeout: float | None
    keepalive_timeout: float | None

if sys.version_info < (3, 15):
    # Marked as typeshed marks http.server's (which warns on use from
    # Python 3.13 and is gone in 3.15).
    @deprecated("Deprecated in Python 3.13, removed in 3.15")
    class CGIHTTPRequestHandler(
        _stdlib_http.CGIHTTPRequestHandler,  # type: ignore[deprecated,unused-ignore]
    ):
        read_deadline: float | None
        request_timeout: float | None
        keepalive_timeout: float | None

def main() -> None: ...
