"""The steps of one request that run wherever it runs (here, in a worker
thread or in a child): finish_request, then shutdown_request and the
close_request it calls, each through the plan.  The twin of
``src_c/requests.pxi``."""

import socket

from .._engine.plan import Kind


def finish_request(server, plan, request, client_address):
    """finish_request: the stock one makes the handler, which does the work."""
    if plan.finish_request == Kind.NEW_HANDLER:
        server.RequestHandlerClass(request, client_address, server)
    else:
        server.finish_request(request, client_address)


def shutdown_request(server, plan, request):
    """shutdown_request (and the close_request it calls)."""
    kind = plan.shutdown_request
    if kind == Kind.PYTHON:
        server.shutdown_request(request)
        return
    if kind == Kind.SHUT_WR_THEN_CLOSE:
        try:
            request.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the peer may already be gone (ENOTCONN)
    close_request(server, plan, request)


def close_request(server, plan, request):
    """close_request."""
    kind = plan.close_request
    if kind == Kind.CLOSE_SOCKET:
        request.close()
    elif kind == Kind.PYTHON:
        server.close_request(request)
