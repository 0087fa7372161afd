"""Progress of a long run on stderr: each step numbered, with the time left.

    progress = Progress([3.7] * 20)     # each step's expected seconds
    for ...:
        progress.step("tcp-conn-64, csock-c threading")
        ...
        progress.note("26311 req/s")

prints ``[3/20] tcp-conn-64, csock-c threading ... about 1 min 5 s left``.
The first steps are judged by the expected seconds given; once some have
run, the rest are scaled by how long those really took, so a slow machine
soon gets a truthful figure.
"""

import sys
import time


def duration_text(seconds):
    """'45 s', '1 min 25 s', '12 min': rounded as far as an estimate
    deserves."""
    seconds = max(0, seconds)
    if seconds < 60:
        return "%d s" % round(seconds)
    if seconds < 600:
        minutes, rest = divmod(int(5 * round(seconds / 5)), 60)
        return "%d min %d s" % (minutes, rest) if rest else "%d min" % minutes
    return "%d min" % round(seconds / 60)


class Progress:
    """Steps of a run, each announced on stderr with the time left."""

    def __init__(self, expected, out=None):
        self.expected = list(expected)   # seconds per step, in order
        self.total = len(self.expected)
        self.done = 0                    # steps started before the current
        self.fraction = 0.0              # of the current step, when known
        self.out = out
        self.started = None

    def _print(self, text):
        print(text, file=self.out or sys.stderr, flush=True)

    def left(self):
        """Seconds the rest should take, the current step included."""
        at = min(self.done, self.total)
        current = self.expected[at] if at < self.total else 0
        behind = sum(self.expected[:at]) + self.fraction * current
        ahead = sum(self.expected[at:]) - self.fraction * current
        if self.started is None or behind <= 0:
            return ahead
        return ahead * (time.monotonic() - self.started) / behind

    def step(self, what):
        """Announce the next step (*what* runs now)."""
        now = time.monotonic()
        if self.started is None:
            self.started = now
        else:
            self.done += 1
        self.fraction = 0.0
        self._print("[%d/%d] %s ... about %s left" % (
            self.done + 1, self.total, what, duration_text(self.left())))

    def note(self, text, fraction=None):
        """A line about the current step; *fraction* of it done, if known,
        adds the time left."""
        if fraction is not None:
            self.fraction = min(max(fraction, 0.0), 1.0)
            text = "%s ... about %s left" % (text,
                                              duration_text(self.left()))
        self._print("    " + text)

    def elapsed(self):
        return 0.0 if self.started is None else (
            time.monotonic() - self.started)
