"""Overridden hooks are called as socketserver calls them.

Each case overrides one hook (or all of them) with a method that records
the call (name and the kinds of its arguments) and then calls super().  The
same scenario runs against the stdlib and against csockserver, and the two
recorded sequences must be equal.  Overriding hooks one at a time matters:
csockserver runs stock hooks itself and calls Python only for the overridden
ones, so every combination is a different path through its engine.  The
csockserver side runs on each engine (the ``engine`` fixture), the
compiled one and its pure-Python twin, in the same process.
"""

import contextlib
import io
import socket
import socketserver
import sys

import pytest

import csockserver
from tests.support.clients import recv_until_eof, stream_client
from tests.support.env import CLIENT_TIMEOUT, TREE
from tests.support.servers import (ServerThread, handle_request, run_bounded,
                                   wait_for)

SERVER_CLASSES = {"tcp": "TCPServer", "udp": "UDPServer",
                  "threading": "ThreadingTCPServer"}

# Hooks a server of each kind calls in a one-request scenario.
REQUEST_HOOKS = {
    "tcp": ["get_request", "verify_request", "process_request",
            "finish_request", "shutdown_request", "close_request",
            "_handle_request_noblock", "fileno", "server_bind",
            "server_activate", "server_close"],
    "udp": ["get_request", "verify_request", "process_request",
            "finish_request", "shutdown_request", "close_request",
            "_handle_request_noblock", "fileno", "server_bind",
            "server_activate", "server_close"],
    "threading": ["verify_request", "process_request",
                  "process_request_thread", "finish_request",
                  "shutdown_request", "close_request", "server_close"],
}
ALL_HOOKS = sorted(set(sum(REQUEST_HOOKS.values(), [])) | {
    "handle_error", "handle_timeout", "service_actions"})


def kind(value):
    """A short, engine-independent description of a hook argument."""
    if isinstance(value, socket.socket):
        return "socket"
    if (isinstance(value, tuple) and len(value) == 2
            and isinstance(value[0], bytes)):
        return "datagram"
    if isinstance(value, tuple):
        return "address"
    return type(value).__name__


def recording_server_class(impl, server_kind, hooks, log, refuse=False):
    """A subclass of impl's server that records each hook in *hooks*."""
    base = getattr(impl, SERVER_CLASSES[server_kind])

    def recorder(name):
        def hook(self, *args, **kwargs):
            entry = (name, tuple(kind(a) for a in args))
            if name == "handle_error":
                entry += (sys.exc_info()[0].__name__,)
            if name == "server_close":
                # Logged once it returns: a threading server's close joins
                # the request threads, whose last hooks would race with it.
                result = getattr(super(cls, self), name)(*args, **kwargs)
                log.append(entry)
                return result
            log.append(entry)
            result = getattr(super(cls, self), name)(*args, **kwargs)
            if name == "verify_request" and refuse:
                return False
            return result
        hook.__name__ = name
        return hook

    cls = type("Recording" + base.__name__, (base,),
               {name: recorder(name) for name in hooks})
    return cls


def recording_handler(impl, server_kind, log, fail=None):
    """An upper-case echo handler that records its own run."""
    if server_kind == "udp":
        class Handler(impl.DatagramRequestHandler):
            def handle(self):
                log.append(("handle", (kind(self.request),
                                       kind(self.client_address))))
                # The reply goes out in finish(), even if handle() raises.
                self.wfile.write(self.rfile.read().upper())
                if fail is not None:
                    raise fail("from the handler")
    else:
        class Handler(impl.StreamRequestHandler):
            def handle(self):
                log.append(("handle", (kind(self.request),
                                       kind(self.client_address))))
                line = self.rfile.readline()
                if fail is not None:
                    raise fail("from the handler")
                self.wfile.write(line.upper())
    return Handler


def collapse_service_actions(log):
    """Runs of idle service_actions calls count as one: their number is
    timing, not behaviour."""
    out = []
    for entry in log:
        if not (out and entry == out[-1] and entry[0] == "service_actions"):
            out.append(entry)
    return out


class Client:
    """One client request: ``send()`` it, later ``result()`` (the reply)."""

    def __init__(self, server, server_kind):
        self.server = server
        self.datagram = server_kind == "udp"

    def send(self):
        if self.datagram:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.settimeout(CLIENT_TIMEOUT)
            self.sock.sendto(b"ping", self.server.server_address)
        else:
            self.sock = stream_client(self.server)
            self.sock.sendall(b"ping\n")
        return self

    def result(self):
        with self.sock:
            if self.datagram:
                return self.sock.recv(65536)
            return recv_until_eof(self.sock)


def run_scenario(impl, server_kind, hooks, mode, variant=None):
    """Run one scenario; return (recorded sequence, what the client saw)."""
    log = []
    cls = recording_server_class(impl, server_kind, hooks, log,
                                 refuse=variant == "refuse")
    handler = recording_handler(impl, server_kind, log,
                                fail=ValueError if variant == "error"
                                else None)
    with contextlib.redirect_stderr(io.StringIO()):
        server = cls(("127.0.0.1", 0), handler)
        try:
            if mode == "timeout":
                server.timeout = 0.05
                seen = ("handle_request returned", handle_request(server))
            elif mode == "handle_request":
                client = Client(server, server_kind).send()
                handle_request(server)
                seen = client.result()
            else:
                runner = ServerThread(server, poll_interval=0.05).start()
                try:
                    if "service_actions" in hooks:
                        # Idle calls first, so the sequence starts the same
                        # way whatever the timing.
                        assert wait_for(lambda: ("service_actions", ())
                                        in log, timeout=CLIENT_TIMEOUT)
                    seen = Client(server, server_kind).send().result()
                finally:
                    runner.shutdown()
        finally:
            run_bounded(server.server_close)
    return collapse_service_actions(log), seen


def cases():
    for server_kind, hooks in REQUEST_HOOKS.items():
        for hook in hooks:
            for mode in ("handle_request", "serve_forever"):
                yield server_kind, hook, mode, None
        for mode in ("handle_request", "serve_forever"):
            yield server_kind, "handle_error", mode, "error"
        if server_kind != "udp":
            for mode in ("handle_request", "serve_forever"):
                yield server_kind, "verify_request", mode, "refuse"
        if server_kind != "threading":
            # (A threading server's idle calls race with its request thread.)
            yield server_kind, "service_actions", "serve_forever", None
        yield server_kind, "handle_timeout", "timeout", None
        yield server_kind, "fileno", "timeout", None


CASES = list(cases())


def case_id(case):
    server_kind, hook, mode, variant = case
    return "-".join(filter(None, (server_kind, hook.strip("_"), mode,
                                  variant)))


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_one_hook_overridden(case, engine):
    server_kind, hook, mode, variant = case
    expected = run_scenario(socketserver, server_kind, (hook,), mode, variant)
    actual = run_scenario(csockserver, server_kind, (hook,), mode, variant)
    assert actual == expected
    log, seen = expected
    # The scenario really exercised the hook (or this case proves nothing).
    assert hook in [entry[0] for entry in log]


ALL_CASES = [(k, m, v)
             for k in SERVER_CLASSES
             for m in ("handle_request", "serve_forever", "timeout")
             for v in (None, "error", "refuse")
             if not (v == "refuse" and k == "udp")
             if not (m == "timeout" and v)]


@pytest.mark.parametrize("server_kind,mode,variant", ALL_CASES)
def test_all_hooks_overridden(server_kind, mode, variant, engine):
    hooks = [h for h in ALL_HOOKS if hasattr(getattr(
        socketserver, SERVER_CLASSES[server_kind]), h)]
    if server_kind == "threading":
        hooks.remove("service_actions")  # timing-dependent interleaving
    expected = run_scenario(socketserver, server_kind, hooks, mode, variant)
    actual = run_scenario(csockserver, server_kind, hooks, mode, variant)
    assert actual == expected
    assert len(expected[0]) >= 4


def test_expected_sequence_for_plain_request(engine):
    # The reference itself, spelled out once, so that a change in the
    # recorder cannot make every comparison vacuous.
    log, seen = run_scenario(csockserver, "tcp", ALL_HOOKS, "handle_request")
    names = [entry[0] for entry in log]
    assert names == ["server_bind", "server_activate", "fileno",
                     "_handle_request_noblock", "get_request",
                     "verify_request", "process_request", "finish_request",
                     "handle", "shutdown_request", "close_request",
                     "server_close"]
    assert log[5] == ("verify_request", ("socket", "address"))
    assert seen == b"PING\n"


def test_refused_request_never_reaches_handler():
    for impl in (socketserver, csockserver):
        log, seen = run_scenario(impl, "tcp", ("verify_request",),
                                 "handle_request", "refuse")
        assert [e[0] for e in log] == ["verify_request"]
        assert seen == b""


def test_handle_error_sees_the_exception():
    for impl in (socketserver, csockserver):
        log, seen = run_scenario(impl, "tcp", ("handle_error",),
                                 "handle_request", "error")
        assert log[-1] == ("handle_error", ("socket", "address"), "ValueError")
        assert seen == b""


def test_handle_timeout_result_returned():
    for impl in (socketserver, csockserver):
        log, seen = run_scenario(impl, "tcp", ("handle_timeout",), "timeout")
        assert log == [("handle_timeout", ())]
        assert seen == ("handle_request returned", None)


# -- verify_request set on the instance ------------------------------------

def run_instance_verify(impl, accept, mode):
    log = []

    def verify_request(request, client_address):
        log.append(("verify_request", (kind(request), kind(client_address))))
        return accept

    server = impl.TCPServer(("127.0.0.1", 0),
                            recording_handler(impl, "tcp", log))
    server.verify_request = verify_request
    try:
        if mode == "handle_request":
            client = Client(server, "tcp").send()
            handle_request(server)
            seen = client.result()
        else:
            with ServerThread(server, poll_interval=0.05):
                seen = Client(server, "tcp").send().result()
    finally:
        server.server_close()
    return log, seen


@pytest.mark.parametrize("mode", ["handle_request", "serve_forever"])
@pytest.mark.parametrize("accept", [True, False], ids=["accept", "refuse"])
def test_verify_request_on_instance(accept, mode, engine):
    expected = run_instance_verify(socketserver, accept, mode)
    actual = run_instance_verify(csockserver, accept, mode)
    assert actual == expected
    log, seen = actual
    assert log[0] == ("verify_request", ("socket", "address"))
    if accept:
        assert [e[0] for e in log] == ["verify_request", "handle"]
        assert seen == b"PING\n"
    else:
        assert log == [("verify_request", ("socket", "address"))]
        assert seen == b""


def test_instance_override_of_stock_hook_is_seen_between_calls(impl):
    # An attribute set on the instance after some requests already went
    # through the stock path takes effect from the next request on.
    log = []
    server = impl.TCPServer(("127.0.0.1", 0),
                            recording_handler(impl, "tcp", log))
    try:
        for refuse in (False, True, False):
            if refuse:
                server.verify_request = lambda request, address: False
            else:
                vars(server).pop("verify_request", None)
            client = Client(server, "tcp").send()
            handle_request(server)
            assert client.result() == (b"" if refuse else b"PING\n")
    finally:
        server.server_close()
    assert [e[0] for e in log] == ["handle", "handle"]


# -- service_actions under serve_forever -----------------------------------

def service_actions_server(impl, log):
    class Server(impl.TCPServer):
        def service_actions(self):
            log.append("service_actions")
            super().service_actions()

    class Handler(impl.StreamRequestHandler):
        def handle(self):
            log.append("handle")
            self.wfile.write(self.rfile.readline().upper())

    return Server(("127.0.0.1", 0), Handler)


def test_service_actions_called_repeatedly_while_idle(impl):
    log = []
    server = service_actions_server(impl, log)
    with ServerThread(server, poll_interval=0.05):
        wait_for(lambda: len(log) >= 3, timeout=0.5)
        assert log.count("service_actions") >= 3
    assert "handle" not in log


def test_service_actions_called_after_a_request(impl):
    # poll_interval is long, so a call soon after the request is the one
    # made because of the request, not an idle one.
    log = []
    server = service_actions_server(impl, log)
    with ServerThread(server, poll_interval=1.0):
        with stream_client(server) as client:
            client.sendall(b"x\n")
            assert recv_until_eof(client) == b"X\n"
        assert wait_for(lambda: log[log.index("handle"):].count(
            "service_actions") >= 1, timeout=0.5)


def test_service_actions_not_called_by_handle_request(impl):
    log = []
    server = service_actions_server(impl, log)
    try:
        with stream_client(server) as client:
            client.sendall(b"x\n")
            handle_request(server)
            assert recv_until_eof(client) == b"X\n"
        server.timeout = 0.05
        handle_request(server)
    finally:
        server.server_close()
    assert log == ["handle"]


# -- exceptions that are not Exception -------------------------------------

def interrupting_server(impl, log):
    class Server(impl.TCPServer):
        def shutdown_request(self, request):
            log.append(("shutdown_request", kind(request)))
            super().shutdown_request(request)

        def handle_error(self, request, client_address):
            log.append(("handle_error",))
            super().handle_error(request, client_address)

    class Handler(impl.StreamRequestHandler):
        def handle(self):
            log.append(("handle",))
            self.rfile.readline()
            raise KeyboardInterrupt

    return Server(("127.0.0.1", 0), Handler)


def run_interrupted_handle_request(impl):
    log = []
    server = interrupting_server(impl, log)
    try:
        with stream_client(server) as client:
            client.sendall(b"x\n")
            with pytest.raises(KeyboardInterrupt):
                handle_request(server)
            seen = recv_until_eof(client)
    finally:
        server.server_close()
    return log, seen


def test_keyboard_interrupt_propagates_from_handle_request():
    expected = run_interrupted_handle_request(socketserver)
    assert expected == ([("handle",), ("shutdown_request", "socket")], b"")
    assert run_interrupted_handle_request(csockserver) == expected


def test_keyboard_interrupt_propagates_from_serve_forever(impl):
    log = []
    server = interrupting_server(impl, log)
    runner = ServerThread(server, poll_interval=0.05).start()
    try:
        with stream_client(server) as client:
            client.sendall(b"x\n")
            assert recv_until_eof(client) == b""
        runner.thread.join(CLIENT_TIMEOUT)
        assert not runner.thread.is_alive()
        assert isinstance(runner.error, KeyboardInterrupt)
        assert log == [("handle",), ("shutdown_request", "socket")]
        # The loop's bookkeeping was done on the way out.
        assert server._BaseServer__is_shut_down.is_set()
        assert server._BaseServer__shutdown_request is False
        # So shutdown() after the fact returns instead of waiting forever.
        run_bounded(server.shutdown, timeout=CLIENT_TIMEOUT)
    finally:
        runner.error = None
        runner.stop()


PATCH_BEFORE_FIRST_USE = r"""
import socket, sys
impl = __import__(sys.argv[1])
impl.BaseServer.verify_request = lambda self, request, address: False
handled = []
class Handler(impl.BaseRequestHandler):
    def handle(self):
        handled.append(True)
server = impl.TCPServer(("127.0.0.1", 0), Handler)
with socket.create_connection(server.server_address, 5):
    server.handle_request()
server.server_close()
print("handled" if handled else "refused")
"""


@pytest.mark.parametrize("module", ["socketserver", "csockserver"])
def test_class_patched_before_first_use_is_called(module):
    # A hook replaced on the library's own class before anything was served
    # is the user's code and must be called.  A fresh process makes sure
    # nothing was served before the patch.
    import os
    import subprocess
    env = dict(os.environ, PYTHONPATH=TREE)
    run = subprocess.run(
        [sys.executable, "-c", PATCH_BEFORE_FIRST_USE, module],
        env=env, capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "refused"
