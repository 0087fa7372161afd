"""Fork dispatch in plain Python: the twin of ``src_c/fork.pxi``.

ForkingMixIn's stock process_request forks (``fork_request``): the child
runs the request and leaves with socketserver's exit statuses (0, or 1 after
handle_error); the parent records the pid in ``active_children`` and closes
its copy of the request.

Each child also gets a pidfd, kept in one epoll set per server (``Reaper``).
The serving loop waits on that set, so a child is reaped the moment it
exits; the reaping itself (``_engine.children.Children``) is shared by
both engines.
Where pidfds are missing (Python 3.8 here, kernels before 5.3) the loop
wakes every poll_interval and reaps each of its pids with WNOHANG, as
socketserver does.
"""

import errno
import os
import select

from .._engine.children import Children
from . import proxy, requests


class Reaper:
    """pidfds of one server's children, in an epoll set the loop can watch."""

    def __init__(self):
        self.epoll = select.epoll()
        self.pidfds = {}    # pid -> pidfd
        self.works = hasattr(os, "pidfd_open")

    def fileno(self):
        return self.epoll.fileno()

    def watch(self, pid):
        """Start watching child *pid*; False when it cannot be watched."""
        if not self.works:
            return False
        try:
            fd = os.pidfd_open(pid)
        except OSError as exc:
            if exc.errno in (errno.ENOSYS, errno.EPERM):
                self.works = False  # no pidfds here: poll, as socketserver
            return False            # e.g. EMFILE: this one child is polled
        self.pidfds[pid] = fd
        self.epoll.register(fd, select.EPOLLIN)
        return True

    def forget(self, pid):
        fd = self.pidfds.pop(pid, None)
        if fd is not None:
            self.epoll.unregister(fd)
            os.close(fd)

    def exited(self, timeout=0):
        """Pids whose pidfd says they exited, waiting up to *timeout* s."""
        if not self.pidfds:
            return []
        ready = {fd for fd, _ in self.epoll.poll(timeout)}
        return [pid for pid, fd in self.pidfds.items() if fd in ready]

    def covers(self, pids):
        return all(pid in self.pidfds for pid in pids)

    def close(self):
        for pid in list(self.pidfds):
            self.forget(pid)
        self.epoll.close()

    def __del__(self):
        if not self.epoll.closed:
            self.close()


children = Children(Reaper)


def fork_process():
    """os.fork(): the interpreter's fork hooks run around it."""
    return os.fork()


def fork_request(server, plan, request, client_address):
    """ForkingMixIn's stock process_request."""
    pid = os.fork()
    if pid:
        if server.active_children is None:
            server.active_children = set()
        server.active_children.add(pid)
        children.reaper_of(server).watch(pid)
        requests.close_request(server, plan, request)
        return
    # In the child: never return into the serving loop.
    status = 1
    try:
        if plan.proxy_protocol and proxy.reads_header_later(plan):
            client_address = proxy.client_address_of(server, plan, request,
                                                  client_address)
        if client_address is not None:
            requests.finish_request(server, plan, request, client_address)
        status = 0
    except Exception as exc:
        proxy.report_error(server, plan, request, client_address, exc)
    finally:
        try:
            requests.shutdown_request(server, plan, request)
        finally:
            os._exit(status)
