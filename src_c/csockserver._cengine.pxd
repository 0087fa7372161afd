# The map of the compiled engine (csockserver._cengine, built from
# _cengine.pyx, which finds this file by its dotted name): what each
# fragment offers the fragments included after it, one .pxd per fragment,
# in the order the .pyx includes them.  tests check that a fragment uses
# only what it or a fragment before it declares.  The C declarations of
# the system and of CPython come first.

cimport cython
from libc.errno cimport errno, EINTR, EBADF, EAGAIN, ENOSYS, EPERM
from libc.math cimport ceil
from libc.stdint cimport uint64_t
from libc.stdlib cimport malloc, free
from libc.string cimport memchr, memcmp, memcpy, memmove, memset
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC
from posix.unistd cimport close, read, write
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
from cpython.buffer cimport (PyObject_GetBuffer, PyBuffer_Release,
                             PyBUF_SIMPLE, PyBUF_WRITABLE)
from cpython.exc cimport PyErr_CheckSignals
from cpython.mem cimport PyMem_Free, PyMem_Realloc
from cpython.number cimport PyIndex_Check, PyNumber_Index
from cpython.pyport cimport PY_SSIZE_T_MAX
from cpython.pythread cimport (
    PyThread_type_lock, PyThread_allocate_lock, PyThread_free_lock,
    PyThread_acquire_lock, PyThread_release_lock, PyThread_get_thread_ident,
    NOWAIT_LOCK, WAIT_LOCK)
from cpython.unicode cimport PyUnicode_DecodeLatin1
from cpython.contextvars cimport PyContext_New, PyContext_Enter, PyContext_Exit

from libc_linux cimport (
    pollfd, poll, POLLIN, POLLPRI, POLLOUT, recv, send,
    socklen_t, sockaddr, sockaddr_storage, sockaddr_in, sockaddr_in6,
    sockaddr_un, accept4, shutdown as c_shutdown, recvfrom as c_recvfrom,
    AF_INET, AF_INET6, AF_UNIX, SOCK_CLOEXEC, SHUT_WR, MSG_DONTWAIT, MSG_PEEK,
    ntohs, ntohl, inet_ntop, INET6_ADDRSTRLEN, strnlen,
    eventfd, EFD_CLOEXEC, EFD_NONBLOCK, EFD_SEMAPHORE,
    csock_get_status_flags, csock_set_status_flags, O_NONBLOCK,
    epoll_event, epoll_create1, epoll_ctl, epoll_wait,
    EPOLLIN, EPOLLONESHOT, EPOLL_CLOEXEC, EPOLL_CTL_ADD, EPOLL_CTL_MOD,
    EPOLL_CTL_DEL,
    pid_t, fork, _exit, usleep, syscall, SYS_pidfd_open, sched_yield,
)
from atomics cimport (
    csock_load_int, csock_store_int, csock_load_ulong, csock_store_ulong,
    csock_load_double, csock_store_double,
)
from cpython_extra cimport (
    PyOS_BeforeFork, PyOS_AfterFork_Parent, PyOS_AfterFork_Child,
    PyUnicode_DecodeFSDefaultAndSize,
)

include "util.pxd"
include "waker.pxd"
include "plan.pxd"
include "transport.pxd"
include "requests.pxd"
include "proxy.pxd"
include "threads.pxd"
include "fork.pxd"
include "loop.pxd"
include "streams.pxd"
include "headers.pxd"
