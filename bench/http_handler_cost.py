"""What an http.server keep-alive request costs in the handler's own Python.

    python bench/http_handler_cost.py [--requests 20000]

Runs http_wrk.py's handler (the stdlib's BaseHTTPRequestHandler, do_GET
answering 200 "ok") over in-memory files, so no socket, syscall or thread
switch is counted: the part of each request no server can make faster.
"""

import argparse
import io
import time
from http.server import BaseHTTPRequestHandler

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"


class OkHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def __init__(self, requests):
        # No socket: the handler's files are in memory.
        self.client_address = ("127.0.0.1", 1)
        self.server = None
        self.close_connection = False
        self.rfile = io.BytesIO(REQUEST * requests)
        self.wfile = io.BytesIO()

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format, *args):
        pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=20000)
    args = ap.parse_args()
    handler = OkHandler(args.requests)
    started = time.perf_counter()
    for _ in range(args.requests):
        handler.handle_one_request()
    elapsed = time.perf_counter() - started
    print("%.1f µs of handler Python per request (%d requests)"
          % (elapsed / args.requests * 1e6, args.requests))


if __name__ == "__main__":
    main()
