"""Which hooks of a server are the stock ones: the engine's plan.

This is the one place that decides when the engine may take its own fast
path for a hook and when it must call the Python method.  A hook is stock
when the class attribute found through the MRO is our own function and the
instance does not shadow it.  Anything else - an override in a subclass, a
function set on the instance, a socket we do not know how to drive - makes
the engine call the Python method, exactly where socketserver calls it.

``HOOKS`` is the one table of hooks: the Plan's fields, the stock tables
and the compiled engine's ``HookPlan`` all follow it (the compiled engine
checks at import that its struct and its kinds agree with this module).
"""

import enum
import socket
from typing import NamedTuple, Tuple

import _socket

from .. import _proxy


class Kind(enum.IntEnum):
    """What the engine does for one hook.  Each stock kind belongs to one
    hook only; PYTHON, for any hook, means: call the Python method."""

    PYTHON = 0
    ACCEPT = 1              # get_request: TCPServer's, sock.accept()
    RECVFROM = 2            # get_request: UDPServer's, sock.recvfrom()
    ALLOW = 3               # verify_request: BaseServer's, always True
    IN_PLACE = 4            # process_request: BaseServer's, finish + shut down
    THREAD = 5              # process_request: ThreadingMixIn's
    FORK = 6                # process_request: ForkingMixIn's
    NEW_HANDLER = 7         # finish_request: BaseServer's, the handler class
    SHUT_WR_THEN_CLOSE = 8  # shutdown_request: TCPServer's
    CLOSE_ONLY = 9          # shutdown_request: BaseServer's and UDPServer's
    CLOSE_SOCKET = 10       # close_request: TCPServer's, request.close()
    NO_CLOSE = 11           # close_request: BaseServer's and UDPServer's
    NO_ACTIONS = 12         # service_actions: BaseServer's, nothing
    REAP = 13               # service_actions: ForkingMixIn's, collect_children
    NO_TIMEOUT_ACTION = 14  # handle_timeout: BaseServer's, nothing
    TAKE_ONE = 15           # _handle_request_noblock: BaseServer's
    THREAD_BODY = 16        # process_request_thread: ThreadingMixIn's
    REAP_OWN = 17           # collect_children: ForkingMixIn's


class Hook(NamedTuple):
    """One overridable hook and the stock implementations the engines run."""

    name: str                        # the method's name on the server
    field: str                       # the Plan's (and HookPlan's) field
    stock: Tuple[Tuple[str, Kind], ...]  # (class defining it, its kind)


HOOKS = (
    Hook("get_request", "get_request",
         (("TCPServer", Kind.ACCEPT), ("UDPServer", Kind.RECVFROM))),
    Hook("verify_request", "verify_request", (("BaseServer", Kind.ALLOW),)),
    Hook("process_request", "process_request",
         (("BaseServer", Kind.IN_PLACE), ("ThreadingMixIn", Kind.THREAD),
          ("ForkingMixIn", Kind.FORK))),
    Hook("finish_request", "finish_request",
         (("BaseServer", Kind.NEW_HANDLER),)),
    Hook("shutdown_request", "shutdown_request",
         (("TCPServer", Kind.SHUT_WR_THEN_CLOSE),
          ("BaseServer", Kind.CLOSE_ONLY), ("UDPServer", Kind.CLOSE_ONLY))),
    Hook("close_request", "close_request",
         (("TCPServer", Kind.CLOSE_SOCKET), ("BaseServer", Kind.NO_CLOSE),
          ("UDPServer", Kind.NO_CLOSE))),
    Hook("service_actions", "service_actions",
         (("BaseServer", Kind.NO_ACTIONS), ("ForkingMixIn", Kind.REAP))),
    Hook("handle_timeout", "handle_timeout",
         (("BaseServer", Kind.NO_TIMEOUT_ACTION),)),
    Hook("_handle_request_noblock", "handle_request_noblock",
         (("BaseServer", Kind.TAKE_ONE),)),
    Hook("process_request_thread", "process_request_thread",
         (("ThreadingMixIn", Kind.THREAD_BODY),)),
    Hook("collect_children", "collect_children",
         (("ForkingMixIn", Kind.REAP_OWN),)),
)

# What the plan holds besides the hooks: settings the engine reads once per
# plan (ints, after the hooks in the compiled HookPlan).
#   proxy_protocol: the PROXY protocol versions taken (_proxy's mask), 0 off
SETTINGS = ("proxy_protocol",)

FIELDS = tuple(hook.field for hook in HOOKS) + SETTINGS

# Address families whose addresses the compiled engine can decode itself.
FAST_FAMILIES = frozenset(
    getattr(socket, name) for name in ("AF_INET", "AF_INET6", "AF_UNIX")
    if hasattr(socket, name))

# socket.socket.family builds an enum on every read; this is the raw int.
_raw_family = _socket.socket.family.__get__


def engine_drives(sock):
    """Whether an engine may accept or receive on *sock* itself, rather
    than through the socket's own methods.  The one place that decides it.

    Only a plain socket.socket of a family the compiled engine can decode,
    blocking or non-blocking: an SSLSocket, a subclass or anything else goes
    through its methods, and a positive timeout needs CPython's timed wait.
    """
    return (type(sock) is socket.socket
            and _raw_family(sock) in FAST_FAMILIES
            and sock.gettimeout() in (None, 0.0))


class Plan:
    """What the engine may do itself for one server, fixed when serving
    starts: one attribute per field of HOOKS, holding a Kind, one per
    SETTINGS, and ``socket``, the listening socket when the engine may
    drive it (else None: see engine_drives).  Its ``__dict__`` is all of
    that, and is what the compiled engine reads."""

    def __repr__(self):
        fields = ", ".join(
            "{}={}".format(field, Kind(getattr(self, field)).name)
            for field in FIELDS if field not in SETTINGS)
        fields += "".join(", {}={}".format(field, getattr(self, field))
                          for field in SETTINGS)
        return "Plan({}, socket={!r})".format(fields, self.socket)


# (hook name, field, {our stock function: its kind}.get), in HOOKS order.
_STOCK = None


def record_stock_hooks(api):
    """Remember our own hook functions, from the API module *api*.

    Called once, when the API module has just defined them, so that a hook
    patched onto our classes later (even before the first request) is
    never mistaken for a stock one.  A class the platform lacks
    (ForkingMixIn without fork) contributes nothing.
    """
    global _STOCK
    _STOCK = tuple(
        (hook.name, hook.field,
         {vars(getattr(api, owner))[hook.name]: kind
          for owner, kind in hook.stock if hasattr(api, owner)}.get)
        for hook in HOOKS)


def make_plan(server):
    """Work out, for *server* as it is now, which hooks the engine may run.

    Called each time serving starts (every handle_request() too, and every
    handoff to a worker thread), so class attributes patched between calls
    are seen; it costs about 2 µs.
    """
    cls = type(server)
    instance = vars(server)
    python = Kind.PYTHON
    kinds = {field: python if name in instance
             else stock_kind(getattr(cls, name, None), python)
             for name, field, stock_kind in _STOCK}
    # ForkingMixIn's service_actions only calls collect_children: the engine
    # may reap itself only while that one is ours too.
    if (kinds["service_actions"] == Kind.REAP
            and kinds["collect_children"] != Kind.REAP_OWN):
        kinds["service_actions"] = python
    sock = getattr(server, "socket", None)
    if kinds["get_request"] == python or not engine_drives(sock):
        kinds["get_request"] = python
        sock = None
    kinds["proxy_protocol"] = _proxy.versions_of(server)
    kinds["socket"] = sock
    plan = Plan()
    plan.__dict__ = kinds
    return plan
