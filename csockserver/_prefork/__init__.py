"""PreforkMixIn: several processes serving one listening socket.

Beyond socketserver.  Python runs one thread of Python at a time per
process; a prefork server uses every core by running ``processes`` copies
of its serving loop in worker processes forked after the socket is bound.
The kernel spreads connections (or datagrams) among the workers.

The parent only supervises: it restarts a worker that dies (after a
growing pause if workers keep dying at once), and on shutdown(), SIGTERM
or Ctrl-C it asks every worker to stop (SIGTERM: a worker finishes its
running requests as server_close() would, then exits) and waits for them.
Combine it with ThreadingMixIn for threads inside each worker::

    class Server(PreforkMixIn, ThreadingMixIn, TCPServer):
        processes = 4

Only serve_forever() is spread over the workers; handle_request() serves in
the calling process, as for any other server.  Workers do not call the
user's server_close() (it may, say, unlink a unix socket path the parent
still serves); that runs in the parent, as usual.

The package: this module holds the public classes; ``supervisor`` is the
parent's side, ``worker`` a worker process's, and ``link`` the pipe
between them.
"""

import os
import socket

from .._socketserver import TCPServer, ThreadingMixIn, UDPServer
from .supervisor import Supervisor


class PreforkMixIn:
    """Mix-in that serves with several worker processes on one socket.

    Beyond socketserver.  serve_forever() forks ``processes`` workers, each
    running the serving loop on the listening socket (bound before the
    fork), and supervises them: a worker that dies is restarted (after a
    growing pause if workers keep dying at once).  Put it first among the
    bases, and combine it with ThreadingMixIn (or ForkingMixIn) for threads
    (or children) inside each worker.  handle_request() serves in the
    calling process; the user's server_close() runs in the supervisor only.

    Class attributes (set them on a subclass):

    ``processes = None``
        How many workers; None: one per CPU this process may run on.
    ``graceful_timeout = 30.0``
        Seconds a retiring worker may take to finish the requests in hand
        (daemon handler threads included) before it is killed: whenever a
        worker retires (reload, recycling, SIGTTOU, shutdown) or its
        supervisor dies.  A worker retired before it began serving has no
        request in hand: it is killed after one second.
    ``max_requests = None``
        A worker retires after about this many requests (a connection, for
        a stream server) and a fresh one replaces it; None or 0: never.
    ``max_requests_jitter = 0``
        Each worker adds a random 0 to this many to ``max_requests``, so
        that workers started together do not all retire at once.
    ``reuse_port_per_worker = False``
        TCP only.  True: every worker but one listens on a socket of its
        own, bound to the same address with SO_REUSEPORT, so the kernel
        spreads connections evenly; the connections waiting on a worker's
        own socket are reset when it exits.  Keep False for reloads that
        drop nothing.

    Read them, do not set them:

    ``worker_pids = frozenset()``
        In the supervisor, while serve_forever() runs: the live workers'
        pids.
    ``retiring = False``
        In a worker: True once it has been told to stop.  A handler that
        keeps a connection open for more requests should close it after
        the one in hand (csockserver.http's handlers do).

    Signals, handled while serve_forever() runs in the main thread:

    - SIGTERM, or shutdown(): every worker is told to stop (SIGTERM: stop
      accepting, finish the requests in hand, exit), then serve_forever()
      returns once they have.  Ctrl-C (SIGINT) does the same on its way
      out of serve_forever(); a second Ctrl-C kills the workers at once.
    - SIGHUP: rolling reload.  A new set of workers starts; once all of
      them serve, the old ones retire, so no connection is refused.
    - SIGTTIN / SIGTTOU: one worker more / one fewer (the oldest retires;
      never below one).

    When the supervisor dies (even by SIGKILL), each worker stops accepting
    at once and exits within ``graceful_timeout``.
    """

    # Number of worker processes; None means one per usable CPU.
    processes = None
    # Seconds a retiring worker may take to finish its requests before it
    # is killed (on reload, shutdown, recycling, or its parent's death).
    graceful_timeout = 30.0
    # In a worker: True once it has been told to stop.  A handler that
    # keeps a connection open for more requests should close it after the
    # one it is serving.
    retiring = False
    # A worker retires after about this many requests (None or 0: never),
    # plus a random 0..max_requests_jitter of its own, so that workers
    # started together do not all retire at once.
    max_requests = None
    max_requests_jitter = 0
    # True: every worker but one listens on a socket of its own, bound
    # beside the shared one with SO_REUSEPORT, and the kernel spreads new
    # connections evenly over them; the price is that the connections
    # queued on a worker's socket are reset when that worker exits.  The
    # one worker left serves the shared socket, whose queue outlives it.
    reuse_port_per_worker = False
    # The live workers' pids, while serve_forever() runs in the parent.
    worker_pids = frozenset()
    _csock_prefork_parent = None   # pid of the supervisor, once serving

    def server_bind(self):
        """Bind as usual, with SO_REUSEPORT first for reuse_port_per_worker
        (the workers' sockets can join only a socket bound with it)."""
        if self.reuse_port_per_worker and hasattr(socket, "SO_REUSEPORT"):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()

    def serve_forever(self, poll_interval=0.5):
        """Fork the workers and supervise them until shutdown()."""
        if self._csock_prefork_parent not in (None, os.getpid()):
            # A worker (forked by us) serving: the plain loop.
            return super().serve_forever(poll_interval)
        supervisor = Supervisor(self, poll_interval)
        is_shut_down = self._BaseServer__is_shut_down
        is_shut_down.clear()
        try:
            supervisor.run()
        finally:
            self._BaseServer__shutdown_request = False
            is_shut_down.set()


class PreforkTCPServer(PreforkMixIn, TCPServer):
    """TCPServer served by PreforkMixIn's worker processes, each handling
    one connection at a time."""


class PreforkUDPServer(PreforkMixIn, UDPServer):
    """UDPServer served by PreforkMixIn's worker processes, which share the
    datagrams that arrive."""


class PreforkThreadingTCPServer(PreforkMixIn, ThreadingMixIn, TCPServer):
    """TCPServer served by PreforkMixIn's worker processes, each with
    ThreadingMixIn's threads: a thread per connection."""
