# The plan, as C reads it, and the steps of one request that run wherever
# it runs (in place, on a worker thread, in a child): finish_request, then
# shutdown_request and the close_request it calls.  Each step runs in C
# when the plan says the hook is stock and calls the Python method when it
# is not.  csockserver/_pure/requests.py is the twin.

# csockserver._engine.plan.Kind, as C constants (checked against it below).
cpdef enum _Kind:
    PYTHON = 0
    ACCEPT = 1
    RECVFROM = 2
    ALLOW = 3
    IN_PLACE = 4
    THREAD = 5
    FORK = 6
    NEW_HANDLER = 7
    SHUT_WR_THEN_CLOSE = 8
    CLOSE_ONLY = 9
    CLOSE_SOCKET = 10
    NO_CLOSE = 11
    NO_ACTIONS = 12
    REAP = 13
    NO_TIMEOUT_ACTION = 14
    TAKE_ONE = 15
    THREAD_BODY = 16
    REAP_OWN = 17

# One field per entry of csockserver._engine.plan.HOOKS, in its order, then the
# plan's SETTINGS (checked below): a Plan's __dict__ converts to it field by
# field.
cdef struct HookPlan:
    int get_request
    int verify_request
    int process_request
    int finish_request
    int shutdown_request
    int close_request
    int service_actions
    int handle_timeout
    int handle_request_noblock
    int process_request_thread
    int collect_children
    int proxy_protocol          # a setting: csockserver._proxy's V1|V2 mask


cdef HookPlan _all_python     # zeroed: every hook PYTHON
if tuple(<dict>_all_python) != _plan.FIELDS:
    raise ImportError("csockserver._cengine's HookPlan does not match "
                      "csockserver._engine.plan.HOOKS: rebuild the extension")
if ({kind.name: kind.value for kind in _Kind}
        != {kind.name: kind.value for kind in _plan.Kind}):
    raise ImportError("csockserver._cengine's kinds do not match "
                      "csockserver._engine.plan.Kind: rebuild the extension")


cdef inline HookPlan _read_plan(plan) except *:
    return plan.__dict__


cdef int _finish(object server, HookPlan *p, object request,
                 object client_address) except -1:
    """finish_request: the stock one makes the handler, which does the work."""
    if p.finish_request == NEW_HANDLER:
        server.RequestHandlerClass(request, client_address, server)
    else:
        server.finish_request(request, client_address)
    return 0


cdef int _close_socket(object request) except -1:
    """request.close(), without its two Python frames for a plain socket.

    socket.socket.close() only marks the socket closed while makefile()
    objects still use it (_io_refs); the last of those closes the fd.
    """
    if type(request) is not SocketType:
        request.close()
        return 0
    request._closed = True
    if request._io_refs <= 0:
        _c_close(request)
    return 0


cdef int _shutdown(object server, HookPlan *p, object request) except -1:
    """shutdown_request (and the close_request it calls)."""
    cdef int fd
    if p.shutdown_request == PYTHON:
        server.shutdown_request(request)
        return 0
    if p.shutdown_request == SHUT_WR_THEN_CLOSE:
        if type(request) is SocketType:
            fd = request.fileno()
            if fd >= 0:
                # Errors are ignored, as the stock hook does.
                c_shutdown(fd, SHUT_WR)
        else:
            try:
                request.shutdown(SHUT_WR)
            except OSError:
                pass
    return _close_request(server, p, request)


cdef int _close_request(object server, HookPlan *p, object request) except -1:
    """close_request."""
    if p.close_request == CLOSE_SOCKET:
        _close_socket(request)
    elif p.close_request == PYTHON:
        server.close_request(request)
    return 0
