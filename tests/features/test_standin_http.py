"""http.server's own classes after csockserver.install(): the stand-in path.

Code one cannot edit imports ``http.server`` and uses its
ThreadingHTTPServer with a handler derived from BaseHTTPRequestHandler.
Once install() has run first, those classes are built on csockserver, and
they must get what ``csockserver.http`` gives: the compiled files (with
the compiled engine), TCP_NODELAY and the engine's own dispatch.  Each
case runs in a fresh interpreter (install() must come before the first
``import http.server``), on the engine this run uses.
"""

import json
import subprocess

import pytest

import csockserver

from tests.support.env import PYTHON, child_env

COMPILED = csockserver.IMPLEMENTATION == "cython"

# A user's server, as written for the standard library, run after install().
STANDIN_SERVER = r'''
import csockserver
csockserver.install()

import http.client
import http.server
import json
import socket
import threading

from csockserver._engine import plan as _plan


class Recorder(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = json.dumps({
            "rfile": type(self.rfile).__name__,
            "wfile": type(self.wfile).__name__,
            "nodelay": self.connection.getsockopt(
                socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0,
        }).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass


def kinds(server):
    plan = _plan.make_plan(server)
    return {field: _plan.Kind(getattr(plan, field)).name
            for field in _plan.FIELDS if field not in _plan.SETTINGS}


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
threading.Thread(target=server.serve_forever, daemon=True).start()
try:
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=5)
    seen = []
    for _ in range(2):
        conn.request("GET", "/")
        seen.append(json.loads(conn.getresponse().read()))
    conn.close()
finally:
    server.shutdown()
    server.server_close()

import csockserver.http
reference = csockserver.http.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
reference.server_close()
print(json.dumps({
    "engine": csockserver.IMPLEMENTATION,
    "bases": [issubclass(http.server.ThreadingHTTPServer,
                         csockserver.ThreadingMixIn),
              issubclass(http.server.HTTPServer, csockserver.TCPServer),
              issubclass(http.server.BaseHTTPRequestHandler,
                         csockserver.StreamRequestHandler)],
    "seen": seen,
    "plan": kinds(server),
    "reference_plan": kinds(reference),
}))
'''


@pytest.fixture(scope="module")
def standin():
    """What the stand-in server's process reported (run once per module)."""
    run = subprocess.run([PYTHON, "-c", STANDIN_SERVER], env=child_env(),
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.splitlines()[-1])
    assert report["engine"] == csockserver.IMPLEMENTATION
    return report


def test_http_server_classes_are_built_on_csockserver(standin):
    assert standin["bases"] == [True, True, True]


def test_standin_handler_gets_compiled_files_and_nodelay(standin):
    expected = ({"rfile": "SocketReader", "wfile": "_CompiledSocketWriter",
                 "nodelay": True} if COMPILED else
                {"rfile": "BufferedReader", "wfile": "_SocketWriter",
                 "nodelay": True})
    # Both requests of a kept-alive connection, so the files are the
    # connection's, not a first request's.
    assert standin["seen"] == [expected, expected]


def test_standin_server_takes_the_engines_own_dispatch(standin):
    plan = standin["plan"]
    # Every hook http.server does not override is run by the engine, as
    # for csockserver.http's own ThreadingHTTPServer.
    assert plan == standin["reference_plan"]
    assert plan["process_request"] == "THREAD"
    assert plan["process_request_thread"] == "THREAD_BODY"
    assert plan["get_request"] == "ACCEPT"
    assert plan["finish_request"] == "NEW_HANDLER"
    assert [field for field, kind in plan.items() if kind == "PYTHON"] == [
        "collect_children"]     # a ThreadingMixIn server has none
