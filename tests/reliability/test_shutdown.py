"""Stopping a server: shutdown(), the shutdown flag, and Ctrl-C."""

import json
import os
import select
import signal
import socket
import subprocess
import textwrap
import threading
import time

import pytest

import csockserver
from tests.support.clients import recv_line, recv_until_eof, stream_client
from tests.support.env import (CLIENT_TIMEOUT, HAVE_FORK, HAVE_UNIX, PYTHON,
                               REPO_ROOT, child_env)
from tests.support.servers import ServerThread, run_bounded, wait_for

LONG_POLL = 5.0
PROMPT = 1.0  # "well under poll_interval"
CHILD_START = 20.0  # a cold interpreter start on a busy machine


class UpperLine(csockserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.readline().upper())


class UpperDatagram(csockserver.DatagramRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.read().upper())


class ReapingTCPServer(csockserver.TCPServer):
    """A server with service_actions overridden: the loop must still
    wake for shutdown at once, not at the next poll_interval tick."""

    def service_actions(self):
        super().service_actions()


def _csock_servers():
    yield "TCPServer", csockserver.TCPServer, "tcp"
    yield "UDPServer", csockserver.UDPServer, "udp"
    yield "ThreadingTCPServer", csockserver.ThreadingTCPServer, "tcp"
    yield "service_actions", ReapingTCPServer, "tcp"
    if HAVE_FORK:
        yield "ForkingTCPServer", csockserver.ForkingTCPServer, "tcp"
    if HAVE_UNIX:
        yield "UnixStreamServer", csockserver.UnixStreamServer, "unix"


CSOCK_SERVERS = list(_csock_servers())


def make_server(cls, transport, unix_path):
    if transport == "udp":
        return cls(("127.0.0.1", 0), UpperDatagram)
    if transport == "unix":
        return cls(unix_path(), UpperLine)
    return cls(("127.0.0.1", 0), UpperLine)


def round_trip(server, transport):
    """One request, proving the loop is up and waiting again after it."""
    if transport == "udp":
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(CLIENT_TIMEOUT)
            client.sendto(b"up?", server.server_address)
            assert client.recv(100) == b"UP?"
    else:
        with stream_client(server) as client:
            client.sendall(b"up?\n")
            # shutdown(): a forked child holds a copy of this socket.
            client.shutdown(socket.SHUT_WR)
            assert recv_until_eof(client) == b"UP?\n"


@pytest.mark.parametrize("name,cls,transport", CSOCK_SERVERS,
                         ids=[s[0] for s in CSOCK_SERVERS])
def test_shutdown_returns_promptly(name, cls, transport, unix_path):
    server = make_server(cls, transport, unix_path)
    runner = ServerThread(server, poll_interval=LONG_POLL).start()
    try:
        round_trip(server, transport)
        time.sleep(0.05)  # let the loop go back to waiting
        start = time.monotonic()
        run_bounded(server.shutdown, timeout=2 * LONG_POLL)
        elapsed = time.monotonic() - start
        assert elapsed < PROMPT, "shutdown() took %.2f s" % elapsed
    finally:
        runner.stop()


def test_shutdown_returns_promptly_when_idle_from_start():
    server = csockserver.TCPServer(("127.0.0.1", 0), UpperLine)
    runner = ServerThread(server, poll_interval=LONG_POLL).start()
    try:
        time.sleep(0.1)
        start = time.monotonic()
        run_bounded(server.shutdown, timeout=2 * LONG_POLL)
        assert time.monotonic() - start < PROMPT
    finally:
        runner.stop()


@pytest.mark.parametrize("name,cls,transport", CSOCK_SERVERS[:4],
                         ids=[s[0] for s in CSOCK_SERVERS[:4]])
def test_setting_shutdown_flag_stops_loop_promptly(name, cls, transport,
                                                   unix_path):
    server = make_server(cls, transport, unix_path)
    runner = ServerThread(server, poll_interval=LONG_POLL).start()
    try:
        round_trip(server, transport)
        time.sleep(0.05)
        start = time.monotonic()
        setter = threading.Thread(
            target=setattr, args=(server, "_BaseServer__shutdown_request",
                                  True))
        setter.start()
        setter.join(CLIENT_TIMEOUT)
        runner.thread.join(2 * LONG_POLL)
        elapsed = time.monotonic() - start
        assert not runner.thread.is_alive()
        assert elapsed < PROMPT, "serve_forever took %.2f s to stop" % elapsed
        # serve_forever's own bookkeeping on the way out.
        assert server._BaseServer__shutdown_request is False
        assert server._BaseServer__is_shut_down.is_set()
    finally:
        runner.stop()


# The main thread sets the stop flag of a server serving in another thread,
# and a signal whose handler sets it too comes in the middle: as the
# setter makes its first call of a builtin (os.write() on the waker, in the
# pure engine), so that the handler runs while that setter still runs.
SIGNAL_DURING_STOP = textwrap.dedent("""
    import signal, socket, sys, threading
    import csockserver

    server = csockserver.TCPServer(("127.0.0.1", 0),
                                   csockserver.BaseRequestHandler)
    def stop(signum, frame):
        server._BaseServer__shutdown_request = True
    signal.signal(signal.SIGUSR1, stop)
    serving = threading.Thread(target=server.serve_forever)
    serving.start()
    with socket.create_connection(server.server_address, timeout=5) as s:
        s.recv(1)                     # closed by the server: it serves

    def signal_on_first_builtin(frame, event, arg):
        if event == "c_call":
            sys.setprofile(None)
            signal.raise_signal(signal.SIGUSR1)
    sys.setprofile(signal_on_first_builtin)
    server._BaseServer__shutdown_request = True
    sys.setprofile(None)
    serving.join(5)
    print("running" if serving.is_alive() else "stopped")
    server.server_close()
""")


def test_a_signal_handler_setting_the_stop_flag_while_it_is_being_set():
    """The stop-on-signal idiom may run in the very thread that is setting
    the flag (waking the loop): no deadlock, and the loop stops."""
    try:
        done = subprocess.run([PYTHON, "-c", SIGNAL_DURING_STOP],
                              env=child_env(), capture_output=True,
                              text=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("setting the flag deadlocked with the signal handler")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["stopped"]


def test_shutdown_before_serve_forever(impl):
    server = impl.TCPServer(("127.0.0.1", 0), impl.BaseRequestHandler)
    try:
        # shutdown() blocks until a serve_forever() has run, so it is called
        # from a thread of its own, as documented.
        stopper = threading.Thread(target=server.shutdown, daemon=True)
        stopper.start()
        assert wait_for(lambda: server._BaseServer__shutdown_request,
                        timeout=CLIENT_TIMEOUT)
        start = time.monotonic()
        run_bounded(server.serve_forever, poll_interval=LONG_POLL,
                    timeout=2 * LONG_POLL)
        assert time.monotonic() - start < PROMPT
        stopper.join(CLIENT_TIMEOUT)
        assert not stopper.is_alive()
        assert server._BaseServer__shutdown_request is False
    finally:
        server.server_close()


def test_serve_forever_again_after_shutdown(impl):
    class Upper(impl.StreamRequestHandler):
        def handle(self):
            self.wfile.write(self.rfile.readline().upper())

    with impl.TCPServer(("127.0.0.1", 0), Upper) as server:
        for round_number in range(3):
            runner = ServerThread(server, poll_interval=0.05).start()
            try:
                with stream_client(server) as client:
                    client.sendall(b"round %d\n" % round_number)
                    assert recv_until_eof(client) == (
                        b"ROUND %d\n" % round_number)
            finally:
                runner.stop(close=False)
            assert server._BaseServer__is_shut_down.is_set()
            assert server._BaseServer__shutdown_request is False


def test_shutdown_from_a_request_thread(impl):
    # A common pattern: a handler asks the server to stop.
    class Stopper(impl.StreamRequestHandler):
        def handle(self):
            self.rfile.readline()
            threading.Thread(target=self.server.shutdown).start()
            self.wfile.write(b"bye\n")

    server = impl.ThreadingTCPServer(("127.0.0.1", 0), Stopper)
    runner = ServerThread(server, poll_interval=0.05).start()
    try:
        with stream_client(server) as client:
            client.sendall(b"stop\n")
            assert recv_until_eof(client) == b"bye\n"
        runner.thread.join(CLIENT_TIMEOUT)
        assert not runner.thread.is_alive()
    finally:
        runner.stop()


# -- Ctrl-C ----------------------------------------------------------------

CHILD = r"""
import json, signal, sys, threading, time
impl_name, mode = sys.argv[1], sys.argv[2]
if sys.argv[3:] == ["signal-on-a-thread"]:
    # SIGINT raised in a thread of its own: the C-level handler runs there,
    # so the main thread's wait is not interrupted (as when Ctrl-C lands
    # just before it starts waiting) and must still act on it.
    def interrupt():
        time.sleep(0.3)
        signal.raise_signal(signal.SIGINT)
    threading.Thread(target=interrupt, daemon=True).start()
if impl_name == "csock":
    import csockserver as ss
else:
    import socketserver as ss


class Echo(ss.StreamRequestHandler):
    def handle(self):
        self.wfile.write(b"ready\n")
        for line in self.rfile:
            self.wfile.write(line.upper())


if mode == "threading":
    # Daemon request threads, so that the process can exit while one of
    # them still holds a connection open.
    cls = type("Server", (ss.ThreadingTCPServer,), {"daemon_threads": True})
else:
    cls = ss.TCPServer
server = cls(("127.0.0.1", 0), Echo)
print(json.dumps({"port": server.server_address[1], "file": ss.__file__,
                  "engine": getattr(ss, "IMPLEMENTATION", None)}), flush=True)
if mode == "handle_request":
    server.handle_request()
else:
    server.serve_forever()
print("serve_forever returned", flush=True)
"""


def read_line_from(proc, timeout):
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "child printed nothing within %.1f s" % timeout
    return proc.stdout.readline()


@pytest.mark.parametrize("mode", ["sync", "threading", "handle_request"])
def test_ctrl_c_stops_serving_main_thread(impl, mode):
    name = "csock" if impl is csockserver else "stdlib"
    proc = subprocess.Popen([PYTHON, "-c", CHILD, name, mode],
                            cwd=REPO_ROOT, env=child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    client = None
    try:
        info = json.loads(read_line_from(proc, CHILD_START))
        if impl is csockserver:
            # The child runs this very csockserver, on the same engine.
            assert info["engine"] == csockserver.IMPLEMENTATION
            assert os.path.realpath(info["file"]) == os.path.realpath(
                csockserver.__file__)
        address = ("127.0.0.1", info["port"])
        if mode == "sync":
            # One request first: serve_forever is in its loop, and idle
            # again once the connection is done.
            with socket.create_connection(address, CLIENT_TIMEOUT) as c:
                assert recv_line(c) == b"ready\n"
                c.sendall(b"hi\n")
                assert recv_line(c) == b"HI\n"
                c.shutdown(socket.SHUT_WR)
                assert recv_until_eof(c) == b""
        elif mode == "threading":
            # A connection stays open, held by a request thread.
            client = socket.create_connection(address, CLIENT_TIMEOUT)
            assert recv_line(client) == b"ready\n"
        time.sleep(0.2)  # into the wait

        start = time.monotonic()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            pytest.fail("child still running 2 s after SIGINT")
        elapsed = time.monotonic() - start
        stderr = proc.stderr.read().decode(errors="replace")
        assert "KeyboardInterrupt" in stderr.splitlines()[-1], stderr
        assert proc.returncode == -signal.SIGINT, stderr
        assert b"serve_forever returned" not in proc.stdout.read()
        assert elapsed < 2.0
    finally:
        if client is not None:
            client.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(CHILD_START)
        proc.stdout.close()
        proc.stderr.close()



@pytest.mark.parametrize("mode", ["sync", "threading", "handle_request"])
def test_ctrl_c_acted_on_when_the_wait_is_not_interrupted(impl, mode):
    """A signal whose C handler ran on another thread leaves the main
    thread's poll() uninterrupted; the loop still runs the Python handler
    within its one-second signal check, instead of at the next request."""
    if impl is not csockserver and mode == "handle_request":
        pytest.skip("socketserver's handle_request() without a timeout"
                    " waits in select() until a request comes")
    name = "csock" if impl is csockserver else "stdlib"
    proc = subprocess.Popen([PYTHON, "-c", CHILD, name, mode,
                             "signal-on-a-thread"],
                            cwd=REPO_ROOT, env=child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        json.loads(read_line_from(proc, CHILD_START))
        try:
            proc.wait(timeout=CHILD_START)
        except subprocess.TimeoutExpired:
            pytest.fail("child still serving %.0f s after SIGINT"
                        % CHILD_START)
        stderr = proc.stderr.read().decode(errors="replace")
        assert "KeyboardInterrupt" in stderr.splitlines()[-1], stderr
        assert b"serve_forever returned" not in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(CHILD_START)
        proc.stdout.close()
        proc.stderr.close()
