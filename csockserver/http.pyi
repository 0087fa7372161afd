# Types for csockserver.http: http.server's servers built on csockserver's
# classes, and http.server's handlers with csockserver's files (they stay
# subclasses of http.server's handlers, so they are typed as those).

import http.server as _stdlib_http
import sys
from collections.abc import Iterable
from ssl import _PasswordType
from types import ModuleType

from _typeshed import StrOrBytesPath
from typing_extensions import Self, deprecated

from . import ThreadingMixIn, TCPServer
from . import _HandlerFactory, _Inet6Address, _InetAddress

__all__ = [
    "HTTPServer",
    "ThreadingHTTPServer",
    "BaseHTTPRequestHandler",
    "SimpleHTTPRequestHandler",
]
if sys.version_info >= (3, 14):
    __all__ += ["HTTPSServer", "ThreadingHTTPSServer"]
if sys.version_info < (3, 15):
    __all__ += ["CGIHTTPRequestHandler"]

class HTTPServer(TCPServer):
    # Beyond http.server: TCP_NODELAY on the listening socket, hence on
    # every connection accepted from it.
    disable_nagle_algorithm: bool
    server_name: str
    server_port: int

class ThreadingHTTPServer(ThreadingMixIn, HTTPServer): ...

if sys.version_info >= (3, 14):
    class HTTPSServer(HTTPServer):
        ssl: ModuleType
        certfile: StrOrBytesPath
        keyfile: StrOrBytesPath | None
        password: _PasswordType | None
        alpn_protocols: Iterable[str]
        def __init__(
            self,
            server_address: _InetAddress | _Inet6Address,
            RequestHandlerClass: _HandlerFactory[Self],
            bind_and_activate: bool = True,
            *,
            certfile: StrOrBytesPath,
            keyfile: StrOrBytesPath | None = None,
            password: _PasswordType | None = None,
            alpn_protocols: Iterable[str] | None = None,
        ) -> None: ...
        def server_activate(self) -> None: ...

    class ThreadingHTTPSServer(ThreadingMixIn, HTTPSServer): ...

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
