# StreamRequestHandler's rfile and wfile in C: a buffered reader standing in
# for socket.makefile('rb'), and the write() of socketserver's _SocketWriter.
# Same results, same exceptions, same socket timeout rules; the buffer and
# the syscalls stay in C, and the GIL is released only when a call has to
# wait for the peer.  (EWOULDBLOCK is EAGAIN on Linux.)

# How much a refill asks of the kernel: what BufferedReader over makefile()
# asks (io.DEFAULT_BUFFER_SIZE: 8 KiB up to Python 3.13, 128 KiB from 3.14),
# so data is never read further ahead than the standard library reads it.
cdef Py_ssize_t DEFAULT_CHUNK = _io_module.DEFAULT_BUFFER_SIZE
# A buffer grown for a huge line is given back once it is empty and bigger
# than this, or than two refills (what an ordinary refill may grow it to).
cdef Py_ssize_t KEEP_AT_MOST = 65536
# A send is first tried with the GIL held and MSG_DONTWAIT, at most this much:
# a small reply that fits the socket buffer then costs no GIL hand-off.
cdef Py_ssize_t SEND_WITHOUT_WAITING = 65536


cdef object _io_unsupported = _io_module.UnsupportedOperation
# Python 3.8 and 3.9 reject a float size with a message of its own.
cdef bint FLOAT_HAS_OWN_MESSAGE = _sys.version_info < (3, 10)
# BufferedReader.truncate() looks at `closed` first from Python 3.9 on.
cdef bint TRUNCATE_CHECKS_CLOSED = _sys.version_info >= (3, 9)


cdef inline int _fd_of(object sock) except -1:
    cdef int fd = sock.fileno()
    if fd < 0:
        _raise_errno(EBADF)    # what recv/send on a closed socket raise
    return fd


cdef int _wait_for(int fd, short events, double deadline) except -1:
    """poll() fd with the GIL released until ready (1) or past deadline (0).

    A negative deadline waits without limit.  EINTR runs the signal
    handlers (which may raise) and waits again for what is left.
    """
    cdef pollfd entry
    cdef int ready, err
    cdef double left = -1.0
    while True:
        if deadline >= 0:
            left = deadline - _now()
            if left <= 0:
                return 0
        entry.fd = fd
        entry.events = events
        entry.revents = 0
        with nogil:
            ready = poll(&entry, 1, millis(left))
            err = errno
        if ready > 0:
            return 1
        if ready < 0:
            if err != EINTR:
                _raise_errno(err)
            PyErr_CheckSignals()


cdef Py_ssize_t _recv_some(object sock, char *into, Py_ssize_t n,
                           double read_deadline) except -1:
    """One recv() of at most n bytes, as socket.recv_into() would do it.

    Returns the byte count (0 at end of file), WOULD_BLOCK or TIMED_OUT.
    The first try holds the GIL: when data is already queued, that is the
    cheapest way to get it.  Waiting happens with the GIL released, until
    the socket's timeout or read_deadline (a _now() time; negative for
    none), whichever comes first; queued data is taken even after
    read_deadline, as only a wait can pass it.
    """
    cdef int fd = _fd_of(sock)
    cdef ssize_t got
    cdef int err
    cdef double deadline = -1.0
    cdef bint deadline_set = False
    got = recv(fd, into, n, MSG_DONTWAIT)
    if got >= 0:
        return got
    err = errno
    timeout = None
    while True:
        if err == EAGAIN:
            if not deadline_set:
                timeout = sock.gettimeout()
                if timeout is not None:
                    if timeout == 0.0:
                        return WOULD_BLOCK
                    deadline = _now() + timeout
                deadline = _earlier(deadline, read_deadline)
                deadline_set = True
            if deadline < 0:
                # A blocking socket: let recv() itself wait.  (If someone
                # made the fd non-blocking behind socket's back, fall back
                # to poll() so this cannot spin.)
                with nogil:
                    got = recv(fd, into, n, 0)
                    err = errno
                if got >= 0:
                    return got
                if err == EAGAIN:
                    _wait_for(fd, POLLIN, -1.0)
                    got = recv(fd, into, n, MSG_DONTWAIT)
                    if got >= 0:
                        return got
                    err = errno
                continue
            if not _wait_for(fd, POLLIN, deadline):
                return TIMED_OUT
        elif err == EINTR:
            PyErr_CheckSignals()
        else:
            _raise_errno(err)
        got = recv(fd, into, n, MSG_DONTWAIT)
        if got >= 0:
            return got
        err = errno


cdef int _send_all(object sock, const char *data, Py_ssize_t n) except -1:
    """socket.sendall(): everything is sent, or an exception says why not.

    The socket's timeout bounds the whole call, as in sendall().  Signal
    handlers run after an interrupted or partial send, so a handler that
    raises stops the send.
    """
    cdef int fd = _fd_of(sock)
    cdef Py_ssize_t sent = 0, part
    cdef ssize_t result
    cdef int err
    cdef bint try_now = True
    cdef double deadline = -1.0
    cdef bint deadline_set = False
    timeout = None
    while sent < n:
        part = n - sent
        if try_now:
            if part > SEND_WITHOUT_WAITING:
                part = SEND_WITHOUT_WAITING
            result = send(fd, data + sent, part, MSG_DONTWAIT)
            err = errno
            try_now = False
        elif timeout is None:
            with nogil:
                result = send(fd, data + sent, part, 0)
                err = errno
        else:
            with nogil:
                result = send(fd, data + sent, part, MSG_DONTWAIT)
                err = errno
        if result >= 0:
            sent += result
            if sent < n:
                PyErr_CheckSignals()
            continue
        if err == EINTR:
            PyErr_CheckSignals()
        elif err == EAGAIN:
            if not deadline_set:
                timeout = sock.gettimeout()
                if timeout is not None and timeout > 0.0:
                    deadline = _now() + timeout
                deadline_set = True
            if timeout is None:
                if csock_get_status_flags(fd) & O_NONBLOCK:
                    _wait_for(fd, POLLOUT, -1.0)
            elif timeout == 0.0:
                _raise_errno(err)      # BlockingIOError, as sendall()
            elif not _wait_for(fd, POLLOUT, deadline):
                raise _socket.timeout("timed out")
        else:
            _raise_errno(err)
    return 0


cdef inline Py_ssize_t _index_argument(object size) except? -2:
    """A size that must be an integer, converted as the running Python's
    argument parsing does (before 3.10 it words a float apart)."""
    if FLOAT_HAS_OWN_MESSAGE and isinstance(size, float):
        raise TypeError("integer argument expected, got float")
    return PyNumber_Index(size)


cdef inline Py_ssize_t _size_argument(object size) except? -2:
    """A size argument that may be None (meaning -1), as BufferedReader's."""
    if size is None:
        return -1
    if not PyIndex_Check(size):
        raise TypeError("argument should be integer or None, not '%s'"
                        % type(size).__name__)
    return PyNumber_Index(size)


# Its fields (and the lock guarding each shared one) are declared in
# streams.pxd.
cdef class SocketReader:
    """A buffered binary reader over a connected socket.

    Behaves as ``sock.makefile('rb')`` does for everything a request
    handler uses of it: read, read1, readline, readlines, readinto,
    readinto1, peek, iteration, fileno, close.  The socket's own timeout
    applies to each wait for data, and the socket stays open until this
    reader is closed (as with makefile()).

    Beyond makefile(): ``deadline``, a ``time.monotonic()`` time or None
    (the default).  Once set, no wait for data goes past it: a read that
    would have to wait longer raises socket.timeout, as the socket's own
    timeout does, and the reader is then done, as after that one.
    """

    def __cinit__(self, sock, Py_ssize_t buffer_size=DEFAULT_CHUNK):
        # Until fully built: close() has nothing to do.
        csock_store_int(&self._closed, True)
        csock_store_double(&self._deadline, -1.0)
        if buffer_size <= 0:
            raise ValueError("buffer size must be strictly positive")
        self._lock = PyThread_allocate_lock()
        if self._lock == NULL:
            raise MemoryError()
        self._chunk = buffer_size
        self._keep = KEEP_AT_MOST
        if buffer_size > KEEP_AT_MOST // 2:
            self._keep = (buffer_size if buffer_size > PY_SSIZE_T_MAX // 2
                          else 2 * buffer_size)
        self._sock = sock
        # Counted as one of the socket's files: socket.close() leaves the
        # fd open until this reader is closed too, as for makefile().
        sock._io_refs += 1
        csock_store_int(&self._closed, False)

    def __dealloc__(self):
        PyMem_Free(self._buf)
        if self._lock != NULL:
            PyThread_free_lock(self._lock)

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # -- one reader at a time, as BufferedReader's own lock ensures --------

    cdef int _enter(self) except -1:
        cdef unsigned long me = PyThread_get_thread_ident()
        if not PyThread_acquire_lock(self._lock, NOWAIT_LOCK):
            if csock_load_ulong(&self._owner) == me:
                raise RuntimeError("reentrant call inside %r" % (self,))
            with nogil:
                PyThread_acquire_lock(self._lock, WAIT_LOCK)
        csock_store_ulong(&self._owner, me)
        return 0

    cdef inline void _leave(self) noexcept:
        csock_store_ulong(&self._owner, 0)
        PyThread_release_lock(self._lock)

    cdef inline int _check_open(self, str message) except -1:
        if csock_load_int(&self._closed):
            raise ValueError(message)
        return 0

    # -- the buffer ----------------------------------------------------------

    cdef int _reserve(self, Py_ssize_t extra) except -1:
        """Room for `extra` more bytes after _end, keeping the unread data."""
        cdef Py_ssize_t unread = self._end - self._pos
        cdef Py_ssize_t size
        cdef char *grown
        if self._size - self._end >= extra:
            return 0
        if self._pos:
            memmove(self._buf, self._buf + self._pos, unread)
            self._pos = 0
            self._end = unread
            if self._size - self._end >= extra:
                return 0
        size = self._size * 2
        if size < unread + extra:
            size = unread + extra
        grown = <char *>PyMem_Realloc(self._buf, size)
        if grown == NULL:
            raise MemoryError()
        self._buf = grown
        self._size = size
        return 0

    cdef void _release_spare(self) noexcept:
        """Give back a buffer that a huge line or read() grew, once empty."""
        if self._pos == self._end:
            self._pos = self._end = 0
            if self._size > self._keep:
                PyMem_Free(self._buf)
                self._buf = NULL
                self._size = 0

    cdef Py_ssize_t _recv_into(self, char *into, Py_ssize_t n) except -1:
        """_recv_some() with makefile()'s rule: no reading after a timeout."""
        if csock_load_int(&self._timed_out):
            raise OSError("cannot read from timed out object")
        got = _recv_some(self._sock, into, n,
                         csock_load_double(&self._deadline))
        if got == TIMED_OUT:
            csock_store_int(&self._timed_out, True)
            raise _socket.timeout("timed out")
        return got

    cdef Py_ssize_t _fill(self) except -1:
        """Append one refill to the buffer; returns what _recv_some does."""
        self._reserve(self._chunk)
        got = self._recv_into(self._buf + self._end, self._chunk)
        if got > 0:
            self._end += got
        return got

    cdef object _take(self, Py_ssize_t n):
        """The next n buffered bytes, consumed."""
        data = PyBytes_FromStringAndSize(self._buf + self._pos, n)
        self._pos += n
        self._release_spare()
        return data

    # -- reading, with the lock held ------------------------------------------

    cdef object _readline(self, Py_ssize_t limit):
        cdef Py_ssize_t scanned = 0, unread, window, got
        cdef char *newline
        while True:
            unread = self._end - self._pos
            window = unread if limit < 0 or limit > unread else limit
            if window > scanned:
                newline = <char *>memchr(self._buf + self._pos + scanned,
                                         b'\n', window - scanned)
                if newline != NULL:
                    return self._take(newline - (self._buf + self._pos) + 1)
                scanned = window
            if limit >= 0 and unread >= limit:
                return self._take(limit)
            try:
                got = self._fill()
            except BaseException:
                # BufferedReader has taken the partial line off its buffer
                # by now, and loses it with the error: so do we.
                self._pos += window
                self._release_spare()
                raise
            if got <= 0:               # end of file, or nothing yet
                return self._take(window)

    cdef object _read_all(self):
        cdef Py_ssize_t got
        while True:
            self._reserve(self._chunk)
            try:
                got = self._recv_into(self._buf + self._end,
                                      self._size - self._end)
            except BaseException:
                self._pos = self._end       # lost with the error, as there
                self._release_spare()
                raise
            if got == 0:
                break
            if got == WOULD_BLOCK:
                if self._end == self._pos:
                    return None
                break
            self._end += got
        return self._take(self._end - self._pos)

    cdef object _read(self, Py_ssize_t n):
        cdef Py_ssize_t unread = self._end - self._pos
        cdef Py_ssize_t got
        if n < 0:
            return self._read_all()
        if n <= unread:
            return self._take(n)
        data = PyBytes_FromStringAndSize(NULL, n)
        got = self._copy_into(PyBytes_AS_STRING(data), n, True)
        if got == WOULD_BLOCK:
            return None
        if got < n:
            return data[:got]
        return data

    cdef Py_ssize_t _copy_into(self, char *out, Py_ssize_t n,
                               bint until_full) except -1:
        """Fill out[:n] as BufferedReader's readinto (until_full) or
        readinto1 does: buffered bytes first; then remainders larger than
        the buffer straight from the socket, smaller ones through a refill.
        Returns the count, or WOULD_BLOCK if nothing could be had without
        waiting.
        """
        cdef Py_ssize_t got = self._end - self._pos, result, part
        if got > n:
            got = n
        if got:
            # Not even a copy of nothing from a reader with no buffer yet
            # (or none since _release_spare()): memcpy from NULL is undefined.
            memcpy(out, self._buf + self._pos, got)
        self._pos += got
        self._release_spare()
        while got < n:
            part = n - got
            if part > self._chunk:
                result = self._recv_into(out + got, part)
            elif until_full or got == 0:
                result = self._fill()
                if result > 0:
                    if part > self._end - self._pos:
                        part = self._end - self._pos
                    memcpy(out + got, self._buf + self._pos, part)
                    self._pos += part
                    got += part
                    self._release_spare()
                    continue
            else:
                break                   # readinto1: has bytes already
            if result == 0 or (result == WOULD_BLOCK and got):
                break
            if result == WOULD_BLOCK:
                return WOULD_BLOCK
            got += result
            if not until_full:
                break
        return got

    cdef object _readinto(self, object buffer, bint until_full, str name):
        """readinto()/readinto1(): the argument is checked before the file
        is, with BufferedReader's messages."""
        cdef Py_buffer view
        cdef Py_ssize_t got
        try:
            PyObject_GetBuffer(buffer, &view, PyBUF_WRITABLE)
        except (BufferError, TypeError):
            raise TypeError("%s() argument must be read-write bytes-like "
                            "object, not %s" % (
                                name, "None" if buffer is None
                                else type(buffer).__name__)) from None
        try:
            self._check_open("readinto of closed file")
            if view.len == 0:
                return 0
            self._enter()
            try:
                got = self._copy_into(<char *>view.buf, view.len, until_full)
            finally:
                self._leave()
        finally:
            PyBuffer_Release(&view)
        if got == WOULD_BLOCK:
            return None
        return got

    # -- the file interface ---------------------------------------------------

    def read(self, size=-1):
        """Up to size bytes (all until end of file if size is negative)."""
        cdef Py_ssize_t n = _size_argument(size)
        if n < -1:
            raise ValueError("read length must be non-negative or -1")
        self._check_open("read of closed file")
        if n == 0:
            return b""
        self._enter()
        try:
            return self._read(n)
        finally:
            self._leave()

    def read1(self, size=-1):
        """Buffered bytes if there are any, else the result of one recv()."""
        cdef Py_ssize_t n = _index_argument(size)
        cdef Py_ssize_t unread, got
        self._check_open("read of closed file")
        if n < 0:
            n = self._chunk
        if n == 0:
            return b""
        self._enter()
        try:
            unread = self._end - self._pos
            if unread:
                return self._take(n if n < unread else unread)
            data = PyBytes_FromStringAndSize(NULL, n)
            got = self._recv_into(PyBytes_AS_STRING(data), n)
            if got == n:
                return data
            return data[:got] if got > 0 else b""
        finally:
            self._leave()

    def readline(self, size=-1):
        """One line, newline included; at most size bytes if size >= 0."""
        cdef Py_ssize_t limit = _size_argument(size)
        self._check_open("readline of closed file")
        self._enter()
        try:
            return self._readline(limit)
        finally:
            self._leave()

    def readlines(self, hint=-1):
        """The remaining lines, stopping once hint bytes have been read."""
        cdef Py_ssize_t limit = _size_argument(hint)
        cdef Py_ssize_t total = 0
        self._check_open("I/O operation on closed file.")
        lines = []
        self._enter()
        try:
            while True:
                line = self._readline(-1)
                if not line:
                    break
                lines.append(line)
                total += len(line)
                if 0 < limit < total:
                    break
        finally:
            self._leave()
        return lines

    def readinto(self, buffer):
        """Fill buffer as far as the data goes; the count of bytes."""
        return self._readinto(buffer, True, "readinto")

    def readinto1(self, buffer):
        """readinto() with at most one recv()."""
        return self._readinto(buffer, False, "readinto1")

    def peek(self, size=0):
        """Buffered bytes, not consumed; refills once if there are none."""
        _index_argument(size)
        self._check_open("peek of closed file")
        self._enter()
        try:
            if self._end == self._pos and self._fill() <= 0:
                return b""
            return PyBytes_FromStringAndSize(self._buf + self._pos,
                                             self._end - self._pos)
        finally:
            self._leave()

    def __iter__(self):
        self._check_open("I/O operation on closed file.")
        return self

    def __next__(self):
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def fileno(self):
        self._check_open("I/O operation on closed file.")
        return self._sock.fileno()

    def readable(self):
        self._check_open("I/O operation on closed socket.")
        return True

    def writable(self):
        return False

    def seekable(self):
        self._check_open("I/O operation on closed socket.")
        return False

    def isatty(self):
        self._check_open("I/O operation on closed file.")
        return False

    def flush(self):
        self._check_open("I/O operation on closed file.")

    def seek(self, offset, whence=0):
        self._check_open("seek of closed file")
        raise _io_unsupported("File or stream is not seekable.")

    def tell(self):
        raise _io_unsupported("seek")

    def truncate(self, size=None):
        if TRUNCATE_CHECKS_CLOSED:
            self._check_open("truncate of closed file")
        raise _io_unsupported("truncate")

    def write(self, data):
        raise _io_unsupported("write")

    def detach(self):
        raise _io_unsupported("detach")

    def close(self):
        """Close the reader (not the socket, unless socket.close() waits
        on it).

        Like BufferedReader.close(), it waits for a read running in another
        thread: that read must not go on with an fd that is closed, and
        maybe reused for another connection, under it.
        """
        if csock_load_int(&self._closed):
            return
        self._enter()
        try:
            if csock_load_int(&self._closed):
                return
            csock_store_int(&self._closed, True)
            PyMem_Free(self._buf)
            self._buf = NULL
            self._size = self._pos = self._end = 0
            self._sock._decref_socketios()
        finally:
            self._leave()

    @property
    def closed(self):
        return bool(csock_load_int(&self._closed))

    @property
    def deadline(self):
        """When waits for data end (time.monotonic()), or None."""
        cdef double at = csock_load_double(&self._deadline)
        return None if at < 0 else at

    @deadline.setter
    def deadline(self, when):
        cdef double at
        if when is None:
            csock_store_double(&self._deadline, -1.0)
            return
        at = when
        if at != at:
            raise ValueError("deadline must not be NaN")
        # A time already past stays past (negative would mean none).
        csock_store_double(&self._deadline, at if at > 0.0 else 0.0)

    @property
    def timed_out(self):
        """Whether a read timed out (the reader refuses to read since)."""
        return bool(csock_load_int(&self._timed_out))

    @property
    def name(self):
        return -1 if csock_load_int(&self._closed) else self._sock.fileno()

    @property
    def mode(self):
        return "rb"

    def __enter__(self):
        self._check_open("I/O operation on closed file.")
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __repr__(self):
        return "<csockserver SocketReader name=%r>" % (self.name,)

    def __reduce__(self):
        raise TypeError("cannot pickle %r object" % type(self).__name__)


def socket_writer_write(self, data):
    """_SocketWriter.write in C: send all of data; return its length.

    Bound as the write() method of csockserver._engine.streams' compiled
    writer, a subclass of _SocketWriter, which keeps everything else of it
    (closing, flush(), the io.BufferedIOBase behaviour) exactly as it is.
    """
    cdef Py_buffer view
    sock = self._sock
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        _send_all(sock, <const char *>view.buf, view.len)
        return view.len
    finally:
        PyBuffer_Release(&view)


# isinstance(rfile, io.BufferedIOBase) holds for the standard library's
# reader; it holds for this one too.
_io_module.BufferedIOBase.register(SocketReader)
