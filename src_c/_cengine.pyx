"""csockserver's compiled engine.

The same interface as ``csockserver._pyengine`` (read its docstring for the
contract); this one waits with the GIL released, accepts and receives in C,
and runs the stock hooks without entering Python.  Parts, by concern:

- transport.pxi: accept/recvfrom and address decoding;
- requests.pxi:  one request's path through the hooks;
- loop.pxi:      the waker and the serving loops;
- threads.pxi:   ThreadingMixIn's worker threads;
- fork.pxi:      ForkingMixIn's children and their reaping;
- streams.pxi:   StreamRequestHandler's rfile and wfile.
"""

from libc.errno cimport (errno, EINTR, EMFILE, ENFILE, ENOBUFS, ENOMEM,
                         EBADF, EINVAL, ECHILD, EAGAIN, ENOSYS, EPERM)
from libc.math cimport ceil
from libc.stdint cimport uint64_t
from libc.stdlib cimport malloc, free
from libc.string cimport memchr, memcpy, memmove, memset
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC
from posix.unistd cimport close, read, write
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
from cpython.buffer cimport (PyObject_GetBuffer, PyBuffer_Release,
                             PyBUF_SIMPLE, PyBUF_WRITABLE)
from cpython.exc cimport PyErr_CheckSignals
from cpython.mem cimport PyMem_Free, PyMem_Realloc
from cpython.number cimport PyIndex_Check, PyNumber_Index
from cpython.pythread cimport (
    PyThread_type_lock, PyThread_allocate_lock, PyThread_free_lock,
    PyThread_acquire_lock, PyThread_release_lock, PyThread_get_thread_ident,
    NOWAIT_LOCK, WAIT_LOCK)
from cpython.contextvars cimport PyContext_New, PyContext_Enter, PyContext_Exit

from posixnet cimport (
    pollfd, poll, POLLIN, POLLPRI, POLLOUT, recv, send,
    socklen_t, sockaddr, sockaddr_storage, sockaddr_in, sockaddr_in6,
    sockaddr_un, accept4, shutdown as c_shutdown, recvfrom as c_recvfrom,
    AF_INET, AF_INET6, AF_UNIX, SOCK_CLOEXEC, SHUT_WR, MSG_DONTWAIT,
    ntohs, ntohl, inet_ntop, INET6_ADDRSTRLEN,
    eventfd, EFD_CLOEXEC, EFD_NONBLOCK, EFD_SEMAPHORE,
    csock_get_status_flags, csock_set_status_flags, O_NONBLOCK,
    epoll_event, epoll_create1, epoll_ctl, epoll_wait,
    EPOLLIN, EPOLLONESHOT, EPOLL_CLOEXEC, EPOLL_CTL_ADD, EPOLL_CTL_MOD,
    EPOLL_CTL_DEL,
    pid_t, fork, _exit, usleep, syscall, SYS_pidfd_open, waitpid, WNOHANG,
    PyOS_BeforeFork, PyOS_AfterFork_Parent, PyOS_AfterFork_Child,
)

cdef extern from "<string.h>" nogil:
    size_t strnlen(const char *s, size_t maxlen)

    object PyUnicode_DecodeFSDefaultAndSize(const char *s, Py_ssize_t size)

import io as _io_module
import socket as _socket
import sys as _sys
import threading as _threading
from os import strerror as _os_strerror
import _socket as _csocket

from csockserver import _plan
from csockserver._pyengine import (BACKOFF_FIRST, BACKOFF_MAX,
                                   SIGNAL_CHECK_INTERVAL)
from csockserver._pythreads import forget_ended as _forget_ended
from csockserver._threadlist import _Threads

cdef object SocketType = _socket.socket
cdef object _getdefaulttimeout = _socket.getdefaulttimeout
# The C-level descriptors under socket.socket's enum-building properties.
cdef object _c_family = _csocket.socket.__dict__["family"]
cdef object _c_type = _csocket.socket.__dict__["type"]
cdef object _c_proto = _csocket.socket.__dict__["proto"]
cdef object _c_close = _csocket.socket.close

# The plan's kinds, as C constants; checked against _plan just below.
cdef enum:
    PYTHON = 0
    STOCK = 1
    THREAD = 2
    FORK = 3
    REAP = 2
    ACCEPT = 1
    RECVFROM = 2
    SHUT_WR_THEN_CLOSE = 1
    CLOSE_ONLY = 2
    CLOSE = 1
    NOTHING = 2

assert (_plan.PYTHON, _plan.STOCK, _plan.THREAD, _plan.FORK, _plan.REAP,
        _plan.ACCEPT, _plan.RECVFROM, _plan.SHUT_WR_THEN_CLOSE,
        _plan.CLOSE_ONLY, _plan.CLOSE, _plan.NOTHING) == (
            PYTHON, STOCK, THREAD, FORK, REAP, ACCEPT, RECVFROM,
            SHUT_WR_THEN_CLOSE, CLOSE_ONLY, CLOSE, NOTHING)


cdef int _raise_errno(int err) except -1:
    """Raise OSError for *err*; OSError picks the subclass (ECONNABORTED...)."""
    raise OSError(err, _os_strerror(err))


include "transport.pxi"
include "requests.pxi"
include "loop.pxi"
include "threads.pxi"
include "fork.pxi"
include "streams.pxi"
