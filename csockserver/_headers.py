"""http.client.parse_headers, with the compiled engine's parser where its
result is the standard library's.

http.server reads every request's headers through
``http.client.parse_headers(rfile, _class=MessageClass)``, which hands the
lines it read to email.parser: about half of what a small keep-alive
request costs.  ``parse_headers`` here reads the lines with http.client's
own ``_read_headers`` (so its limits, errors and messages are the running
interpreter's) and lets the compiled engine build the message when the
block is the plain kind (``src_c/headers.pxi`` says which): the same
``HTTPMessage``, headers, payload and ``str()``.  Anything else, another
message class, or the pure-Python engine, is parsed by the standard
library's code, as before.

``place(owner)`` puts it in place of ``http.client.parse_headers`` (the
name http.server and http.client's responses look up at each call) while
at least one owner wants it: ``install()`` and ``csockserver.http``.
A ``parse_headers`` that someone else put there is left alone.
"""

import email.parser
import functools
import http.client as _client

from ._engine import selection as _selection

_stdlib_parse_headers = _client.parse_headers
_HTTPMessage = _client.HTTPMessage
_read_headers = getattr(_client, "_read_headers", None)
# From Python 3.13 http.client parses the lines it read in a function of
# its own; before, parse_headers did it inline, as the fallback below does.
_stdlib_parse_lines = getattr(_client, "_parse_header_lines", None)
if _stdlib_parse_lines is None:
    def _stdlib_parse_lines(header_lines, _class=_HTTPMessage):
        text = b"".join(header_lines).decode("iso-8859-1")
        return email.parser.Parser(_class=_class).parsestr(text)


def _parse_lines(lines, message_class):
    parse = _selection.engine.parse_header_lines
    if parse is not None and message_class is _HTTPMessage:
        message = parse(lines, message_class)
        if message is not None:
            return message
    return _stdlib_parse_lines(lines, message_class)


# The running interpreter's signature (3.15 added _max_headers).
if "_max_headers" in (_stdlib_parse_headers.__kwdefaults__ or {}):
    def parse_headers(fp, _class=_HTTPMessage, *, _max_headers=None):
        return _parse_lines(_read_headers(fp, _max_headers), _class)
else:
    def parse_headers(fp, _class=_HTTPMessage):
        return _parse_lines(_read_headers(fp), _class)
# Its name, module, docstring and signature (inspect follows __wrapped__)
# are the standard library's, so that pickling and introspection agree.
functools.update_wrapper(parse_headers, _stdlib_parse_headers)

_owners = set()


def usable():
    """Whether parse_headers can take over: a compiled parser, and the
    http.client it was written against."""
    return (_read_headers is not None
            and getattr(_selection.engine, "parse_header_lines",
                        None) is not None)


def place(owner):
    """Put parse_headers in http.client for *owner* (if usable)."""
    if not usable():
        return
    if not _owners and _client.parse_headers is _stdlib_parse_headers:
        _client.parse_headers = parse_headers
    _owners.add(owner)


def remove(owner):
    """*owner* no longer wants it: the last one out puts the standard
    library's back (unless someone has replaced ours since)."""
    _owners.discard(owner)
    if not _owners and _client.parse_headers is parse_headers:
        _client.parse_headers = _stdlib_parse_headers
