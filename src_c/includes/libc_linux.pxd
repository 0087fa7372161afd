# C declarations of libc and the Linux kernel interface that the compiled
# engine needs and Cython does not ship: poll, sockets, address conversion,
# eventfd, epoll, fork/exit, pidfd_open, file status flags, strnlen.
# Declarations only; each block names the header that declares it.

from libc.stdint cimport uint16_t, uint32_t, uint64_t

cdef extern from "<poll.h>" nogil:
    ctypedef unsigned long nfds_t
    struct pollfd:
        int fd
        short events
        short revents
    int poll(pollfd *fds, nfds_t nfds, int timeout)
    enum:
        POLLIN
        POLLPRI
        POLLOUT

cdef extern from "<sys/socket.h>" nogil:
    ctypedef unsigned int socklen_t
    ctypedef unsigned short sa_family_t
    struct sockaddr:
        sa_family_t sa_family
    struct sockaddr_storage:
        sa_family_t ss_family
    int accept4(int sockfd, sockaddr *addr, socklen_t *addrlen, int flags)
    ssize_t recvfrom(int sockfd, void *buf, size_t len, int flags,
                     sockaddr *src_addr, socklen_t *addrlen)
    ssize_t recv(int sockfd, void *buf, size_t len, int flags)
    ssize_t send(int sockfd, const void *buf, size_t len, int flags)
    int shutdown(int sockfd, int how)
    enum:
        AF_INET
        AF_INET6
        AF_UNIX
        SOCK_CLOEXEC
        SHUT_WR
        MSG_DONTWAIT
        MSG_PEEK

cdef extern from "<netinet/in.h>" nogil:
    struct in_addr:
        uint32_t s_addr
    struct sockaddr_in:
        sa_family_t sin_family
        uint16_t sin_port
        in_addr sin_addr
    struct in6_addr:
        pass
    struct sockaddr_in6:
        sa_family_t sin6_family
        uint16_t sin6_port
        uint32_t sin6_flowinfo
        in6_addr sin6_addr
        uint32_t sin6_scope_id
    uint16_t ntohs(uint16_t)
    uint32_t ntohl(uint32_t)

cdef extern from "<arpa/inet.h>" nogil:
    const char *inet_ntop(int af, const void *src, char *dst, socklen_t size)
    enum:
        INET6_ADDRSTRLEN

cdef extern from "<sys/un.h>" nogil:
    struct sockaddr_un:
        sa_family_t sun_family
        char sun_path[108]

cdef extern from "<sys/eventfd.h>" nogil:
    int eventfd(unsigned int initval, int flags)
    enum:
        EFD_CLOEXEC
        EFD_NONBLOCK
        EFD_SEMAPHORE

cdef extern from "<string.h>" nogil:
    size_t strnlen(const char *s, size_t maxlen)

cdef extern from *:
    """
    #include <fcntl.h>
    #include <sys/syscall.h>
    #include <unistd.h>
    /* The file status flags, through syscall() rather than fcntl(): with
       _FILE_OFFSET_BITS=64, which pyconfig.h sets, glibc 2.28+ headers bind
       fcntl() to fcntl64@GLIBC_2.28, and that one symbol would lift the
       wheels' manylinux floor from 2_17 to 2_28. */
    static int csock_get_status_flags(int fd)
    {
        return (int)syscall(SYS_fcntl, fd, F_GETFL);
    }
    static int csock_set_status_flags(int fd, int flags)
    {
        return (int)syscall(SYS_fcntl, fd, F_SETFL, flags);
    }
    """
    int csock_get_status_flags(int fd) nogil
    int csock_set_status_flags(int fd, int flags) nogil
    enum:
        O_NONBLOCK

cdef extern from "<sys/epoll.h>" nogil:
    ctypedef union epoll_data_t:
        void *ptr
        int fd
        uint32_t u32
        uint64_t u64
    struct epoll_event:
        uint32_t events
        epoll_data_t data
    int epoll_create1(int flags)
    int epoll_ctl(int epfd, int op, int fd, epoll_event *event)
    int epoll_wait(int epfd, epoll_event *events, int maxevents, int timeout)
    enum:
        EPOLLIN
        EPOLLONESHOT
        EPOLL_CLOEXEC
        EPOLL_CTL_ADD
        EPOLL_CTL_MOD
        EPOLL_CTL_DEL

cdef extern from "<sched.h>" nogil:
    int sched_yield()

cdef extern from "<sys/types.h>" nogil:
    ctypedef int pid_t

cdef extern from "<unistd.h>" nogil:
    pid_t fork()
    void _exit(int status)
    int usleep(unsigned int usec)
    long syscall(long number, ...)

cdef extern from *:
    """
    #include <sys/syscall.h>
    #ifndef SYS_pidfd_open
    #define SYS_pidfd_open 434  /* the same number on every architecture */
    #endif
    """
    long SYS_pidfd_open
