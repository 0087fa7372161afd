"""The engine in plain Python: the executable spec of the compiled one.

It implements the interface of ``csockserver._engine.contract.Engine``,
file for file the twin of ``src_c/``:

- ``util``:      small helpers of the waits (``src_c/util.pxi``);
- ``waker``:     the wake-up fd of a wait (``waker.pxi``);
- ``transport``: accept/recvfrom (``transport.pxi``);
- ``requests``:  one request's finish/shutdown/close steps (``requests.pxi``);
- ``proxy``:     the PROXY protocol header of a new connection (``proxy.pxi``);
- ``threads``:   ThreadingMixIn's worker threads (``threads.pxi``);
- ``fork``:      ForkingMixIn's children and their Reaper (``fork.pxi``);
- ``loop``:      the serving loops (``loop.pxi``).

Each module imports only those above it in this list.  Two fragments of
the compiled engine have no twin: ``plan.pxi`` (this engine reads the
plan as it is) and ``streams.pxi`` (without the compiled engine, stream
handlers get the standard library's files).
"""

from .fork import Reaper, children, fork_process, fork_request
from .loop import handle_request, handle_request_noblock, serve_forever
from .threads import start_thread_request
from .transport import accept, recvfrom
from .waker import Waker

collect_children = children.collect_children
release_reaper = children.release_reaper
SocketReader = None
socket_writer_write = None
# http.client parses headers with email.parser, as without csockserver.
parse_header_lines = None

__all__ = ["Reaper", "SocketReader", "Waker", "accept", "collect_children",
           "fork_process", "fork_request", "handle_request",
           "handle_request_noblock", "recvfrom", "release_reaper",
           "parse_header_lines", "serve_forever", "socket_writer_write",
           "start_thread_request"]
