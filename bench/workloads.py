"""What is measured: workloads, and the servers compared on each."""

from collections import namedtuple

# impl: stdlib | csock | installed | naive_pool | naive_lf | asyncio | c
# (installed: the stdlib's code after csockserver.install(), see servers.py)
# engine: for csock and installed, "cython" or "python";
# dispatch: sync|threading|forking
# path: for csock, a directory put first on PYTHONPATH, so that another
# build of csockserver is measured (None: this checkout's).
Server = namedtuple("Server", "label impl dispatch engine path",
                    defaults=(None,))
# server_workload: what bench.servers / echo_epoll serve; mode: loadgen
# mode; note: a paragraph the report prints above the workload's table.
Workload = namedtuple(
    "Workload", "name title server_workload mode family size conns servers"
    " note", defaults=(None,))


def _s(impl, dispatch="", engine=""):
    if impl in ("csock", "installed"):
        label = "%s-%s %s" % (impl, "c" if engine == "cython" else "py",
                              dispatch)
    elif impl == "stdlib":
        label = "stdlib %s" % dispatch
    else:
        label = impl
    return Server(label, impl, dispatch, engine)


def _family_servers(dispatches, engines=("cython", "python"), naive=True,
                    extra=("asyncio",), installed=False):
    """The servers of one workload; *installed* adds the stand-in rows
    (the stdlib's classes after csockserver.install()) after csock's."""
    servers = []
    for dispatch in dispatches:
        servers.append(_s("stdlib", dispatch))
        servers.extend(_s("csock", dispatch, e) for e in engines)
        if installed:
            servers.extend(_s("installed", dispatch, e) for e in engines)
    if naive:
        servers += [_s("naive_pool"), _s("naive_lf")]
    servers += [_s(name) for name in extra]
    servers.append(_s("c"))
    return servers


# name: (title, what the server serves, loadgen mode, family, size, conns)
_WORKLOADS = {
    "tcp-conn-64": ("TCP, connection per request, 64 B echo",
                    "echo", "conn", "tcp", 64, 16),
    "tcp-persistent-1k": ("TCP, 16 persistent connections, 1 KiB echo",
                          "echo", "persistent", "tcp", 1024, 16),
    "tcp-line-1k": ("StreamRequestHandler line echo, 1 KiB lines",
                    "line", "line", "tcp", 1024, 16),
    "tcp-line-16k": ("StreamRequestHandler line echo, 16 KiB lines",
                     "line", "line", "tcp", 16384, 16),
    "udp-64": ("UDP echo, 64 B, 16 in flight", "udp", "udp", "tcp", 64, 16),
    "unix-conn-64": ("Unix stream, connection per request, 64 B",
                     "echo", "conn", "unix", 64, 16),
    "http10": ("http.server handler, HTTP/1.0, connection per request",
               "http", "http10", "tcp", 0, 8),
    "http11": ("http.server handler, HTTP/1.1 keep-alive",
               "http", "http11", "tcp", 0, 8),
}


_HTTP_NOTE = (
    "The handler is http.server's, as users write it: it sends the headers"
    " and the body in two writes. With Nagle's algorithm on (the stdlib's"
    " default), the second waits for the client's delayed ACK; csockserver's"
    " stream handlers turn Nagle off. The `csock` rows serve that handler on"
    " csockserver's plain ThreadingTCPServer, not csockserver.http;"
    " `python -m bench http` measures csockserver.http's servers and"
    " handlers.")
_NOTES = {
    "http10": _HTTP_NOTE,
    "http11": _HTTP_NOTE + " Over keep-alive connections that delayed ACK"
    " (40 ms on Linux) comes once per request: with 8 connections, the rows"
    " with Nagle on cannot pass 200 req/s, whatever the server.",
}

# What a row runs, where its label alone would mislead:
# (server_workload, impl) -> text after the label.
_ROW_NOTES = {
    ("http", "stdlib"): "http.server handler on socketserver's %s, Nagle on",
    ("http", "csock"): "the same http.server handler on csockserver's plain"
                       " %s (not csockserver.http), Nagle on",
    ("http", "installed"): "http.server's own ThreadingHTTPServer and"
                           " handler after csockserver.install(), Nagle off",
    ("http", "asyncio"): "asyncio protocol, the same reply",
    ("http", "c"): "C epoll server, the same reply",
}
_TCP_CLASSES = {"sync": "TCPServer", "threading": "ThreadingTCPServer",
                "forking": "ForkingTCPServer"}


def row_label(workload, server):
    """A row's label in the report: the server's label, and what runs when
    the label alone would mislead."""
    note = _ROW_NOTES.get((workload.server_workload, server.impl))
    if note is None:
        return server.label
    if "%s" in note:
        note %= _TCP_CLASSES.get(server.dispatch, "TCPServer")
    return "%s: %s" % (server.label, note)


def _workload(name, servers):
    return Workload(name, *_WORKLOADS[name], servers, _NOTES.get(name))


def full_workloads():
    """The whole matrix: about 11 minutes with the default repeats."""
    return [
        _workload("tcp-conn-64",
                  _family_servers(("sync", "threading", "forking"))),
        # The naive dispatchers' 8 threads cannot hold 16 sessions.
        _workload("tcp-persistent-1k",
                  _family_servers(("threading",), naive=False)),
        _workload("tcp-line-1k", _family_servers(("threading",), naive=False)),
        _workload("tcp-line-16k",
                  _family_servers(("threading",), naive=False)),
        _workload("udp-64", _family_servers(("sync", "threading"))),
        _workload("unix-conn-64", _family_servers(("sync", "threading"),
                                                  naive=False, extra=())),
        _workload("http10", _family_servers(("threading",), naive=False,
                                            installed=True)),
        _workload("http11", _family_servers(("threading",), naive=False,
                                            installed=True)),
    ]


def quick_workloads():
    """A headline subset, compiled engine only: under two minutes."""
    compiled = {"engines": ("cython",), "extra": ()}
    return [
        _workload("tcp-conn-64",
                  _family_servers(("sync", "threading"), **compiled)),
        _workload("tcp-persistent-1k",
                  _family_servers(("threading",), naive=False, **compiled)),
        _workload("udp-64",
                  _family_servers(("sync", "threading"), **compiled)),
        _workload("http11",
                  _family_servers(("threading",), naive=False,
                                  installed=True, **compiled)),
    ]


def preset(quick):
    if quick:
        return {"workloads": quick_workloads(), "repeat": 3,
                "duration": 1.0, "warmup": 0.3}
    return {"workloads": full_workloads(), "repeat": 3,
            "duration": 3.0, "warmup": 0.5}


def against_build(workloads, name, path):
    """The workloads with only the stdlib and compiled csockserver rows,
    plus the compiled engine of the csockserver build at *path*."""
    compared = []
    for w in workloads:
        servers = []
        for server in w.servers:
            if server.impl == "stdlib":
                servers.append(server)
            elif server.impl == "csock" and server.engine == "cython":
                servers.append(server)
                servers.append(server._replace(
                    label="%s [%s]" % (server.label, name), path=path))
        compared.append(w._replace(servers=servers))
    return compared
