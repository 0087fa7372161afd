"""What an http.server keep-alive request costs in the handler's own Python.

    python bench/http_handler_cost.py [--requests 20000]

(``python -m bench http`` runs it too, after the servers.)  Runs
http_servers.py's stdlib handler (do_GET answering 200 "ok", HTTP/1.1)
over in-memory files, so no socket, syscall or thread switch is counted:
the part of each request no server can make faster.
"""

import argparse
import io
import os
import sys
import time

if __package__ in (None, ""):   # run as a script: make ``bench`` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))

from bench.http_servers import build_server

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"


def in_memory_handler(requests):
    """The `stdlib` rows' handler, built without a socket: its files are
    BytesIO."""
    _, handler_class = build_server("stdlib", "http11")
    handler = handler_class.__new__(handler_class)
    handler.client_address = ("127.0.0.1", 1)
    handler.server = None
    handler.close_connection = False
    handler.rfile = io.BytesIO(REQUEST * requests)
    handler.wfile = io.BytesIO()
    return handler


def cost(requests):
    """Microseconds of handler Python per request, over *requests*."""
    handler = in_memory_handler(requests)
    started = time.perf_counter()
    for _ in range(requests):
        handler.handle_one_request()
    elapsed = time.perf_counter() - started
    assert handler.wfile.getvalue().count(b"200 OK") == requests
    return elapsed / requests * 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=20000)
    args = ap.parse_args()
    print("%.1f µs of handler Python per request (%d requests)"
          % (cost(args.requests), args.requests))


if __name__ == "__main__":
    main()
