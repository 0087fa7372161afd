"""Benchmark servers: one server per process, started by the benchmark runner.

    python -m bench.servers --impl IMPL --dispatch DISPATCH --workload WORKLOAD
                            [--family tcp|unix] [--host 127.0.0.1] [--port 0]
                            [--unix PATH]

IMPL
    stdlib      the standard library's socketserver
    csock       csockserver (the engine is whatever it loads: set
                CSOCKSERVER_NO_EXTENSIONS=1 in the environment for the pure
                one; the "engine" field of the hello line says which ran)
    installed   the standard library's code on csockserver: install() runs
                first, then ``import socketserver`` gets csockserver; the
                http workload serves with http.server's own HTTPServer or
                ThreadingHTTPServer (the stand-in path of code one cannot
                edit)
    naive_pool  stdlib TCPServer/UDPServer whose process_request() queues the
                request for 8 worker threads (what a user might write instead)
    naive_lf    stdlib server run by 8 threads each doing get_request() on the
                shared socket and handling the request inline
    asyncio     asyncio protocols doing the same work as each workload
    uvloop      the same on uvloop (prints {"skip": ...} if uvloop is missing)

DISPATCH (stdlib and csock only; ignored by the others)
    sync | threading | forking | prefork (csock only: PreforkMixIn with
    --processes worker processes, default 2) | prefork-threading (csock
    only: the same with ThreadingMixIn, threads in each worker, as
    PreforkThreadingTCPServer)

WORKLOAD
    echo  BaseRequestHandler: recv(65536) / sendall until EOF
    line  StreamRequestHandler:
          ``for line in self.rfile: self.wfile.write(line)``
    udp   BaseRequestHandler on a datagram server: sendto(data, client_address)
    http  http.server.BaseHTTPRequestHandler, HTTP/1.1, do_GET -> 200 "ok"
    cpu   BaseRequestHandler echo that first spends about 1 ms of CPU in
          Python per message (for scaling over processes)
    cpu200  the same with about 200 us of Python per message (for scaling
          over threads on a free-threaded CPython)

Protocol: once listening, one JSON line on stdout:
    {"address": [host, port] | path, "impl": ..., "engine": ..., "pid": ...}
then serve until SIGTERM/SIGINT or EOF on stdin, shut down and exit 0.
"""

import argparse
import json
import os
import queue
import signal
import socket
import sys
import tempfile
import threading
import time

WORKERS = 8            # threads of naive_pool and naive_lf
BACKLOG = 1024         # listen backlog for every server
STOP_WAIT = 1.2        # seconds to wait for serve_forever() to return
CPU_LOOPS = 20000      # the cpu workload's loop: about 1 ms per message
# The cpu200 workload's loop: about 200 us per message on CPython 3.13 with
# the GIL (3.13.0: 3800 turns took 198-205 us, min and median of 500 timed
# calls in a quiet process; 3.13t without the GIL took about as long).
CPU200_LOOPS = 3800


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


# --------------------------------------------------------------------------
# The user-style handlers (the same code for every socketserver-based impl)

def handler_class(ss, workload):
    """The request handler for *workload*, built on module *ss*."""
    if workload == "echo":
        class EchoHandler(ss.BaseRequestHandler):
            def handle(self):
                while True:
                    data = self.request.recv(65536)
                    if not data:
                        break
                    self.request.sendall(data)
        return EchoHandler

    if workload in ("cpu", "cpu200"):
        loops = CPU_LOOPS if workload == "cpu" else CPU200_LOOPS

        class CPUBoundEchoHandler(ss.BaseRequestHandler):
            def handle(self):
                while True:
                    data = self.request.recv(65536)
                    if not data:
                        break
                    total = 0
                    for i in range(loops):
                        total += i * i
                    self.request.sendall(data)
        return CPUBoundEchoHandler

    if workload == "line":
        class LineHandler(ss.StreamRequestHandler):
            def handle(self):
                for line in self.rfile:
                    self.wfile.write(line)
        return LineHandler

    if workload == "udp":
        class UDPEchoHandler(ss.BaseRequestHandler):
            def handle(self):
                data, sock = self.request
                sock.sendto(data, self.client_address)
        return UDPEchoHandler

    if workload == "http":
        import http.server

        class OkHandler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format, *args):
                pass
        return OkHandler

    raise ValueError("unknown workload %r" % workload)


# --------------------------------------------------------------------------
# Server classes

def base_name(workload, family):
    if family == "unix":
        return ("UnixDatagramServer" if workload == "udp"
                else "UnixStreamServer")
    return "UDPServer" if workload == "udp" else "TCPServer"


def dispatch_class(ss, dispatch, name):
    """ss.<Prefix><name>, or the mix-in combined with ss.<name> via type()."""
    base = getattr(ss, name)
    if dispatch == "sync":
        return base
    if dispatch == "prefork":
        return type("Prefork" + name, (ss.PreforkMixIn, base), {})
    if dispatch == "prefork-threading":
        return type("PreforkThreading" + name,
                    (ss.PreforkMixIn, ss.ThreadingMixIn, base), {})
    prefix = {"threading": "Threading", "forking": "Forking"}[dispatch]
    cls = getattr(ss, prefix + name, None)
    if cls is None:     # e.g. ForkingUnixStreamServer before Python 3.12
        cls = type(prefix + name, (getattr(ss, prefix + "MixIn"), base), {})
    return cls


def common_attrs(args, threading_dispatch=False):
    """Class attributes every benchmark server gets."""
    attrs = {"request_queue_size": BACKLOG}
    if args.workload == "udp":
        attrs["max_packet_size"] = 65536
    else:
        attrs["allow_reuse_address"] = True
    if args.family == "tcp" and ":" in args.host:
        attrs["address_family"] = socket.AF_INET6
    if threading_dispatch:
        attrs["daemon_threads"] = True
    if args.workload == "http":
        attrs["server_bind"] = http_server_bind
    return attrs


def http_server_bind(self):
    """http.server.HTTPServer.server_bind, on whichever base class we have."""
    super(self._bench_base, self).server_bind()
    if self.address_family != getattr(socket, "AF_UNIX", None):
        host, port = self.server_address[:2]
        self.server_name = socket.getfqdn(host)
        self.server_port = port


def finish_class(name, bases, attrs):
    cls = type(name, bases, attrs)
    cls._bench_base = cls   # for http_server_bind's super()
    return cls


def make_naive_pool(base):
    """A user-written thread pool on a plain (ThreadingMixIn-free) server."""

    class NaivePoolServer(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.requests = queue.SimpleQueue()
            for _ in range(WORKERS):
                threading.Thread(target=self.worker, daemon=True).start()

        def process_request(self, request, client_address):
            self.requests.put((request, client_address))

        def worker(self):
            while True:
                request, client_address = self.requests.get()
                try:
                    self.finish_request(request, client_address)
                except Exception:
                    self.handle_error(request, client_address)
                finally:
                    self.shutdown_request(request)

    return NaivePoolServer


def make_naive_lf(base):
    """N threads each accepting (or receiving) on the shared socket."""

    class NaiveLFServer(base):
        _stopping = False

        def start(self):
            self.lf_threads = [
                threading.Thread(target=self.lf_loop, daemon=True)
                for _ in range(WORKERS)]
            for t in self.lf_threads:
                t.start()

        def lf_loop(self):
            while not self._stopping:
                try:
                    request, client_address = self.get_request()
                except OSError:
                    continue        # closed (loop ends) or a transient error
                if self._stopping:
                    self.shutdown_request(request)
                    break
                if self.verify_request(request, client_address):
                    try:
                        self.process_request(request, client_address)
                    except Exception:
                        self.handle_error(request, client_address)
                        self.shutdown_request(request)
                    except:
                        self.shutdown_request(request)
                        raise
                else:
                    self.shutdown_request(request)

        def stop(self):
            self._stopping = True
            try:                        # wakes threads blocked in accept/recv
                self.socket.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.socket.close()
            deadline = time.monotonic() + 0.5
            for t in self.lf_threads:
                t.join(max(deadline - time.monotonic(), 0))

    return NaiveLFServer


# --------------------------------------------------------------------------
# Stopping

STOP = threading.Event()     # set by SIGTERM/SIGINT or EOF on stdin


def watch_for_stop():
    """Arrange for STOP to be set on SIGTERM/SIGINT or EOF on stdin."""
    def on_signal(signum, frame):
        STOP.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def watch_stdin():
        try:
            while os.read(0, 65536):
                pass
        except OSError:
            pass
        STOP.set()

    threading.Thread(target=watch_stdin, daemon=True, name="stdin").start()


# --------------------------------------------------------------------------
# Running a socketserver-based server

def standin_module():
    """socketserver after csockserver.install(), in a process that has not
    imported anything built on the standard library's one yet."""
    if "http.server" in sys.modules or "socketserver" in sys.modules:
        raise RuntimeError("installed: socketserver or http.server was "
                           "imported before install()")
    import csockserver
    csockserver.install()
    import socketserver
    assert socketserver is csockserver
    return socketserver


def standin_http_class(dispatch):
    """http.server's own server for *dispatch*, built on csockserver."""
    import http.server
    import csockserver
    if not issubclass(http.server.HTTPServer, csockserver.TCPServer):
        raise RuntimeError("http.server is not built on csockserver")
    if dispatch == "threading":
        return http.server.ThreadingHTTPServer
    if dispatch == "sync":
        return http.server.HTTPServer
    raise ValueError("installed http serves sync or threading, not %r"
                     % dispatch)


def run_socketserver(args, address):
    impl = args.impl
    if impl == "csock":
        import csockserver as ss
        engine = ss.IMPLEMENTATION
    elif impl == "installed":
        ss = standin_module()
        engine = ss.IMPLEMENTATION
    else:
        import socketserver as ss
        engine = "stdlib"
    handler = handler_class(ss, args.workload)
    name = base_name(args.workload, args.family)

    if impl == "installed" and args.workload == "http":
        # http.server's classes as they are: their own server_bind.
        cls = standin_http_class(args.dispatch)
        attrs = common_attrs(
            args, threading_dispatch=args.dispatch == "threading")
        del attrs["server_bind"]
    elif impl in ("stdlib", "csock", "installed"):
        cls = dispatch_class(ss, args.dispatch, name)
        attrs = common_attrs(
            args, threading_dispatch=args.dispatch in ("threading",
                                                       "prefork-threading"))
        if args.dispatch.startswith("prefork"):
            attrs["processes"] = args.processes
    elif impl == "naive_pool":
        cls = make_naive_pool(getattr(ss, name))
        attrs = common_attrs(args)
    else:
        cls = make_naive_lf(getattr(ss, name))
        attrs = common_attrs(args)
    served = "%s.%s" % (cls.__module__, cls.__qualname__)
    cls = finish_class("Bench" + cls.__name__, (cls,), attrs)

    server = cls(address, handler)
    if impl == "naive_lf":
        server.start()
        serving = None
    else:
        serving = threading.Thread(target=server.serve_forever, daemon=True,
                                   name="serve_forever")
        serving.start()
    info = hello(args, server.server_address, engine)
    info["server_class"] = served   # what the Bench class derives from
    emit(info)

    while not STOP.wait(1.0):
        pass

    if impl == "naive_lf":
        server.stop()
    else:
        # shutdown() waits for serve_forever(), which a sync server cannot
        # leave while a client keeps its connection open: bound the wait.
        stopper = threading.Thread(target=server.shutdown, daemon=True)
        stopper.start()
        stopper.join(STOP_WAIT)
        if stopper.is_alive():
            print("servers: serve_forever() still busy in a request;"
                  " closing anyway", file=sys.stderr)
    children = getattr(server, "active_children", None)
    if children:        # forking: children still serving open connections
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    server.server_close()


# --------------------------------------------------------------------------
# asyncio / uvloop

HTTP_SERVER = None


def http_response(_cache=[0, b""]):
    """The bytes BaseHTTPRequestHandler sends for our do_GET."""
    now = int(time.time())
    if _cache[0] != now:
        import email.utils
        _cache[0] = now
        _cache[1] = email.utils.formatdate(now, usegmt=True).encode(
            "latin-1")
    return (b"HTTP/1.1 200 OK\r\nServer: " + HTTP_SERVER
            + b"\r\nDate: " + _cache[1]
            + b"\r\nContent-Length: 2\r\n\r\nok")


def asyncio_protocols(asyncio, transports):
    class Tracked(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport
            transports.add(transport)

        def connection_lost(self, exc):
            transports.discard(self.transport)

    class Echo(Tracked):
        def data_received(self, data):
            self.transport.write(data)

    class Line(Tracked):
        buf = b""

        def data_received(self, data):
            buf = self.buf + data
            end = buf.rfind(b"\n") + 1
            if end:
                self.transport.write(buf[:end])
                buf = buf[end:]
            self.buf = buf

        def eof_received(self):
            if self.buf:        # a last line without its newline
                self.transport.write(self.buf)
            return False        # close (after the writes are flushed)

    class Http(Tracked):
        buf = b""

        def data_received(self, data):
            buf = self.buf + data
            while True:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    break
                head, buf = buf[:end], buf[end + 4:]
                lines = head.split(b"\r\n")
                parts = lines[0].split()
                if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
                    self.transport.write(b"HTTP/1.1 400 Bad Request\r\n"
                                         b"Connection: close\r\n"
                                         b"Content-Length: 0\r\n\r\n")
                    self.transport.close()
                    return
                method, _, version = parts
                conn = b""
                for line in lines[1:]:
                    key, _, value = line.partition(b":")
                    if key.strip().lower() == b"connection":
                        conn = value.strip().lower()
                if version >= b"HTTP/1.1":
                    keep = conn != b"close"
                else:
                    keep = conn == b"keep-alive"
                if method != b"GET":
                    self.transport.write(b"HTTP/1.1 501 Not Implemented\r\n"
                                         b"Connection: close\r\n"
                                         b"Content-Length: 0\r\n\r\n")
                    self.transport.close()
                    return
                self.transport.write(http_response())
                if not keep:
                    self.transport.close()
                    return
            if len(buf) > 65536:
                self.transport.close()
            self.buf = buf

    class UDPEcho(asyncio.DatagramProtocol):
        def connection_made(self, transport):
            self.transport = transport

        def datagram_received(self, data, addr):
            self.transport.sendto(data, addr)

    return {"echo": Echo, "line": Line, "http": Http, "udp": UDPEcho}


def run_asyncio(args, address):
    global HTTP_SERVER
    import asyncio
    if args.impl == "uvloop":
        try:
            import uvloop
        except ImportError as exc:
            emit({"skip": "uvloop is not importable: %s" % exc})
            return
        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    import http.server
    h = http.server.BaseHTTPRequestHandler
    HTTP_SERVER = (h.server_version + " " + h.sys_version).encode("latin-1")

    transports = set()
    proto = asyncio_protocols(asyncio, transports)[args.workload]
    if args.family == "unix":
        fam = socket.AF_UNIX
    else:
        fam = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(fam, socket.SOCK_DGRAM if args.workload == "udp"
                         else socket.SOCK_STREAM)
    if args.workload != "udp" and fam != socket.AF_UNIX:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.setblocking(False)

    async def main():
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, STOP.set)
        if args.workload == "udp":
            transport, _ = await loop.create_datagram_endpoint(proto,
                                                               sock=sock)
            server = None
        elif fam == socket.AF_UNIX:
            server = await loop.create_unix_server(proto, sock=sock,
                                                   backlog=BACKLOG)
        else:
            server = await loop.create_server(proto, sock=sock,
                                              backlog=BACKLOG)
        emit(hello(args, sock.getsockname(), args.impl))
        await loop.run_in_executor(None, STOP.wait)

        if server is None:
            transport.close()
            await asyncio.sleep(0)
            return
        server.close()
        for t in list(transports):
            t.abort()
        try:
            await asyncio.wait_for(server.wait_closed(), 1.0)
        except asyncio.TimeoutError:
            pass

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


# --------------------------------------------------------------------------

def hello(args, address, engine):
    if args.family == "unix":
        addr = address if isinstance(address, str) else os.fsdecode(address)
    else:
        addr = list(address[:2])
    return {"address": addr, "impl": args.impl, "engine": engine,
            "pid": os.getpid(), "dispatch": args.dispatch,
            "workload": args.workload, "family": args.family}


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="python -m bench.servers",
        description="One benchmark server (see module doc).")
    ap.add_argument("--impl", required=True,
                    choices=["stdlib", "csock", "installed", "naive_pool",
                             "naive_lf", "asyncio", "uvloop"])
    ap.add_argument("--dispatch", default="sync",
                    choices=["sync", "threading", "forking", "prefork",
                             "prefork-threading"])
    ap.add_argument("--processes", type=int, default=2,
                    help="worker processes for --dispatch prefork*")
    ap.add_argument("--workload", required=True,
                    choices=["echo", "line", "udp", "http", "cpu",
                             "cpu200"])
    ap.add_argument("--family", default="tcp", choices=["tcp", "unix"])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--unix", help="socket path for --family unix "
                    "(default: a fresh path in the temp dir)")
    args = ap.parse_args(argv)
    watch_for_stop()
    if args.dispatch.startswith("prefork") and args.impl not in (
            "csock", "installed"):
        emit({"skip": "prefork is csockserver's (PreforkMixIn)"})
        return 0
    forks = args.dispatch in ("forking", "prefork", "prefork-threading")
    if forks and not hasattr(os, "fork"):
        emit({"skip": "no os.fork on this platform"})
        return 0

    path = None
    if args.family == "unix":
        if not hasattr(socket, "AF_UNIX"):
            emit({"skip": "no AF_UNIX on this platform"})
            return 0
        path = args.unix or os.path.join(
            tempfile.gettempdir(), "csockbench-%d.sock" % os.getpid())
        if os.path.exists(path):    # a stale socket from an earlier run
            os.unlink(path)
        address = path
    else:
        address = (args.host, args.port)

    try:
        if args.impl in ("asyncio", "uvloop"):
            run_asyncio(args, address)
        else:
            run_socketserver(args, address)
    finally:
        if path is not None:
            try:
                os.unlink(path)
            except OSError:
                pass
    sys.stdout.flush()
    sys.stderr.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
