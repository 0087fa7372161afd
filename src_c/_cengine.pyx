"""csockserver's compiled engine.

It implements ``csockserver._engine.contract.Engine``, as ``csockserver._pure``
does in plain Python (each .pxi here has its twin module there); this one
waits with the GIL released, accepts and receives in C, and runs the stock
hooks without entering Python.  Parts, by concern, each using only those
above it:

- util.pxi:      errors, clocks, timeouts, fd flags;
- waker.pxi:     the wake-up fd of a wait;
- plan.pxi:      the plan as a C struct, checked against the Python one;
- transport.pxi: accept/recvfrom and address decoding;
- requests.pxi:  one request's finish/shutdown/close steps;
- proxy.pxi:     the PROXY protocol header of a new connection;
- threads.pxi:   ThreadingMixIn's worker threads;
- fork.pxi:      ForkingMixIn's children and their Reaper;
- loop.pxi:      the serving loops, verify and dispatch;
- streams.pxi:   StreamRequestHandler's rfile and wfile;
- headers.pxi:   http.client's header parsing, where its result is plain.

What runs once per thread, child or server_close is shared with the pure
engine, in Python (``csockserver._engine``); nothing here imports the pure
engine.
"""

import collections as _collections
import io as _io_module
import socket as _socket
import sys as _sys
import threading as _threading
from os import strerror as _os_strerror
import _socket as _csocket

from csockserver import _proxy
from csockserver._engine import plan as _plan
from csockserver._engine.plan import engine_drives as _engine_drives
from csockserver._engine.children import Children as _Children
from csockserver._engine.contract import (
    CREW as _CREW, POOL as _POOL, STOP as _STOP)
from csockserver._engine.exit import retire_at_exit as _retire_at_exit
from csockserver._engine.timing import (
    BACKOFF_ERRNOS, BACKOFF_FIRST, BACKOFF_MAX, SIGNAL_CHECK_INTERVAL)
from csockserver._engine.workers import (
    _Threads, forget_ended as _forget_ended, workers_of as _workers_of)

# The stdlib names the engine uses on its hot paths, looked up once.
cdef object SocketType = _socket.socket
cdef object _getdefaulttimeout = _socket.getdefaulttimeout
# The C-level descriptors under socket.socket's enum-building properties.
cdef object _c_family = _csocket.socket.__dict__["family"]
cdef object _c_type = _csocket.socket.__dict__["type"]
cdef object _c_proto = _csocket.socket.__dict__["proto"]
cdef object _c_close = _csocket.socket.close
cdef object _Thread = _threading.Thread
cdef object _current_thread = _threading.current_thread
cdef object _Condition = _threading.Condition
cdef object _deque = _collections.deque
cdef object _ProxyHeaderError = _proxy.ProxyHeaderError

# The engine contract's names (csockserver._engine.contract.ENGINE_NAMES); the
# other module-level names are this module's own.
__all__ = ["Reaper", "SocketReader", "Waker", "accept", "collect_children",
           "fork_process", "fork_request", "handle_request",
           "handle_request_noblock", "recvfrom", "release_reaper",
           "parse_header_lines", "serve_forever", "socket_writer_write",
           "start_thread_request"]


include "util.pxi"
include "waker.pxi"
include "plan.pxi"
include "transport.pxi"
include "requests.pxi"
include "proxy.pxi"
include "threads.pxi"
include "fork.pxi"
include "loop.pxi"
include "streams.pxi"
include "headers.pxi"
