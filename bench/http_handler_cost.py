"""What an http.server keep-alive request costs in the handler's own Python.

    python bench/http_handler_cost.py [--requests 20000]
    python bench/http_handler_cost.py --parts    # parse_request's parts

(``python -m bench http`` runs it too, after the servers.)  Runs
http_servers.py's stdlib handler (do_GET answering 200 "ok", HTTP/1.1)
over in-memory files, so no socket, syscall or thread switch is counted:
the part of each request no server can make faster.

``--parts`` times ``parse_request()`` on that request, and the
``http.client.parse_headers()`` it calls alone, once with the standard
library's parser and once with csockserver's in place: what is left is
the request line and version checks, which csockserver leaves to
http.server.  Each figure is the best of 7 rounds.
"""

import argparse
import http.client
import io
import os
import sys
import time
import timeit

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


def best_of(function, number):
    """Microseconds per call of *function*: the best of 7 rounds."""
    return min(timeit.repeat(function, number=number, repeat=7)) / number * 1e6


def parse_request_parts(number):
    """{parser: (parse_request µs, parse_headers µs)} for the standard
    library's header parser and, where the compiled engine is in use,
    csockserver's."""
    import csockserver.http     # noqa: F401  (puts its parser in place)
    from csockserver import _headers

    handler = in_memory_handler(0)
    head_end = REQUEST.index(b"\r\n") + 2

    def parse_request():
        handler.rfile = io.BytesIO(REQUEST)
        handler.raw_requestline = handler.rfile.readline(65537)
        handler.close_connection = True
        handler.request_version = "HTTP/0.9"
        handler.parse_request()

    def parse_headers():
        reader = io.BytesIO(REQUEST)
        reader.seek(head_end)
        http.client.parse_headers(reader)

    parsers = {}
    if _headers.usable():
        parsers["csockserver's"] = http.client.parse_headers
    parsers["the standard library's"] = _headers._stdlib_parse_headers
    placed = http.client.parse_headers
    figures = {}
    try:
        for name, parser in parsers.items():
            http.client.parse_headers = parser
            figures[name] = (best_of(parse_request, number),
                             best_of(parse_headers, number))
    finally:
        http.client.parse_headers = placed
    return figures


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--parts", action="store_true",
                    help="time parse_request() and its header parsing"
                         " (a few seconds)")
    args = ap.parse_args()
    if not args.parts:
        print("%.1f µs of handler Python per request (%d requests)"
              % (cost(args.requests), args.requests))
        return
    for name, (whole, headers) in parse_request_parts(args.requests).items():
        print("with %s header parser: parse_request %.2f µs, of which"
              " parse_headers %.2f µs; the request line and version checks"
              " %.2f µs" % (name, whole, headers, whole - headers))


if __name__ == "__main__":
    main()
