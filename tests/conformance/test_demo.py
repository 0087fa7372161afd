"""``python -m csockserver``, the demo: it echoes, stops on the first Ctrl-C
with a client still connected, listens on IPv6 hosts, and says in one line
when its port is taken.

Each test runs the demo in a child interpreter on this engine (the child
inherits CSOCKSERVER_NO_EXTENSIONS), on a free port (``--port 0``).
"""

import re
import select
import signal
import socket
import subprocess
import time

import pytest

from tests.support.env import CLIENT_TIMEOUT, PYTHON, child_env, needs_fork
from tests.support.sockets import have_ipv6_loopback

# From SIGINT to the demo's exit; it takes milliseconds.
EXIT_BOUND = 5.0
# From the start to the banner line: an interpreter starting, under load.
START_BOUND = 20.0
BANNER = re.compile(r" on \[?([^\]]*)\]?:(\d+); Ctrl-C to stop$")


class Demo:
    """The demo, started in a child interpreter on a free port."""

    def __init__(self, *args):
        self.process = subprocess.Popen(
            [PYTHON, "-m", "csockserver", "--port", "0", *args],
            env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        try:
            ready, _, _ = select.select([self.process.stdout], [], [],
                                        START_BOUND)
            self.banner = (self.process.stdout.readline() if ready else "")
            found = BANNER.search(self.banner.rstrip("\n"))
            assert found, "no banner: %r, stderr %r" % (
                self.banner, self.stop_now())
        except BaseException:
            self.stop_now()
            raise
        self.host, self.port = found.group(1), int(found.group(2))

    def stop_now(self):
        """Kill it (a test failed); its stderr so far."""
        if self.process.poll() is None:
            self.process.kill()
        _, err = self.process.communicate(timeout=EXIT_BOUND)
        return err

    def interrupt(self):
        """Ctrl-C: the seconds it takes to exit, and its stderr."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGINT)
        try:
            _, err = self.process.communicate(timeout=EXIT_BOUND)
        except subprocess.TimeoutExpired:
            pytest.fail("the demo did not stop within %s s of SIGINT: %r"
                        % (EXIT_BOUND, self.stop_now()))
        return time.monotonic() - started, err


def echo(sock, line):
    sock.sendall(line)
    got = b""
    while not got.endswith(b"\n"):
        chunk = sock.recv(1024)
        if not chunk:
            break
        got += chunk
    return got


@pytest.mark.parametrize("mode", [
    [], ["--threading"], pytest.param(["--forking"], marks=needs_fork),
], ids=["default", "threading", "forking"])
def test_first_ctrl_c_stops_it_with_a_client_connected(mode):
    demo = Demo(*mode)
    with socket.create_connection((demo.host, demo.port),
                                  timeout=CLIENT_TIMEOUT) as client:
        assert echo(client, b"hello\n") == b"HELLO\n"
        took, err = demo.interrupt()
        assert demo.process.returncode == 0, err
        assert "Traceback" not in err, err
        assert err == "stopped\n"
        assert took < EXIT_BOUND
        # Nothing is left serving the connection: it ends.
        assert client.recv(1024) == b""


@pytest.mark.skipif(not have_ipv6_loopback(), reason="no ::1 here")
def test_ipv6_host():
    demo = Demo("--threading", "--host", "::1")
    assert demo.host == "::1"
    assert "[::1]:%d;" % demo.port in demo.banner
    with socket.create_connection(("::1", demo.port),
                                  timeout=CLIENT_TIMEOUT) as client:
        assert echo(client, b"six\n") == b"SIX\n"
    took, err = demo.interrupt()
    assert demo.process.returncode == 0, err
    assert err == "stopped\n"


def test_port_in_use_is_one_line_and_status_1():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [PYTHON, "-m", "csockserver", "--port", str(port)],
            env=child_env(), capture_output=True, text=True,
            timeout=START_BOUND)
    assert done.returncode == 1
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert "127.0.0.1:%d is already in use" % port in done.stderr
    assert "--port" in done.stderr
