"""A program whose main thread returns exits as it does with socketserver.

socketserver's request threads end with their request, so once the main
thread returns, the interpreter waits only for requests still running (in
non-daemon threads) and for a non-daemon serving thread.  csockserver's
reused workers must not add to that: an idle worker leaves at exit instead
of waiting out ``thread_idle_timeout`` (set to a minute here, so a worker
that waits it out fails the test).

Each case runs a small program in a child interpreter, which the test
drives over loopback and tells, on its stdin, when to return from main.
"""

import socket
import subprocess
import sys
import textwrap
import time

import pytest

from tests.support.env import (CLIENT_TIMEOUT, PYTHON, child_env,
                               other_pythons, pure_engine_env)

PROGRAM = textwrap.dedent("""
    import sys, threading, time
    impl, scenario = sys.argv[1:3]
    if impl == "stdlib":
        import socketserver
    else:
        import csockserver as socketserver

    class Handler(socketserver.StreamRequestHandler):
        def handle(self):
            line = self.rfile.readline()
            if line == b"slow\\n":
                self.wfile.write(b"started\\n")
                time.sleep(0.5)
                self.wfile.write(b"done\\n")
            elif line == b"stop\\n":
                threading.Thread(target=self.server.shutdown,
                                 daemon=True).start()
                self.wfile.write(b"stopping\\n")
            else:
                self.wfile.write(line)

    class Server(socketserver.ThreadingTCPServer):
        thread_idle_timeout = 60.0      # the stdlib has no such attribute
        if scenario.endswith("handoff"):
            # An overridden hook: requests are handed to workers one by one.
            def verify_request(self, request, client_address):
                return True

    server = Server(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    if scenario == "handle-request":
        server.handle_request()
    else:
        threading.Thread(target=server.serve_forever,
                         daemon=scenario.startswith("daemon")).start()
    sys.stdin.readline()
    print("returning", flush=True)
""")

# Well under the program's thread_idle_timeout, well over a slow start.
EXIT_BOUND = 5.0


class Program:
    """The program above, started in a child interpreter."""

    def __init__(self, command, env, impl, scenario):
        self.process = subprocess.Popen(
            command + ["-c", PROGRAM, impl, scenario], env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        self.port = int(self.process.stdout.readline())

    def ask(self, line):
        """Send one line on a new connection and return the first reply."""
        with socket.create_connection(("127.0.0.1", self.port),
                                      timeout=CLIENT_TIMEOUT) as sock:
            sock.sendall(line)
            return sock.makefile("rb").readline()

    def open(self, line):
        sock = socket.create_connection(("127.0.0.1", self.port),
                                        timeout=CLIENT_TIMEOUT)
        sock.sendall(line)
        return sock, sock.makefile("rb")

    def let_main_return(self):
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline() == "returning\n"

    def seconds_to_exit(self):
        """How long the program takes to end from now; it must end well."""
        started = time.monotonic()
        try:
            self.process.wait(timeout=4 * EXIT_BOUND)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail("the program did not exit within %s s"
                        % (4 * EXIT_BOUND))
        took = time.monotonic() - started
        stderr = self.process.stderr.read()
        assert self.process.returncode == 0, stderr
        assert "Traceback" not in stderr, stderr
        return took

    def close(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for stream in (self.process.stdin, self.process.stdout,
                       self.process.stderr):
            stream.close()


@pytest.fixture
def program():
    started = []

    def start(impl, scenario, command=(PYTHON,), env=None):
        started.append(Program(list(command), env or child_env(), impl,
                               scenario))
        return started[-1]
    yield start
    for each in started:
        each.close()


IMPLS = ["stdlib", "csock"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("scenario", ["daemon", "daemon-handoff"])
@pytest.mark.parametrize("impl", IMPLS)
def test_daemon_serving_thread_exits_with_main(program, impl, scenario):
    """serve_forever() in a daemon thread: when main returns, a running
    request is finished (its thread is not a daemon), then the program
    ends at once, with an idle worker left from an earlier request."""
    running = program(impl, scenario)
    assert running.ask(b"hello\n") == b"hello\n"
    sock, replies = running.open(b"slow\n")
    with sock, replies:
        assert replies.readline() == b"started\n"
        running.let_main_return()
        assert replies.readline() == b"done\n"
    assert running.seconds_to_exit() < EXIT_BOUND


@pytest.mark.timeout(60)
@pytest.mark.skipif(sys.version_info[:3] in ((3, 12, 0), (3, 12, 1)),
                    reason="CPython 3.12.0 and 3.12.1 refuse to start a"
                           " thread once the main thread has returned"
                           " (RuntimeError: can't create new thread at"
                           " interpreter shutdown; fixed in 3.12.2), for the"
                           " stdlib's servers too")
@pytest.mark.parametrize("scenario", ["nondaemon", "nondaemon-handoff"])
@pytest.mark.parametrize("impl", IMPLS)
def test_non_daemon_serving_thread_keeps_serving(program, impl, scenario):
    """serve_forever() in a non-daemon thread goes on serving after main
    returns; once a handler shuts it down, the program ends at once."""
    running = program(impl, scenario)
    assert running.ask(b"hello\n") == b"hello\n"
    running.let_main_return()
    time.sleep(0.2)     # the interpreter is now joining threads
    for _ in range(3):
        assert running.ask(b"still there\n") == b"still there\n"
    assert running.ask(b"stop\n") == b"stopping\n"
    assert running.seconds_to_exit() < EXIT_BOUND


@pytest.mark.timeout(60)
@pytest.mark.parametrize("impl", IMPLS)
def test_handle_request_without_server_close(program, impl):
    """handle_request() on the main thread, the server never closed."""
    running = program(impl, "handle-request")
    assert running.ask(b"hello\n") == b"hello\n"
    running.let_main_return()
    assert running.seconds_to_exit() < EXIT_BOUND


@pytest.mark.timeout(60)
@pytest.mark.parametrize("python", sorted(other_pythons()))
def test_daemon_serving_thread_exits_on_each_python(program, python,
                                                    tmp_path):
    """The same on every other pyenv CPython (pure engine): 3.8 has no
    hook run before threads are joined, so it takes another way."""
    command = [other_pythons()[python]]
    running = program("csock", "daemon", command, pure_engine_env(tmp_path))
    assert running.ask(b"hello\n") == b"hello\n"
    running.let_main_return()
    assert running.seconds_to_exit() < EXIT_BOUND



FORKED_CHILD_EXITS = textwrap.dedent("""
    import os, signal, socket, sys, threading, time
    if sys.argv[1] == "stdlib":
        import socketserver
    else:
        import csockserver as socketserver

    class Handler(socketserver.StreamRequestHandler):
        def handle(self):
            self.wfile.write(self.rfile.readline())

    def ask():
        with socket.create_connection(server.server_address, 5) as sock:
            sock.sendall(b"hi\\n")
            return sock.makefile("rb").readline()

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    assert ask() == b"hi\\n"
    pid = os.fork()
    if pid == 0:
        signal.alarm(10)    # SIGALRM's default action ends a stuck exit
        sys.exit(0)     # an orderly exit: the child joins its threads
    _, status = os.waitpid(pid, 0)
    started = time.process_time()
    time.sleep(0.5)
    code = (os.WEXITSTATUS(status) if os.WIFEXITED(status)
            else -os.WTERMSIG(status))
    print(round(time.process_time() - started, 3), ask() == b"hi\\n", code)
    server.shutdown()
    server.server_close()
""")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("impl", IMPLS)
def test_forked_child_exiting_leaves_the_parents_workers_alone(impl):
    """A child forked from a serving process that exits normally must not
    stop the parent's workers (it shares their wake-up fds)."""
    done = subprocess.run([PYTHON, "-c", FORKED_CHILD_EXITS, impl],
                          env=child_env(), capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr
    cpu, served, child_exit = done.stdout.split()
    assert child_exit == "0"    # not stuck at exit (SIGALRM: -14)
    assert served == "True"
    assert float(cpu) < 0.25    # idle, not spinning on a stop it never made
