# http.client's header parsing, for the header blocks whose result can be
# shown to equal the standard library's.
#
# http.client.parse_headers() reads a request's header lines, then hands
# them to email.parser (FeedParser, policy compat32): about 15 us for a
# four-header request, half of what http.server spends on one.  For the
# common block -- one line per header, a token for a name, a colon, a
# value of visible characters -- email.parser's result is plain: one
# (name, value) pair per line, the value stripped of leading blanks and
# of the line ending, no defect, an empty payload.  That is what
# parse_header_lines() builds; anything else (a folded line, a name that
# is not a token, a line with no colon or with a stray CR, control bytes,
# a Content-Type that makes the message multipart or message/*) returns
# None, and the caller parses with the standard library as it always did.
# csockserver._headers wires it in and tests/features/test_headers.py
# checks it against the standard library, version by version.


cdef inline bint _is_name_byte(unsigned char c) noexcept nogil:
    # email.feedparser's headerRE: a name is [\041-\071\073-\176]+ before
    # the colon (no blank, no control byte, no colon).
    return 0x21 <= c <= 0x7e and c != 0x3a


cdef inline bint _is_value_byte(unsigned char c) noexcept nogil:
    # Visible ASCII, blank and tab, and Latin-1 beyond the C1 controls:
    # none of them ends a line for email.parser, on any version.
    return c == 0x09 or 0x20 <= c <= 0x7e or c >= 0xa0


cdef bint _is_block_end(const unsigned char *data,
                        Py_ssize_t length) noexcept nogil:
    # http.client's _read_headers stops at b'\r\n', b'\n' or b''.
    return (length == 0 or (length == 1 and data[0] == 0x0a)
            or (length == 2 and data[0] == 0x0d and data[1] == 0x0a))


cdef object _header_field(const unsigned char *data, Py_ssize_t length):
    """(name, value) as email.parser makes them of one header line, or
    None for a line it might read otherwise."""
    cdef Py_ssize_t end = length, colon = 0, start, k
    if end and data[end - 1] == 0x0a:
        end -= 1
        if end and data[end - 1] == 0x0d:
            end -= 1
    while colon < end and _is_name_byte(data[colon]):
        colon += 1
    if colon == 0 or colon == end or data[colon] != 0x3a:
        return None     # folded, no name, not a token, or no colon
    for k in range(colon + 1, end):
        if not _is_value_byte(data[k]):
            return None
    start = colon + 1
    while start < end and (data[start] == 0x20 or data[start] == 0x09):
        start += 1
    return (PyUnicode_DecodeLatin1(<const char *>data, colon, NULL),
            PyUnicode_DecodeLatin1(<const char *>data + start, end - start,
                                   NULL))


cdef bint _changes_the_body(object name, object value) except -1:
    """Whether a header makes email.parser read the (empty) body as other
    than plain text: multipart/* and message/* Content-Types do."""
    if name.lower() != "content-type":
        return False
    value = value.lower()
    return "multipart" in value or "message" in value


def parse_header_lines(list lines, message_class):
    """The message http.client's parser makes of *lines* (what
    http.client._read_headers read), as ``message_class()`` with its
    headers and an empty payload; None where that parser's result may
    differ.  *message_class* must be http.client.HTTPMessage itself."""
    cdef Py_ssize_t count = len(lines), index, length
    cdef const unsigned char *data
    cdef bint line_ended = True
    cdef list fields = []
    for index in range(count):
        line = lines[index]
        if type(line) is not bytes:
            return None
        length = len(<bytes>line)
        data = <const unsigned char *>PyBytes_AS_STRING(line)
        if _is_block_end(data, length):
            if index != count - 1:
                return None
            break
        if not line_ended:
            return None     # only the block's end follows a cut line
        # A last line cut by the end of the stream has no newline;
        # email.parser takes it as a line all the same.
        line_ended = data[length - 1] == 0x0a
        field = _header_field(data, length)
        if field is None or _changes_the_body(field[0], field[1]):
            return None
        fields.append(field)
    message = message_class()
    message._headers = fields
    message._payload = ""
    return message
