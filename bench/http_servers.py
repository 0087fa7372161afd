"""The servers ``python -m bench http`` drives: one per process.

    python -m bench.http_servers WORKLOAD ROW

prints one JSON line (its address, the engine it runs on, what it reports
of itself) and serves until SIGTERM.  WORKLOAD and ROW are those of
bench/http_wrk.py's tables:

- ``http10``, ``http11``: an http.server handler (``do_GET`` sends 200 with
  a 2-byte body, ``log_message`` silenced), with ``protocol_version``
  HTTP/1.0 or HTTP/1.1, on the server of each row (HTTP_ROWS);
- ``xmlrpc``: SimpleXMLRPCServer with ``add(a, b)`` registered, requests
  not logged (``logRequests=False``);
- ``wsgi``: a hello-world WSGI application, served by wsgiref's
  WSGIServer and WSGIRequestHandler (``log_message`` silenced), by
  waitress or by cheroot, each with its default thread pool.

Every listening socket has a backlog of 1024.  The rows "via install()"
call ``csockserver.install()`` before the standard library's module is
first imported, and refuse to serve unless it was then built on
csockserver: this module imports neither http.server, xmlrpc.server,
wsgiref nor socketserver at its top.
"""

import json
import os
import signal
import sys
import threading

if __package__ in (None, ""):   # run as a script: make ``bench`` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))

BACKLOG = 1024
STANDIN = "stdlib via install()"
PROTOCOLS = {"http10": "HTTP/1.0", "http11": "HTTP/1.1"}

# The rows of the http.server tables, with what each serves.
HTTP_ROWS = {
    "stdlib": "http.server's ThreadingHTTPServer and a handler derived"
              " from its BaseHTTPRequestHandler, as users write them"
              " (Nagle on)",
    "stdlib nodelay": "the same, with `disable_nagle_algorithm = True` on"
                      " the handler",
    STANDIN: "the same code as `stdlib`, in a process that called"
             " `csockserver.install()` before importing http.server, so"
             " that its server and handler are built on csockserver",
    "csockserver.http": "csockserver.http's ThreadingHTTPServer and a"
                        " handler derived from its BaseHTTPRequestHandler"
                        " (compiled rfile/wfile, TCP_NODELAY)",
    "csockserver.http, stdlib handler": "csockserver.http's"
                                        " ThreadingHTTPServer, the handler"
                                        " still derived from http.server's"
                                        " (only the server line changed)",
    "stdlib TCPServer": "http.server's handler on the stdlib's plain"
                        " `socketserver.ThreadingTCPServer`",
    "csock-c TCPServer": "the same code after `import csockserver as"
                         " socketserver`: csockserver's ThreadingTCPServer"
                         " on its compiled engine, the handler's files the"
                         " stdlib's, Nagle on",
    "csock-py TCPServer": "the same on csockserver's pure-Python engine",
}
# The engine each row's process must run csockserver on (None: the row
# does not use csockserver).
HTTP_ENGINES = {STANDIN: "cython", "csockserver.http": "cython",
                "csockserver.http, stdlib handler": "cython",
                "csock-c TCPServer": "cython",
                "csock-py TCPServer": "python"}
XMLRPC_ROWS = {"stdlib": None, STANDIN: "cython"}
WSGI_ROWS = {"wsgiref": None, "wsgiref via install()": "cython",
             "waitress": None, "cheroot": None}
# The rows served by a package that may not be installed.
OPTIONAL = {"waitress": "waitress", "cheroot": "cheroot"}
HELLO = b"Hello, world!\n"


def install_first(module):
    """csockserver.install(), before anything imports *module*."""
    if module in sys.modules or "socketserver" in sys.modules:
        raise RuntimeError("%s was imported before install(): it would be"
                           " the standard library's" % module)
    import csockserver
    csockserver.install()
    return csockserver


def check_built_on_csockserver(cls):
    import csockserver
    if not issubclass(cls, csockserver.TCPServer):
        raise RuntimeError("%s.%s is not built on csockserver" % (
            cls.__module__, cls.__qualname__))


def with_backlog(cls):
    return type(cls.__name__, (cls,), {"request_queue_size": BACKLOG})


# -- http.server --------------------------------------------------------------

def build_server(variant, protocol):
    """(server class, handler class) for an http.server row, imported as
    users would.

    For STANDIN, csockserver.install() must come first, before anything in
    the process imports http.server: each row runs in a process of its own.
    """
    if variant not in HTTP_ROWS:
        raise ValueError("no http.server row %r" % variant)
    if variant == STANDIN:
        install_first("http.server")
    import http.server
    if variant == STANDIN:
        check_built_on_csockserver(http.server.ThreadingHTTPServer)
    base = http.server.BaseHTTPRequestHandler
    if variant.startswith("csockserver.http"):
        import csockserver.http as chttp
        server_class = chttp.ThreadingHTTPServer
        if variant == "csockserver.http":
            base = chttp.BaseHTTPRequestHandler
    elif variant == "stdlib TCPServer":
        import socketserver
        server_class = socketserver.ThreadingTCPServer
    elif variant.startswith("csock-"):
        import csockserver as socketserver
        server_class = socketserver.ThreadingTCPServer
    else:
        server_class = http.server.ThreadingHTTPServer

    class OkHandler(base):
        protocol_version = PROTOCOLS[protocol]
        if variant == "stdlib nodelay":
            disable_nagle_algorithm = True

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format, *args):
            pass

    return server_class, OkHandler


def http_server(row, protocol):
    server_class, handler = build_server(row, protocol)
    server = with_backlog(server_class)(("127.0.0.1", 0), handler)
    return server, server.serve_forever, _socketserver_stop(server), {}


def _socketserver_stop(server):
    def stop():
        server.shutdown()
        server.server_close()
    return stop


# -- XML-RPC ------------------------------------------------------------------

def add(a, b):
    return a + b


def xmlrpc_server(row):
    if row not in XMLRPC_ROWS:
        raise ValueError("no XML-RPC row %r" % row)
    if row == STANDIN:
        install_first("xmlrpc.server")
    from xmlrpc.server import SimpleXMLRPCServer
    if row == STANDIN:
        check_built_on_csockserver(SimpleXMLRPCServer)
    server = with_backlog(SimpleXMLRPCServer)(("127.0.0.1", 0),
                                              logRequests=False)
    server.register_function(add)
    return server, server.serve_forever, _socketserver_stop(server), {}


# -- WSGI ---------------------------------------------------------------------

def hello_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(HELLO)))])
    return [HELLO]


def wsgi_server(row):
    if row not in WSGI_ROWS:
        raise ValueError("no WSGI row %r" % row)
    if row == "waitress":
        import waitress
        server = waitress.create_server(hello_app, host="127.0.0.1", port=0,
                                        backlog=BACKLOG)
        return (server, server.run, server.close,
                {"address": [server.effective_host,
                             int(server.effective_port)],
                 "threads": server.adj.threads})
    if row == "cheroot":
        from cheroot import wsgi
        server = wsgi.Server(("127.0.0.1", 0), hello_app,
                             request_queue_size=BACKLOG)
        server.prepare()
        return (server, server.serve, server.stop,
                {"address": list(server.bind_addr[:2]),
                 "threads": server.requests.min})
    if row == "wsgiref via install()":
        install_first("wsgiref.simple_server")
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer
    if row == "wsgiref via install()":
        check_built_on_csockserver(WSGIServer)

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format, *args):
            pass

    server = with_backlog(WSGIServer)(("127.0.0.1", 0), QuietHandler)
    server.set_app(hello_app)
    return server, server.serve_forever, _socketserver_stop(server), {}


# -- serving ------------------------------------------------------------------

def engine_of(workload, row):
    """The engine *row*'s process must run csockserver on, or None."""
    if workload in PROTOCOLS:
        return HTTP_ENGINES.get(row)
    return {"xmlrpc": XMLRPC_ROWS, "wsgi": WSGI_ROWS}[workload][row]


def serve(workload, row):
    if workload in PROTOCOLS:
        server, loop, stop_server, hello = http_server(row, workload)
    elif workload == "xmlrpc":
        server, loop, stop_server, hello = xmlrpc_server(row)
    elif workload == "wsgi":
        server, loop, stop_server, hello = wsgi_server(row)
    else:
        raise ValueError("no workload %r" % workload)
    if "address" not in hello:
        hello["address"] = list(server.server_address[:2])
    csockserver = sys.modules.get("csockserver")
    hello["engine"] = csockserver.IMPLEMENTATION if csockserver else None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    threading.Thread(target=loop, daemon=True).start()
    print(json.dumps(hello), flush=True)
    while not stop.wait(1.0):
        pass
    stop_server()


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        raise SystemExit("usage: python -m bench.http_servers WORKLOAD ROW")
    serve(*argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
