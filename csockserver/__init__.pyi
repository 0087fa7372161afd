# Types for csockserver's public API: socketserver's classes as the running
# interpreter has them, plus what csockserver adds (see the README).
#
# Choices, and why:
# - ``BaseRequestHandler.request`` is ``Any``: a handler derived straight
#   from it may serve a stream server (a socket) or a datagram one (a
#   ``(data, socket)`` pair), and the documented examples use it as either
#   without narrowing.  The two concrete handlers say which one they get:
#   ``StreamRequestHandler.request`` is a socket, and
#   ``DatagramRequestHandler.request`` a ``(bytes, socket)`` pair.
# - A server takes as its handler anything called as
#   ``handler(request, client_address, server)``: a class derived from ours,
#   and also one written for the standard library's servers (``http.server``'s
#   handlers, which ``csockserver.http``'s derive from), since csockserver's
#   servers stand in for those.  The result is ignored, as at run time.
# - ``server_address`` is what the constructor was given until the socket
#   is bound, then ``getsockname()``'s result: a tuple of any length for the
#   IP families (so ``host, port = server.server_address`` checks), a path
#   for the unix ones.
# - Hook arguments (``request``) have socketserver's type, so that code
#   checked against the standard library checks against csockserver too.

import socketserver as _stdlib_socketserver
import sys
import ipaddress
import threading
import types
from _typeshed import ReadableBuffer
from collections.abc import Callable, Iterable
from io import BufferedIOBase, BytesIO
from socket import socket as _Socket
from typing import Any, Literal, NamedTuple, TypeVar

from typing_extensions import Self, TypeAlias

__all__ = [
    "BaseServer",
    "TCPServer",
    "UDPServer",
    "ThreadingUDPServer",
    "ThreadingTCPServer",
    "BaseRequestHandler",
    "StreamRequestHandler",
    "DatagramRequestHandler",
    "ThreadingMixIn",
]
if sys.platform != "win32":
    __all__ += [
        "ForkingUDPServer",
        "ForkingTCPServer",
        "ForkingMixIn",
        "UnixStreamServer",
        "UnixDatagramServer",
        "ThreadingUnixStreamServer",
        "ThreadingUnixDatagramServer",
    ]
    if sys.version_info >= (3, 12):
        __all__ += ["ForkingUnixStreamServer", "ForkingUnixDatagramServer"]

IMPLEMENTATION: Literal["cython", "python"]
VERSION: str
__version__: str  # socketserver's: "0.4" (deprecated from Python 3.15)

def install() -> None: ...
def uninstall() -> None: ...

_IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

class ProxyInfo(NamedTuple):
    """One connection's PROXY protocol header."""

    version: int
    command: Literal["PROXY", "LOCAL"]
    source: Any
    destination: Any
    proxy_address: Any
    tlvs: dict[int, bytes]

def proxy_info(client_address: object) -> ProxyInfo | None: ...

_ServerT = TypeVar("_ServerT")
# What a request is: a connected socket (stream servers) or one datagram
# and the server's socket (datagram servers).
_Request: TypeAlias = _Socket | tuple[bytes, _Socket]
# What a server may be given as RequestHandlerClass (see the top comment).
_HandlerFactory: TypeAlias = (
    Callable[[Any, Any, _ServerT], object]
    | Callable[[Any, Any, _stdlib_socketserver.BaseServer], object]
)
# A peer's address, as the socket module returns it (a tuple for the IP
# families, a str or bytes for AF_UNIX).
_Peer: TypeAlias = Any
# Addresses the constructors accept, per family.
_InetAddress: TypeAlias = tuple[str | bytes | bytearray, int]
_Inet6Address: TypeAlias = tuple[str | bytes | bytearray, int, int, int]
_UnixAddress: TypeAlias = str | ReadableBuffer

class BaseServer:
    timeout: float | None
    # Beyond socketserver: sd_notify from serve_forever() (README's
    # "Running under systemd").
    systemd_notify: bool
    server_address: tuple[Any, ...] | str | bytes
    # Called as (request, client_address, server) by finish_request(), and
    # with extra arguments by subclasses that override it (http.server's
    # own command line passes ``directory=``), so any callable.
    RequestHandlerClass: Callable[..., object]
    # socketserver's private shutdown state, which real code reads and
    # writes; writing True to the flag stops serve_forever() at once.
    _BaseServer__shutdown_request: bool
    _BaseServer__is_shut_down: threading.Event
    def __init__(
        self,
        server_address: tuple[Any, ...] | str | ReadableBuffer,
        RequestHandlerClass: _HandlerFactory[Self],
    ) -> None: ...
    def server_activate(self) -> None: ...
    def serve_forever(self, poll_interval: float = 0.5) -> None: ...
    def shutdown(self) -> None: ...
    def service_actions(self) -> None: ...
    def handle_request(self) -> None: ...
    def _handle_request_noblock(self) -> None: ...
    def handle_timeout(self) -> None: ...
    def verify_request(
        self, request: _Request, client_address: _Peer
    ) -> bool: ...
    def process_request(
        self, request: _Request, client_address: _Peer
    ) -> None: ...
    def server_close(self) -> None: ...
    def finish_request(
        self, request: _Request, client_address: _Peer
    ) -> None: ...
    def shutdown_request(self, request: _Request) -> None: ...
    def close_request(self, request: _Request) -> None: ...
    def handle_error(
        self, request: _Request, client_address: _Peer
    ) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: types.TracebackType | None,
    ) -> None: ...

class TCPServer(BaseServer):
    address_family: int
    socket_type: int
    request_queue_size: int
    allow_reuse_address: bool
    if sys.version_info >= (3, 11):
        allow_reuse_port: bool
    # Beyond socketserver: the PROXY protocol on receive.
    proxy_protocol: Literal["v1", "v2", "any"] | None
    proxy_protocol_timeout: float | None
    proxy_protocol_from: str | Iterable[str | _IPNetwork] | None
    socket: _Socket
    server_address: tuple[Any, ...]
    def __init__(
        self,
        server_address: _InetAddress | _Inet6Address,
        RequestHandlerClass: _HandlerFactory[Self],
        bind_and_activate: bool = True,
    ) -> None: ...
    def server_bind(self) -> None: ...
    def fileno(self) -> int: ...
    def get_request(self) -> tuple[_Socket, _Peer]: ...
    # Beyond socketserver: a server on a socket systemd passed (socket
    # activation); *kwargs* go to the constructor.
    @classmethod
    def from_systemd(
        cls,
        RequestHandlerClass: _HandlerFactory[Self],
        index: int = 0,
        **kwargs: Any,
    ) -> Self: ...

class UDPServer(TCPServer):
    max_packet_size: int
    # A datagram server's request is a (data, socket) pair, not a socket.
    def get_request(  # type: ignore[override]
        self,
    ) -> tuple[tuple[bytes, _Socket], _Peer]: ...

if sys.platform != "win32":
    class UnixStreamServer(TCPServer):
        server_address: str | bytes  # type: ignore[assignment]
        def __init__(
            self,
            server_address: _UnixAddress,
            RequestHandlerClass: _HandlerFactory[Self],
            bind_and_activate: bool = True,
        ) -> None: ...

    class UnixDatagramServer(UDPServer):
        server_address: str | bytes  # type: ignore[assignment]
        def __init__(
            self,
            server_address: _UnixAddress,
            RequestHandlerClass: _HandlerFactory[Self],
            bind_and_activate: bool = True,
        ) -> None: ...

    class ForkingMixIn:
        timeout: float | None
        active_children: set[int] | None
        max_children: int
        block_on_close: bool
        def collect_children(self, *, blocking: bool = False) -> None: ...
        def handle_timeout(self) -> None: ...
        def service_actions(self) -> None: ...
        def process_request(
            self, request: _Request, client_address: _Peer
        ) -> None: ...
        def server_close(self) -> None: ...

class _Threads(list[threading.Thread]):
    def append(self, thread: threading.Thread) -> None: ...
    def pop_all(self) -> list[threading.Thread]: ...
    def join(self) -> None: ...
    def reap(self) -> None: ...

class _NoThreads:
    def append(self, thread: threading.Thread) -> None: ...
    def join(self) -> None: ...

class ThreadingMixIn:
    daemon_threads: bool
    block_on_close: bool
    # Beyond socketserver: bounds on the reused worker threads.
    max_threads: int | None
    max_queued: int | None
    thread_idle_timeout: float | None
    _threads: _Threads | _NoThreads
    def process_request_thread(
        self, request: _Request, client_address: _Peer
    ) -> None: ...
    def process_request(
        self, request: _Request, client_address: _Peer
    ) -> None: ...
    def server_close(self) -> None: ...

if sys.platform != "win32":
    class ForkingUDPServer(ForkingMixIn, UDPServer): ...
    class ForkingTCPServer(ForkingMixIn, TCPServer): ...

class ThreadingUDPServer(ThreadingMixIn, UDPServer): ...
class ThreadingTCPServer(ThreadingMixIn, TCPServer): ...

if sys.platform != "win32":
    class ThreadingUnixStreamServer(ThreadingMixIn, UnixStreamServer): ...
    class ThreadingUnixDatagramServer(ThreadingMixIn, UnixDatagramServer): ...
    if sys.version_info >= (3, 12):
        class ForkingUnixStreamServer(ForkingMixIn, UnixStreamServer): ...
        class ForkingUnixDatagramServer(ForkingMixIn, UnixDatagramServer): ...

class PreforkMixIn:
    # Worker processes serve_forever() forks; None is one per usable CPU.
    processes: int | None
    worker_pids: frozenset[int]
    # The lifecycle (see the README's "Prefork lifecycle"): seconds a
    # retiring worker has to finish; recycling after about max_requests
    # (None or 0: never) plus up to max_requests_jitter; per-worker
    # SO_REUSEPORT listeners; True in a worker told to stop.
    graceful_timeout: float
    max_requests: int | None
    max_requests_jitter: int
    reuse_port_per_worker: bool
    retiring: bool
    def serve_forever(self, poll_interval: float = 0.5) -> None: ...
    def server_bind(self) -> None: ...

class PreforkTCPServer(PreforkMixIn, TCPServer): ...
class PreforkUDPServer(PreforkMixIn, UDPServer): ...
class PreforkThreadingTCPServer(PreforkMixIn, ThreadingMixIn, TCPServer): ...

class BaseRequestHandler:
    request: Any  # see the top comment
    client_address: _Peer
    server: BaseServer
    def __init__(
        self,
        request: _Request,
        client_address: _Peer,
        server: BaseServer,
    ) -> None: ...
    def setup(self) -> None: ...
    def handle(self) -> None: ...
    def finish(self) -> None: ...

class StreamRequestHandler(BaseRequestHandler):
    request: _Socket
    connection: _Socket
    rbufsize: int
    wbufsize: int
    timeout: float | None
    # Beyond socketserver: seconds after setup() by which every read from
    # rfile must be done (see the README's "Slow clients").
    read_deadline: float | None
    # True by default, unlike socketserver (see the README).
    disable_nagle_algorithm: bool
    rfile: BufferedIOBase
    wfile: BufferedIOBase

class DatagramRequestHandler(BaseRequestHandler):
    request: tuple[bytes, _Socket]
    packet: bytes
    socket: _Socket
    rfile: BytesIO
    wfile: BytesIO

class _SocketWriter(BufferedIOBase):
    def __init__(self, sock: _Socket) -> None: ...
    def writable(self) -> bool: ...
    def write(self, b: ReadableBuffer) -> int: ...
    def fileno(self) -> int: ...
