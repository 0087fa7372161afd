"""The public classes of csockserver: socketserver's API, class for class.

Class tree (the same as the standard library's)::

    BaseServer
     +-- TCPServer -------------- UnixStreamServer
          +-- UDPServer --------- UnixDatagramServer

    ThreadingMixIn / ForkingMixIn combine with any of the four, giving
    ThreadingTCPServer, ForkingUDPServer, ThreadingUnixStreamServer, ...

    BaseRequestHandler
     +-- StreamRequestHandler      (self.rfile / self.wfile over a connection)
     +-- DatagramRequestHandler    (self.rfile / self.wfile over one packet)

Every hook below is a plain method with a plain Python body, so subclasses
override and call ``super()`` exactly as with the standard library.  The
waiting and the per-request bookkeeping are done by the engine (compiled, or
its pure-Python twin, both behind the interface in ``_engine.contract``);
``_plan.make_plan`` tells it which hooks are still the stock ones, and it
calls Python for every hook that is not.
"""

import importlib.machinery
import os
import socket
import sys
import threading
import time

from . import _proxy, _systemd
from ._engine import plan as _plan, streams as _streams
from ._engine import selection as _selection
from ._engine.contract import STOP, WAKER
from ._engine.streams import _SocketWriter  # noqa: F401  (socketserver's)
from ._engine.workers import _NoThreads, _Threads, close_threads

__all__ = ["BaseServer", "TCPServer", "UDPServer",
           "ThreadingUDPServer", "ThreadingTCPServer",
           "BaseRequestHandler", "StreamRequestHandler",
           "DatagramRequestHandler", "ThreadingMixIn"]
_HAVE_FORK = hasattr(os, "fork")
_HAVE_UNIX = hasattr(socket, "AF_UNIX")
# Names whose presence follows the running interpreter's socketserver.
_HAVE_REUSE_PORT_ATTR = sys.version_info >= (3, 11)
_HAVE_FORKING_UNIX = sys.version_info >= (3, 12)


def _stdlib_code():
    """The code of the interpreter's own socketserver module, loaded (from
    its .pyc or source) but not run; None if it cannot be found."""
    stdlib = os.path.dirname(os.__file__)
    try:
        spec = importlib.machinery.PathFinder.find_spec("socketserver",
                                                        [stdlib])
        return spec.loader.get_code("socketserver")
    except Exception:   # no source, no bytecode: fall back to versions
        return None


def _names_of(code, function):
    """The global and attribute names that *function* (defined anywhere in
    *code*) uses, or None if it is not there."""
    for const in code.co_consts:
        if hasattr(const, "co_names"):
            if const.co_name == function:
                return const.co_names
            found = _names_of(const, function)
            if found is not None:
                return found
    return None


def _follow_stdlib():
    """Behaviours that changed within a release series, read from the
    running interpreter's socketserver rather than guessed from its version
    (a bug-fix release can bring them)."""
    code = _stdlib_code()
    bind_names = code and _names_of(code, "server_bind")
    if bind_names is None:
        reuse_port_inet_only = sys.version_info >= (3, 14)
    else:
        reuse_port_inet_only = "AF_INET6" in bind_names
    if code is None:
        version_deprecated = sys.version_info >= (3, 15)
    else:
        version_deprecated = "__getattr__" in code.co_names
    return reuse_port_inet_only, version_deprecated


# SO_REUSEPORT only for AF_INET/AF_INET6 sockets (3.14, and bug-fix releases
# of earlier series): Linux 6.12.9 and later refuse it on the others.
# socketserver.__version__ deprecated, through a module __getattr__ (3.15).
_REUSE_PORT_INET_ONLY, _VERSION_DEPRECATED = _follow_stdlib()

if _HAVE_FORK:
    __all__ += ["ForkingUDPServer", "ForkingTCPServer", "ForkingMixIn"]
if _HAVE_UNIX:
    __all__ += ["UnixStreamServer", "UnixDatagramServer",
                "ThreadingUnixStreamServer", "ThreadingUnixDatagramServer"]
    if _HAVE_FORK and _HAVE_FORKING_UNIX:
        __all__ += ["ForkingUnixStreamServer", "ForkingUnixDatagramServer"]

# handle_error's banner changed wording in 3.9; follow the interpreter.
_ERROR_BANNER = ("Exception happened during processing of request from"
                 if sys.version_info < (3, 9) else
                 "Exception occurred during processing of request from")


def _fd_of(obj):
    """The fd to wait on for *obj*, validated the way ``selectors`` does."""
    fd = obj if isinstance(obj, int) else int(obj.fileno())
    if fd < 0:
        raise ValueError("Invalid file descriptor: {}".format(fd))
    return fd


def _serve(server, poll_interval):
    """serve_forever()'s loop: the engine's, with a waker for shutdown()."""
    waker = _selection.engine.Waker()
    server._csock_waker = waker
    try:
        _selection.engine.serve_forever(server, _plan.make_plan(server),
                                        _fd_of(server), poll_interval, waker)
    finally:
        server._csock_waker = None
        waker.close()


def _serve_systemd(server, poll_interval):
    """_serve() between READY=1 and STOPPING=1, pinging the watchdog.

    The pings ride on the loop's own wake-ups, so that a loop that hangs
    (in a request it runs itself, say) stops them and systemd restarts the
    service.  While serving, ``service_actions`` is shadowed on the instance
    by one that calls it and then ``Watchdog.tick()``; the engine then calls
    it after every request and, when idle, at least every
    ``Watchdog.wake`` seconds, instead of sleeping until there is work (a
    ThreadingMixIn server then accepts on its loop, not on its workers).
    """
    watchdog = _systemd.Watchdog.from_environment()
    shadowed = vars(server).get("service_actions")
    ticking = None
    if watchdog is not None:
        actions = server.service_actions

        def ticking():
            actions()
            watchdog.tick()
        server.service_actions = ticking
        if poll_interval is None or poll_interval > watchdog.wake:
            poll_interval = watchdog.wake
    _systemd.ready()
    try:
        if watchdog is not None:
            watchdog.tick()
        _serve(server, poll_interval)
    finally:
        _systemd.stopping()
        if ticking is not None and vars(server).get(
                "service_actions") is ticking:
            if shadowed is None:
                del server.service_actions
            else:
                server.service_actions = shadowed


class BaseServer:
    """The server skeleton: the serving loops and the hooks they call.

    Subclasses supply ``get_request``, ``fileno`` and whatever the transport
    needs; users override the hooks (``verify_request``, ``process_request``,
    ``handle_error``, ``service_actions``, ...) as with socketserver.

    Beyond socketserver (a class attribute; set it on a subclass):

    ``systemd_notify = False``
        True: serve_forever() tells systemd how it is doing (sd_notify, to
        the socket ``NOTIFY_SOCKET`` names): READY=1 as it starts serving,
        STOPPING=1 as it returns, and the WATCHDOG=1 pings the unit's
        ``WatchdogSec=`` asks for.  Without ``NOTIFY_SOCKET`` nothing is
        sent; a prefork server's supervisor speaks for its workers.
    """

    timeout = None
    # Beyond socketserver: whether serve_forever() tells systemd (sd_notify)
    # READY=1 once it is serving, STOPPING=1 as it returns, and sends the
    # WATCHDOG=1 pings that WatchdogSec= asks for (see ``_serve_systemd``).
    # A no-op outside systemd (no NOTIFY_SOCKET).
    systemd_notify = False

    # Private state of ours lives under a ``_csock_`` prefix so that it does
    # not collide with attributes of users' subclasses (the engines' own is
    # listed in _engine.contract).
    _csock_stop = False
    _csock_waker = None

    def __init__(self, server_address, RequestHandlerClass):
        """Remember the address and handler class; nothing is bound here."""
        self.server_address = server_address
        self.RequestHandlerClass = RequestHandlerClass
        self.__is_shut_down = threading.Event()
        self.__shutdown_request = False

    # Real code reads and writes ``_BaseServer__shutdown_request`` to stop a
    # loop without waiting for it.  It is a property so that such a write
    # also wakes the engine at once, as shutdown() does.
    def _get_shutdown_request(self):
        return self._csock_stop

    def _set_shutdown_request(self, value):
        self._csock_stop = value
        waker = self._csock_waker
        if value and waker is not None:
            waker.wake()

    __shutdown_request = property(_get_shutdown_request,
                                  _set_shutdown_request)
    del _get_shutdown_request, _set_shutdown_request

    def server_activate(self):
        """Called by the constructor after binding; may be overridden."""
        pass

    def serve_forever(self, poll_interval=0.5):
        """Handle requests until shutdown() is called.

        Unlike the standard library, the loop does not wake every
        *poll_interval* seconds while idle; shutdown() wakes it at once.
        *poll_interval* still bounds how long ``service_actions`` waits when
        a subclass overrides it.
        """
        self.__is_shut_down.clear()
        try:
            # A prefork worker leaves systemd to its supervisor.
            parent = getattr(self, "_csock_prefork_parent", None)
            if self.systemd_notify and parent in (None, os.getpid()):
                _serve_systemd(self, poll_interval)
            else:
                _serve(self, poll_interval)
        finally:
            self.__shutdown_request = False
            self.__is_shut_down.set()

    def shutdown(self):
        """Stop serve_forever() and wait until it has returned.

        Must be called from another thread than the one serving, or it
        deadlocks, as in the standard library.
        """
        self.__shutdown_request = True
        self.__is_shut_down.wait()

    def service_actions(self):
        """Called by serve_forever() after each request and each idle wake.

        May be overridden; the stock one does nothing, and while it is not
        overridden the loop sleeps until there is work.
        """
        pass

    def handle_request(self):
        """Wait for and handle one request, honouring ``self.timeout``.

        The effective timeout is the smaller of ``self.timeout`` and the
        socket's own timeout; when it expires, ``handle_timeout`` is called.
        """
        timeout = self.socket.gettimeout()
        if timeout is None:
            timeout = self.timeout
        elif self.timeout is not None:
            timeout = min(timeout, self.timeout)
        return _selection.engine.handle_request(
            self, _plan.make_plan(self), _fd_of(self), timeout)

    def _handle_request_noblock(self):
        """Take one ready request and run it through verify and process.

        Called by the serving loops once the socket is readable; it is a
        private name, but subclasses do override it.
        """
        return _selection.engine.handle_request_noblock(
            self, _plan.make_plan(self))

    def handle_timeout(self):
        """Called by handle_request() when its timeout expires."""
        pass

    def verify_request(self, request, client_address):
        """Return False to refuse a request; the stock one accepts all."""
        return True

    def process_request(self, request, client_address):
        """Run the request to completion in this thread, then shut it down.

        The mix-ins override this to use a thread or a child process.
        """
        self.finish_request(request, client_address)
        self.shutdown_request(request)

    def server_close(self):
        """Release the server's resources; may be overridden."""
        pass

    def finish_request(self, request, client_address):
        """Instantiate RequestHandlerClass, which does the actual work."""
        self.RequestHandlerClass(request, client_address, self)

    def shutdown_request(self, request):
        """End one request: the transport's goodbye, then close_request."""
        self.close_request(request)

    def close_request(self, request):
        """Release one request's resources; may be overridden."""
        pass

    def handle_error(self, request, client_address):
        """Report a handler's exception on stderr and carry on serving.

        Called from inside the ``except`` clause, so the traceback printed is
        the one being handled.  May be overridden.
        """
        print('-' * 40, file=sys.stderr)
        print(_ERROR_BANNER, client_address, file=sys.stderr)
        import traceback
        traceback.print_exc()
        print('-' * 40, file=sys.stderr)

    def __enter__(self):
        return self

    def __exit__(self, *args):
        self.server_close()


class TCPServer(BaseServer):
    """A server on a stream socket (TCP by default).

    ``request_queue_size`` defaults to ``socket.SOMAXCONN`` rather than
    socketserver's 5, so that bursts of clients are not left waiting on SYN
    retransmits; set it on a subclass to get the old value.

    Beyond socketserver (class attributes, off by default; the PROXY
    protocol is for stream servers, and a datagram server with
    ``proxy_protocol`` set raises ValueError when serving starts):

    ``proxy_protocol = None``
        "v1", "v2" or "any": each connection must start with a PROXY
        protocol header of that version (sent by a load balancer), and the
        client it names becomes the request's ``client_address``;
        ``csockserver.proxy_info(client_address)`` returns the whole header.
        A connection without a valid header is closed before any other
        hook sees it, and the server goes on serving.
    ``proxy_protocol_from = None``
        Who may send the header: an IP network or address
        (``"10.0.0.0/8"``, ``"127.0.0.1"``) or an iterable of them; None
        allows any peer.  Connections from elsewhere are closed.
        Unix-socket peers are always allowed.
    ``proxy_protocol_timeout = 3.0``
        Seconds the header may take to arrive (None: no limit); a
        connection that takes longer is closed.
    ``from_systemd(RequestHandlerClass, index=0, **kwargs)``
        A class method: the server built on a socket systemd passed to the
        process (socket activation) instead of one it binds itself.
    """

    address_family = socket.AF_INET
    socket_type = socket.SOCK_STREAM
    request_queue_size = socket.SOMAXCONN
    allow_reuse_address = False
    if _HAVE_REUSE_PORT_ATTR:
        allow_reuse_port = False
    # Beyond socketserver (see csockserver._proxy): None, "v1", "v2" or
    # "any" makes every connection start with a PROXY header, whose client
    # address becomes the request's.  The header must come within
    # proxy_protocol_timeout seconds, from a peer in proxy_protocol_from
    # (IP networks; None allows any), else the connection is closed.
    proxy_protocol = None
    proxy_protocol_timeout = _proxy.DEFAULT_TIMEOUT
    proxy_protocol_from = None

    def __init__(self, server_address, RequestHandlerClass,
                 bind_and_activate=True):
        """Create the socket and, unless told not to, bind and listen."""
        BaseServer.__init__(self, server_address, RequestHandlerClass)
        self.socket = socket.socket(self.address_family, self.socket_type)
        if bind_and_activate:
            try:
                self.server_bind()
                self.server_activate()
            except:
                self.server_close()
                raise

    # True on a server from_systemd() made: its socket came bound.
    _csock_inherited = False

    @classmethod
    def from_systemd(cls, RequestHandlerClass, index=0, **kwargs):
        """A server on socket *index* of those systemd passed (sd_listen_fds).

        Beyond socketserver.  The constructor runs with
        ``bind_and_activate=False`` (and *kwargs*), then the socket it made
        is replaced by the inherited one, whose own family and type count
        (the type must be the class's: SOCK_STREAM for ``ListenStream=``,
        SOCK_DGRAM for ``ListenDatagram=``).  server_bind() and
        server_activate() are then called as the constructor would, so that
        overrides of them still run: server_bind() does not bind a socket
        that came bound, it only records ``server_address``; the stock
        server_activate() does not listen() again on a socket that listens
        already, so the unit's ``Backlog=`` stays.
        """
        fds = _systemd.listen_fds()
        if not fds:
            raise RuntimeError(
                "systemd passed no socket to this process (pid %d): "
                "LISTEN_FDS and LISTEN_PID are not set for it"
                % os.getpid())
        if not 0 <= index < len(fds):
            raise IndexError("socket index %d, but systemd passed %d"
                             % (index, len(fds)))
        fd, name = fds[index]
        if fd in _systemd.adopted:
            raise RuntimeError("fd %d (%r) from systemd was already taken by "
                               "another server" % (fd, name))
        sock = socket.socket(fileno=fd)
        if sock.type != cls.socket_type:
            sock.detach()  # not ours to close: it stays open for a retry
            raise ValueError(
                "%s needs a %s socket, but fd %d (%r) from systemd is %s"
                % (cls.__name__, socket.SocketKind(cls.socket_type).name,
                   fd, name, sock.type.name))
        # The object starts out believing the fd is in the default mode;
        # make it so (NonBlocking=yes passes it non-blocking).
        sock.settimeout(socket.getdefaulttimeout())
        try:
            server = cls(sock.getsockname(), RequestHandlerClass,
                         bind_and_activate=False, **kwargs)
        except BaseException:
            sock.detach()
            raise
        _systemd.adopted.add(fd)
        server.socket.close()
        server.socket = sock
        server.address_family = sock.family
        server._csock_inherited = True
        try:
            server.server_bind()
            server.server_activate()
        except BaseException:
            server.server_close()
            raise
        return server

    def server_bind(self):
        """Apply the reuse options, bind, and record the bound address.

        A socket from systemd (``from_systemd``) is bound already: only its
        address is recorded.
        """
        if self._csock_inherited:
            self.server_address = self.socket.getsockname()
            return
        if self.allow_reuse_address and hasattr(socket, "SO_REUSEADDR"):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if (getattr(self, "allow_reuse_port", False)
                and hasattr(socket, "SO_REUSEPORT")
                and (not _REUSE_PORT_INET_ONLY or self.address_family
                     in (socket.AF_INET, socket.AF_INET6))):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()

    def server_activate(self):
        """Start listening with a backlog of ``request_queue_size``.

        A socket from systemd that listens already keeps its backlog.
        """
        if self._csock_inherited and self.socket.getsockopt(
                socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            return
        self.socket.listen(self.request_queue_size)

    def server_close(self):
        """Close the listening socket."""
        self.socket.close()

    def fileno(self):
        """The listening socket's fd, which the serving loops wait on."""
        return self.socket.fileno()

    def get_request(self):
        """Accept one connection: return ``(socket, client_address)``."""
        return _selection.engine.accept(self.socket)

    def shutdown_request(self, request):
        """Half-close the connection for writing, then close it."""
        try:
            request.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the peer may already be gone (ENOTCONN)
        self.close_request(request)

    def close_request(self, request):
        """Close the connection's socket."""
        request.close()


class UDPServer(TCPServer):
    """A server on a datagram socket: each datagram is one request.

    The request handed to handlers is the pair ``(data, socket)``.
    """

    allow_reuse_address = False
    if _HAVE_REUSE_PORT_ATTR:
        allow_reuse_port = False
    socket_type = socket.SOCK_DGRAM
    max_packet_size = 8192

    def get_request(self):
        """Receive one datagram (truncated to ``max_packet_size``)."""
        data, client_addr = _selection.engine.recvfrom(
            self.socket, self.max_packet_size)
        return (data, self.socket), client_addr

    def server_activate(self):
        """Datagram sockets do not listen."""
        pass

    def shutdown_request(self, request):
        """Nothing to half-close for a datagram; just close_request."""
        self.close_request(request)

    def close_request(self, request):
        """The socket is shared by all requests: nothing to close."""
        pass


if _HAVE_FORK:
    class ForkingMixIn:
        """Mix-in that handles each request in a child process.

        Children are reaped as soon as they exit, and only the server's own
        children are ever waited for.
        """

        timeout = 300
        active_children = None
        max_children = 40
        # Whether server_close() waits for the children to exit.
        block_on_close = True

        def collect_children(self, *, blocking=False):
            """Reap children that have exited.

            While ``max_children`` are alive, first waits for one of them to
            exit; with *blocking*, waits for all of them.
            """
            _selection.engine.collect_children(self, blocking)

        def handle_timeout(self):
            """Reap children while idle in handle_request()."""
            self.collect_children()

        def service_actions(self):
            """Reap children between requests of serve_forever()."""
            self.collect_children()

        def process_request(self, request, client_address):
            """Fork; the child handles the request and exits (status 0, or 1
            after handle_error), the parent closes its copy of the request."""
            _selection.engine.fork_request(
                self, _plan.make_plan(self), request, client_address)

        def server_close(self):
            """Close the server, then reap (or wait for) the children."""
            super().server_close()
            self.collect_children(blocking=self.block_on_close)
            _selection.engine.release_reaper(self)


class ThreadingMixIn:
    """Mix-in that handles each request on a thread of its own.

    As with socketserver, no request waits for another one to finish: when
    every worker thread is busy, a new one starts at once.  Unlike it, a
    thread that has finished a request is reused for the next one, and
    retires after ``thread_idle_timeout`` seconds without work.  Each
    request starts in a fresh ``contextvars.Context``, as in a new thread;
    ``threading.local`` values of a worker do outlive a request, as in any
    thread pool.

    ``daemon_threads`` and ``block_on_close`` keep socketserver's meaning
    (whether handler threads are daemons; whether server_close() waits for
    the others).

    Beyond socketserver (class attributes; the bounds are off by default):

    ``max_threads = None``
        At most this many worker threads; further requests wait until one
        is free (in the kernel's listen backlog while serve_forever() takes
        connections on the workers, else in a queue).  None: no limit.
    ``max_queued = None``
        With ``max_threads`` set, at most this many accepted requests (at
        least one) wait for a thread: process_request returns only once the
        queue is below it again, so meanwhile the server accepts nothing and
        new connections wait in the kernel's backlog.  None is no limit.
    ``thread_idle_timeout = 10.0``
        Seconds a worker thread waits for another request before it
        retires; None keeps idle workers until server_close().
    """

    # Whether request threads are daemons (server_close() never waits).
    daemon_threads = False
    # Whether server_close() waits for non-daemon request threads.
    block_on_close = True
    _threads = _NoThreads()
    max_threads = None
    max_queued = None
    thread_idle_timeout = 10.0

    def process_request_thread(self, request, client_address):
        """What a request thread runs: finish, report errors, shut down."""
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)

    def process_request(self, request, client_address):
        """Hand the request to a worker thread: an idle one or a new one."""
        if self.block_on_close:
            vars(self).setdefault('_threads', _Threads())
        _selection.engine.start_thread_request(
            self, _plan.make_plan(self), request, client_address)

    def server_close(self):
        """Close the server, stop idle workers, and join the request threads
        that ``block_on_close`` says to wait for."""
        super().server_close()
        close_threads(self)
        self._threads.join()


if _HAVE_FORK:
    class ForkingUDPServer(ForkingMixIn, UDPServer): pass
    class ForkingTCPServer(ForkingMixIn, TCPServer): pass

class ThreadingUDPServer(ThreadingMixIn, UDPServer): pass
class ThreadingTCPServer(ThreadingMixIn, TCPServer): pass

if _HAVE_UNIX:
    class UnixStreamServer(TCPServer):
        address_family = socket.AF_UNIX

    class UnixDatagramServer(UDPServer):
        address_family = socket.AF_UNIX

    class ThreadingUnixStreamServer(ThreadingMixIn, UnixStreamServer): pass
    class ThreadingUnixDatagramServer(ThreadingMixIn, UnixDatagramServer): pass

    if _HAVE_FORK and _HAVE_FORKING_UNIX:
        class ForkingUnixStreamServer(ForkingMixIn, UnixStreamServer): pass
        class ForkingUnixDatagramServer(ForkingMixIn, UnixDatagramServer): pass


class BaseRequestHandler:
    """Base of request handlers: one instance per request.

    The constructor runs ``setup()``, ``handle()`` and, whatever happens,
    ``finish()``.  ``self.request``, ``self.client_address`` and
    ``self.server`` are set before ``setup()``.
    """

    def __init__(self, request, client_address, server):
        self.request = request
        self.client_address = client_address
        self.server = server
        self.setup()
        try:
            self.handle()
        finally:
            self.finish()

    def setup(self):
        """Prepare for handle(); may be overridden."""
        pass

    def handle(self):
        """Serve the request; override this."""
        pass

    def finish(self):
        """Clean up after handle(), even when it raised; may be overridden."""
        pass


class StreamRequestHandler(BaseRequestHandler):
    """Handler for stream connections, with file objects on the socket.

    ``self.rfile`` reads from the connection (buffered by ``rbufsize``) and
    ``self.wfile`` writes to it (unbuffered when ``wbufsize`` is 0).  With
    the stock sizes on a plain socket both are compiled (see _streams).

    Unlike socketserver, ``disable_nagle_algorithm`` defaults to True: TCP
    connections get TCP_NODELAY, so a reply written in several pieces is
    not held back waiting for the client's delayed ACK.  Set it to False to
    keep the kernel's default.

    Beyond socketserver (a class attribute; set it on a subclass):

    ``read_deadline = None``
        Seconds that bound all of a connection's reading, where ``timeout``
        bounds each wait only: every read from ``self.rfile`` must be done
        within that many seconds of setup(), or it raises what a socket
        timeout raises (``socket.timeout``, "timed out"), and the reader
        reads no more.  A client that trickles a byte at a time cannot hold
        the handler past it.  It applies to ``socket.socket`` connections
        (ssl's included); writes are not bounded by it.  None: no deadline.
    """

    rbufsize = _streams.STOCK_RBUFSIZE
    wbufsize = _streams.STOCK_WBUFSIZE
    # A socket timeout for the connection, or None to leave it as accepted.
    timeout = None
    # Seconds after setup() by which all reads must be done, or None.
    read_deadline = None
    disable_nagle_algorithm = True
    # Whether rfile must take a deadline set after setup() (csockserver.http
    # moves it from request to request).
    _csock_movable_deadline = False

    def setup(self):
        self.connection = self.request
        if self.timeout is not None:
            self.connection.settimeout(self.timeout)
        if self.disable_nagle_algorithm:
            _streams.disable_nagle(self.connection)
        deadline = self.read_deadline
        if deadline is not None:
            deadline += time.monotonic()
        self.rfile = _streams.open_reader(self.connection, self.rbufsize,
                                          deadline,
                                          self._csock_movable_deadline)
        self.wfile = _streams.open_writer(self.connection, self.wbufsize)

    def finish(self):
        if not self.wfile.closed:
            try:
                self.wfile.flush()
            except socket.error:
                pass  # the peer went away; nothing left to deliver
        self.wfile.close()
        self.rfile.close()


class DatagramRequestHandler(BaseRequestHandler):
    """Handler for one datagram, read and answered through BytesIO files.

    Whatever was written to ``self.wfile`` is sent back to the client in
    one datagram when the handler finishes.
    """

    def setup(self):
        from io import BytesIO
        self.packet, self.socket = self.request
        self.rfile = BytesIO(self.packet)
        self.wfile = BytesIO()

    def finish(self):
        self.socket.sendto(self.wfile.getvalue(), self.client_address)


_plan.record_stock_hooks(sys.modules[__name__])

# The engines read the stop flag and the waker under _engine.contract's
# names, which BaseServer spells out: the two must agree.
if not {STOP, WAKER} <= vars(BaseServer).keys():
    raise ImportError("BaseServer lacks the attributes _engine.contract "
                      "names: %s, %s" % (STOP, WAKER))
