"""Which engine csockserver picks, and what the environment variables do;
and that the ``engine`` fixture really serves on the engine it names."""

import io
import os
import subprocess
import sys

import pytest

import csockserver
import csockserver._pure
from csockserver._engine import streams as _streams
from tests.support.clients import recv_line, stream_client
from tests.support.engines import ENGINES
from tests.support.env import TREE
from tests.support.servers import serving

ROOT = TREE
# Importing with the compiled module blocked simulates a missing extension.
BLOCK_EXTENSION = "import sys; sys.modules['csockserver._cengine'] = None; "


def _run(code, **env_vars):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CSOCKSERVER_")}
    env["PYTHONPATH"] = ROOT
    env.update(env_vars)
    return subprocess.run([sys.executable, "-c", code], env=env,
                          capture_output=True, text=True, timeout=60)


def test_no_extensions_forces_the_pure_engine():
    run = _run("import csockserver; print(csockserver.IMPLEMENTATION)",
               CSOCKSERVER_NO_EXTENSIONS="1")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "python"


def test_no_extensions_wins_over_require():
    run = _run("import csockserver; print(csockserver.IMPLEMENTATION)",
               CSOCKSERVER_NO_EXTENSIONS="1",
               CSOCKSERVER_REQUIRE_EXTENSIONS="1")
    assert run.stdout.strip() == "python", run.stderr


def test_missing_extension_falls_back_to_the_pure_engine():
    run = _run(BLOCK_EXTENSION +
               "import csockserver; print(csockserver.IMPLEMENTATION)")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "python"


def test_missing_extension_is_an_error_when_required():
    run = _run(BLOCK_EXTENSION + "import csockserver",
               CSOCKSERVER_REQUIRE_EXTENSIONS="1")
    assert run.returncode != 0
    assert "ImportError" in run.stderr or "ModuleNotFoundError" in run.stderr


def test_compiled_engine_is_used_when_it_imports():
    probe = _run("import csockserver._cengine")
    if probe.returncode != 0:
        pytest.skip("the compiled engine is not built")
    run = _run("import csockserver; print(csockserver.IMPLEMENTATION)")
    assert run.stdout.strip() == "cython", run.stderr


def test_install_and_uninstall_swap_socketserver():
    code = (
        "import sys, socketserver as std, csockserver\n"
        "csockserver.install()\n"
        "import socketserver\n"
        "assert socketserver is csockserver\n"
        "assert csockserver.TCPServer.__module__ == 'socketserver'\n"
        "import http.server\n"
        "assert issubclass(http.server.HTTPServer, csockserver.TCPServer)\n"
        "csockserver.uninstall()\n"
        "import socketserver\n"
        "assert socketserver is std\n"
        "assert csockserver.TCPServer.__module__ != 'socketserver'\n"
        "print('ok')\n")
    run = _run(code)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "ok"


# -- the engine fixture: both engines in this process -------------------------

PURE_DIR = os.path.dirname(csockserver._pure.__file__) + os.sep


@pytest.mark.parametrize("server_class", ["TCPServer", "ThreadingTCPServer"])
def test_engine_fixture_serves_on_that_engine(engine, server_class):
    """A server run under each value of the ``engine`` fixture is served by
    that engine's code, seen from the handler: under the pure engine the
    Python frames below it are csockserver._pure's; under the compiled one
    none of them is, nor the stock finish_request (the engine constructs
    the handler itself, from C).  rfile stays the import-time engine's."""
    seen = {}

    class Recorder(csockserver.StreamRequestHandler):
        def handle(self):
            # 0: handle, 1: BaseRequestHandler.__init__, 2: what built the
            # handler, and on down the thread's stack.
            frame = sys._getframe(2)
            callers = []
            while frame is not None:
                callers.append((frame.f_code.co_filename,
                                frame.f_code.co_name))
                frame = frame.f_back
            seen["callers"] = callers
            seen["rfile"] = type(self.rfile)
            self.wfile.write(self.rfile.readline().upper())

    server = getattr(csockserver, server_class)(("127.0.0.1", 0), Recorder)
    with serving(server):
        with stream_client(server) as client:
            client.sendall(b"ping\n")
            assert recv_line(client) == b"PING\n"

    callers = seen["callers"]
    in_pure = [name for path, name in callers if path.startswith(PURE_DIR)]
    if engine is ENGINES["python"]:
        assert callers[0][0].startswith(PURE_DIR), callers
    else:
        assert in_pure == [], callers
        assert "finish_request" not in [name for _, name in callers]
    # Picked at import with the engine, whatever this test runs on.
    assert seen["rfile"] is (_streams._CompiledReader or io.BufferedReader)
