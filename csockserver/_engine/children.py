"""ForkingMixIn's reaping, written once for both engines over each one's
Reaper: it runs once per child, never per request.
"""

import os
import time

from .contract import REAPER
from .timing import NO_PIDFD_POLL


class Children:
    """ForkingMixIn's reaping, over one engine's Reaper.

    Each child the server forks is in ``active_children`` and, where
    pidfds work, watched by the server's Reaper; only those pids are ever
    waited for, so a subprocess that a hook started is never reaped behind
    its owner's back.  The waits (epoll, waitpid) release the GIL and run
    signal handlers on EINTR, as the os module's do.
    """

    def __init__(self, reaper_type):
        self.reaper_type = reaper_type

    def reaper_of(self, server):
        """The server's Reaper, created on first use."""
        reaper = vars(server).get(REAPER)
        if reaper is None:
            reaper = self.reaper_type()
            setattr(server, REAPER, reaper)
        return reaper

    def reap_exited(self, server):
        """Reap the children that have exited, without waiting."""
        children = server.active_children
        if not children:
            return
        reaper = self.reaper_of(server)
        for pid in reaper.exited():
            _reap(server, reaper, pid, os.WNOHANG)
        for pid in [pid for pid in children if not reaper.covers((pid,))]:
            _reap(server, reaper, pid, os.WNOHANG)

    def collect_children(self, server, blocking=False):
        """ForkingMixIn's stock collect_children, waiting only for our pids.

        While ``max_children`` are alive, waits for one of them to exit;
        then reaps those that have exited (all of them, waiting, with
        *blocking*).
        """
        children = server.active_children
        if children is None:
            return
        reaper = self.reaper_of(server)
        while children and len(children) >= server.max_children:
            if reaper.covers(children):
                for pid in reaper.exited(None):
                    _reap(server, reaper, pid, os.WNOHANG)
            else:
                self.reap_exited(server)
                if len(children) >= server.max_children:
                    time.sleep(NO_PIDFD_POLL)
        if blocking:
            for pid in list(children):
                _reap(server, reaper, pid, 0)
        else:
            self.reap_exited(server)

    def release_reaper(self, server):
        """Close the Reaper once no child is left to watch (server_close)."""
        if not server.active_children:
            reaper = vars(server).pop(REAPER, None)
            if reaper is not None:
                reaper.close()


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
