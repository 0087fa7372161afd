"""Which hooks of a server are the stock ones: the engine's plan.

This is the one place that decides when the engine may take its own fast
path for a hook and when it must call the Python method.  A hook is stock
when the class attribute found through the MRO is our own function and the
instance does not shadow it.  Anything else - an override in a subclass, a
function set on the instance, a socket we do not know how to drive - makes
the engine call the Python method, exactly where socketserver calls it.

Kinds are small ints so the compiled engine can switch on them cheaply.
"""

import socket

import _socket

# Each hook is either PYTHON (call the method) or one of the stock kinds.
PYTHON = 0
# get_request
ACCEPT = 1        # TCPServer.get_request on a plain socket.socket
RECVFROM = 2      # UDPServer.get_request on a plain socket.socket
# verify_request, process_request, finish_request, _handle_request_noblock,
# service_actions, handle_timeout, process_request_thread, collect_children
STOCK = 1
# process_request: the mix-ins' stock ones
THREAD = 2        # ThreadingMixIn's: run it on a worker thread
FORK = 3          # ForkingMixIn's: run it in a child process
# service_actions
REAP = 2          # ForkingMixIn's, with the stock collect_children
# shutdown_request
SHUT_WR_THEN_CLOSE = 1   # TCPServer's: shutdown(SHUT_WR), then close_request
CLOSE_ONLY = 2           # BaseServer's and UDPServer's: close_request
# close_request
CLOSE = 1         # TCPServer's: request.close()
NOTHING = 2       # BaseServer's and UDPServer's

# Address families whose addresses the compiled engine can decode itself.
FAST_FAMILIES = frozenset(
    getattr(socket, name) for name in ("AF_INET", "AF_INET6", "AF_UNIX")
    if hasattr(socket, name))

# socket.socket.family builds an enum on every read; this is the raw int.
_raw_family = _socket.socket.family.__get__

_HOOK_NAMES = frozenset((
    "get_request", "verify_request", "process_request", "finish_request",
    "shutdown_request", "close_request", "service_actions", "handle_timeout",
    "_handle_request_noblock", "process_request_thread", "collect_children",
))


class Plan:
    """What the engine may do itself for one server, fixed when serving starts."""

    __slots__ = ("get_request", "verify_request", "process_request",
                 "finish_request", "shutdown_request", "close_request",
                 "service_actions", "handle_timeout", "handle_request_noblock",
                 "process_request_thread", "collect_children", "socket")

    def __repr__(self):
        fields = ", ".join("{}={!r}".format(name, getattr(self, name))
                           for name in self.__slots__)
        return "Plan({})".format(fields)


def _stock_tables():
    """Pairs of (hook name, {our stock function: its kind}), plan field order."""
    from . import _socketserver as api
    return (
        ("get_request", {api.TCPServer.get_request: ACCEPT,
                         api.UDPServer.get_request: RECVFROM}),
        ("verify_request", {api.BaseServer.verify_request: STOCK}),
        ("process_request", dict(
            [(api.BaseServer.process_request, STOCK),
             (api.ThreadingMixIn.process_request, THREAD)]
            + _forking(api, "process_request", FORK))),
        ("finish_request", {api.BaseServer.finish_request: STOCK}),
        ("shutdown_request", {
            api.TCPServer.shutdown_request: SHUT_WR_THEN_CLOSE,
            api.BaseServer.shutdown_request: CLOSE_ONLY,
            api.UDPServer.shutdown_request: CLOSE_ONLY}),
        ("close_request", {api.TCPServer.close_request: CLOSE,
                           api.BaseServer.close_request: NOTHING,
                           api.UDPServer.close_request: NOTHING}),
        ("service_actions", dict(
            [(api.BaseServer.service_actions, STOCK)]
            + _forking(api, "service_actions", REAP))),
        ("handle_timeout", {api.BaseServer.handle_timeout: STOCK}),
        ("_handle_request_noblock", {
            api.BaseServer._handle_request_noblock: STOCK}),
        ("process_request_thread", {
            api.ThreadingMixIn.process_request_thread: STOCK}),
        ("collect_children", dict(_forking(api, "collect_children", STOCK))),
    )


def _forking(api, name, kind):
    """[(ForkingMixIn's stock *name*, kind)], or [] where there is no fork."""
    mixin = getattr(api, "ForkingMixIn", None)
    return [] if mixin is None else [(getattr(mixin, name), kind)]


_TABLES = None


def record_stock_hooks():
    """Remember our own hook functions; called once, when the API module
    has just defined them, so that a hook patched onto our classes later
    (even before the first request) is never mistaken for a stock one."""
    global _TABLES
    _TABLES = _stock_tables()
    assert {name for name, _ in _TABLES} == _HOOK_NAMES


def make_plan(server):
    """Work out, for *server* as it is now, which hooks the engine may run.

    Called each time serving starts (every handle_request() too), so class
    attributes patched between calls are seen; it costs about 1.5 µs.
    """
    cls = type(server)
    shadowed = vars(server).keys() & _HOOK_NAMES
    kinds = [PYTHON if name in shadowed
             else table.get(getattr(cls, name, None), PYTHON)
             for name, table in _TABLES]
    plan = Plan()
    (get_request, plan.verify_request, plan.process_request,
     plan.finish_request, plan.shutdown_request, plan.close_request,
     plan.service_actions, plan.handle_timeout,
     plan.handle_request_noblock, plan.process_request_thread,
     plan.collect_children) = kinds
    # ForkingMixIn's service_actions only calls collect_children: the engine
    # may reap itself only while that one is ours too.
    if plan.service_actions == REAP and plan.collect_children != STOCK:
        plan.service_actions = PYTHON
    sock = getattr(server, "socket", None)
    # The fast accept/recvfrom only drives a plain socket.socket of a family
    # it can decode; an SSLSocket or anything else goes through its methods.
    if (get_request != PYTHON and type(sock) is socket.socket
            and _raw_family(sock) in FAST_FAMILIES):
        plan.get_request = get_request
        plan.socket = sock
    else:
        plan.get_request = PYTHON
        plan.socket = None
    return plan
