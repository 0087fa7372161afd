"""The standard library's socketserver, with a compiled engine.

csockserver has the classes, attributes, hooks and call order of the
running Python's socketserver, so servers and handlers written for it work
unchanged; the waiting, accepting and receiving run in compiled code.
Change one line:

    import csockserver as socketserver

``__all__`` is socketserver's, so the lists help() makes below show only
socketserver's names.  What csockserver adds, all of it off (or as
socketserver has it) until used; help(csockserver.<name>) for each:

Classes, functions, modules
  PreforkMixIn                serve_forever() in supervised worker
                              processes sharing the socket (one per CPU)
  PreforkTCPServer            TCPServer with PreforkMixIn
  PreforkUDPServer            UDPServer with PreforkMixIn
  PreforkThreadingTCPServer   ThreadingTCPServer with PreforkMixIn
  ProxyInfo                   one connection's PROXY protocol header
  proxy_info(client_address)  that header for a request, or None
  install(), uninstall()      make ``import socketserver`` give
                              csockserver from now on; undo it
  csockserver.http            http.server's servers and handlers on
                              csockserver, with deadlines for slow clients

Module data
  IMPLEMENTATION              the engine running: "cython" (compiled) or
                              "python" (its pure-Python twin)
  VERSION                     csockserver's version (``__version__`` is
                              socketserver's)

Class attributes (their defaults are in each class's help)
  ThreadingMixIn.max_threads           at most this many handler threads
  ThreadingMixIn.max_queued            at most this many requests waiting
                                       for a thread
  ThreadingMixIn.thread_idle_timeout   seconds before an idle thread retires
  StreamRequestHandler.read_deadline   seconds for all of a connection's
                                       reading
  TCPServer.proxy_protocol             expect a PROXY header ("v1", "v2",
                                       "any") from a load balancer
  TCPServer.proxy_protocol_from        the peers allowed to send one
  TCPServer.proxy_protocol_timeout     seconds the header may take
  BaseServer.systemd_notify            tell systemd READY=1, STOPPING=1 and
                                       watchdog pings (sd_notify)
  TCPServer.from_systemd()             a server on a socket systemd passed
                                       (socket activation)
  PreforkMixIn.processes, graceful_timeout, max_requests,
    max_requests_jitter, reuse_port_per_worker, worker_pids, retiring;
    SIGHUP reloads the workers, SIGTTIN/SIGTTOU add or remove one

Defaults that differ from socketserver's: ``request_queue_size`` is
``socket.SOMAXCONN`` (not 5), and ``StreamRequestHandler``'s
``disable_nagle_algorithm`` is True.  CSOCKSERVER_NO_EXTENSIONS=1 in the
environment forces the pure-Python engine; CSOCKSERVER_REQUIRE_EXTENSIONS=1
makes a missing compiled engine an ImportError.

More in the source repository: docs/guide.md (how to use each of these)
and docs/reference.md (every addition, its default and the Python versions
it applies to).  ``python -m csockserver`` runs a small demo server.
"""

from ._engine.selection import IMPLEMENTATION  # noqa: F401  (public)
from ._socketserver import *  # noqa: F401,F403  (the public API)
from ._socketserver import __all__, _SocketWriter, _Threads, _NoThreads  # noqa: F401
from ._standin import install, uninstall  # noqa: F401
# Beyond socketserver (not in __all__, which stays socketserver's):
from ._prefork import (PreforkMixIn, PreforkTCPServer,  # noqa: F401
                       PreforkThreadingTCPServer, PreforkUDPServer)
from ._proxy import ProxyInfo, proxy_info  # noqa: F401

from ._socketserver import _VERSION_DEPRECATED
# csockserver's own version.  ``__version__`` is socketserver's, as in the
# module this one stands in for.
from ._version import __version__ as VERSION  # noqa: F401

_SOCKETSERVER_VERSION = "0.4"

if not _VERSION_DEPRECATED:
    __version__ = _SOCKETSERVER_VERSION
else:
    def __getattr__(name):
        """socketserver's deprecated ``__version__``, with its warning."""
        if name == "__version__":
            import warnings
            # The interpreter's own helper words the warning as its
            # socketserver does, and points it at our caller.
            deprecated = getattr(warnings, "_deprecated", None)
            if deprecated is not None:
                deprecated("__version__", remove=(3, 20))
            else:
                warnings.warn("'__version__' is deprecated and slated for"
                              " removal in Python 3.20", DeprecationWarning,
                              stacklevel=2)
            return _SOCKETSERVER_VERSION
        raise AttributeError("module {!r} has no attribute {!r}".format(
            __name__, name))
