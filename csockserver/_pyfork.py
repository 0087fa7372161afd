"""Fork dispatch in plain Python: the twin of ``src_c/fork.pxi``.

ForkingMixIn's stock process_request forks (``fork_request``): the child
runs the request and leaves with socketserver's exit statuses (0, or 1 after
handle_error); the parent records the pid in ``active_children`` and closes
its copy of the request.

Each child also gets a pidfd, kept in one epoll set per server (``Reaper``).
The serving loop waits on that set, so a child is reaped the moment it
exits, and the server only ever waits for pids it forked itself: a
subprocess that a hook or another thread started is never reaped behind its
owner's back (socketserver's ``waitpid(-1)`` can do that).  Where pidfds are
missing (Python 3.8, kernels before 5.3) the loop wakes every poll_interval
and reaps each of its pids with WNOHANG, as socketserver does.
"""

import errno
import os
import select
import time

from . import _pyengine as core

# How often a wait for a free child slot re-checks when there are no pidfds.
_NO_PIDFD_POLL = 0.01


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


def reaper_of(server):
    reaper = vars(server).get("_csock_reaper")
    if reaper is None:
        reaper = server._csock_reaper = Reaper()
    return reaper


def fork_request(server, plan, request, client_address):
    """ForkingMixIn's stock process_request."""
    pid = os.fork()
    if pid:
        if server.active_children is None:
            server.active_children = set()
        server.active_children.add(pid)
        reaper_of(server).watch(pid)
        core.close(server, plan, request)
        return
    # In the child: never return into the serving loop.
    status = 1
    try:
        core.finish(server, plan, request, client_address)
        status = 0
    except Exception:
        server.handle_error(request, client_address)
    finally:
        try:
            core.shut_down(server, plan, request)
        finally:
            os._exit(status)


def _reap(server, reaper, pid, flags):
    """waitpid() one of our children; forget it once it is gone."""
    try:
        done, _ = os.waitpid(pid, flags)
    except ChildProcessError:
        done = pid  # already reaped elsewhere: nothing left to wait for
    except OSError:
        return
    if done:
        server.active_children.discard(pid)
        reaper.forget(pid)


def reap_exited(server):
    """Reap the children that have exited, without waiting."""
    children = server.active_children
    if not children:
        return
    reaper = reaper_of(server)
    for pid in reaper.exited():
        _reap(server, reaper, pid, os.WNOHANG)
    for pid in [pid for pid in children if pid not in reaper.pidfds]:
        _reap(server, reaper, pid, os.WNOHANG)


def collect_children(server, blocking=False):
    """ForkingMixIn's stock collect_children, waiting only for our own pids.

    While ``max_children`` are alive, waits for one of them to exit; then
    reaps those that have exited (all of them, waiting, with *blocking*).
    """
    children = server.active_children
    if children is None:
        return
    reaper = reaper_of(server)
    while children and len(children) >= server.max_children:
        if reaper.covers(children):
            for pid in reaper.exited(None):
                _reap(server, reaper, pid, os.WNOHANG)
        else:
            reap_exited(server)
            if len(children) >= server.max_children:
                time.sleep(_NO_PIDFD_POLL)
    if blocking:
        for pid in list(children):
            _reap(server, reaper, pid, 0)
    else:
        reap_exited(server)


def release_reaper(server):
    """Close the reaper once no child is left to watch (server_close)."""
    if not server.active_children:
        reaper = vars(server).pop("_csock_reaper", None)
        if reaper is not None:
            reaper.close()
