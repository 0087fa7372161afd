"""The engine contract: what both engines provide, and what they may keep.

Two engines implement it: the compiled ``csockserver._cengine`` (built from
``src_c/``) and the pure-Python ``csockserver._pure``.  ``selection``
picks one; the API classes in ``_socketserver`` and ``_prefork`` call
nothing else of it.  ``tests/engine/test_engine_contract.py`` checks that
both export exactly the names below, with the same parameters.

Every call takes the server object itself.  *plan* is a ``plan.Plan``:
which hooks are still the stock ones, so that the engine runs those itself
and calls the Python method for every other one, where socketserver would.

State users can see (``socket``, ``timeout``, ``active_children``,
``_threads``, the shutdown flag) stays on the server, where the engine
reads it.  Its own state an engine keeps in the server's ``__dict__``
under the names in ``ENGINE_STATE``, and under no others.

This module imports nothing of csockserver: every layer may import it.
"""

from typing import Any, Callable, List, Optional, Protocol, Tuple

# -- the server attributes an engine may set ---------------------------------

WORKERS = "_csock_workers"    # {worker thread: busy?}, see workers
POOL = "_csock_pool"          # the handoff WorkerPool of process_request
CREW = "_csock_crew"          # the leader/followers WorkerPool of a loop
REAPER = "_csock_reaper"      # the Reaper watching the server's children

ENGINE_STATE = (WORKERS, POOL, CREW, REAPER)

# Set by the API shell (BaseServer), read by the engines.
STOP = "_csock_stop"          # _BaseServer__shutdown_request's storage
WAKER = "_csock_waker"        # the running loop's Waker, or None


# -- the interface ------------------------------------------------------------

class Waker(Protocol):
    """A wake-up fd: another thread interrupts the serving loop with it."""

    def fileno(self) -> int: ...
    def wake(self) -> None: ...
    def drain(self) -> None: ...
    def close(self) -> None: ...


class Reaper(Protocol):
    """pidfds of one server's children, in one set a loop can wait on."""

    works: bool         # False once pidfds turned out to be missing

    def fileno(self) -> int: ...
    def watch(self, pid: int) -> bool: ...
    def forget(self, pid: int) -> None: ...
    def exited(self, timeout: Optional[float] = 0) -> List[int]: ...
    def covers(self, pids: Any) -> bool: ...
    def close(self) -> None: ...


class Engine(Protocol):
    """The module interface of ``_cengine`` and ``_pure``."""

    Waker: Callable[[], Waker]
    Reaper: Callable[[], Reaper]
    # StreamRequestHandler's compiled files, or None (the pure engine: the
    # handler then gets the standard library's files, see streams).
    SocketReader: Optional[Callable[[Any], Any]]
    socket_writer_write: Optional[Callable[[Any, Any], int]]
    # http.client's header parsing where its result is plain, or None (the
    # pure engine: email.parser parses, see csockserver._headers).
    parse_header_lines: Optional[Callable[[List[bytes], Any], Any]]

    def serve_forever(self, server: Any, plan: Any, fd: int,
                      poll_interval: Optional[float], waker: Waker) -> None:
        """The loop of BaseServer.serve_forever, until ``_csock_stop``."""

    def handle_request(self, server: Any, plan: Any, fd: int,
                       timeout: Optional[float]) -> Any:
        """Wait up to *timeout* for one request; run it or time out."""

    def handle_request_noblock(self, server: Any, plan: Any) -> None:
        """The stock ``_handle_request_noblock``."""

    def accept(self, sock: Any) -> Tuple[Any, Any]:
        """TCPServer's stock get_request: ``sock.accept()``."""

    def recvfrom(self, sock: Any, size: int) -> Tuple[bytes, Any]:
        """UDPServer's stock get_request, without the socket."""

    def start_thread_request(self, server: Any, plan: Any, request: Any,
                             client_address: Any) -> None:
        """ThreadingMixIn's stock process_request."""

    def fork_request(self, server: Any, plan: Any, request: Any,
                     client_address: Any) -> None:
        """ForkingMixIn's stock process_request."""

    def collect_children(self, server: Any, blocking: bool = False) -> None:
        """ForkingMixIn's stock collect_children."""

    def release_reaper(self, server: Any) -> None:
        """Close the server's Reaper once no child is left (server_close)."""

    def fork_process(self) -> int:
        """``os.fork()`` with the interpreter's fork hooks around it."""


ENGINE_NAMES = tuple(sorted(
    set(Engine.__annotations__)
    | {name for name in vars(Engine) if not name.startswith("_")}))
