"""One wrk run, read through a Lua script: requests, latency percentiles to
p99.9, and errors.

wrk's ``--latency`` prints percentiles up to p99; the script's ``done()``
prints one JSON line with p50, p99 and p99.9 (``latency:percentile``), the
request count and every kind of error, replies with a status above 399
among them.  The script has no ``response()``: with one, wrk hands every
reply's headers to Lua, which costs the load generator more than a fast
server's reply costs the server (the servers are checked for the right
reply before each run instead).
"""

import json
import subprocess
import tempfile

from bench import measure

SCRIPT = r"""
-- written by bench/wrk.py
%(request)s

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        '{"requests": %%d, "duration_us": %%d, "p50_us": %%.1f,'
        .. ' "p99_us": %%.1f, "p999_us": %%.1f, "connect": %%d,'
        .. ' "read": %%d, "write": %%d, "status": %%d, "timeout": %%d}\n',
        summary.requests, summary.duration, latency:percentile(50),
        latency:percentile(99), latency:percentile(99.9), e.connect, e.read,
        e.write, e.status, e.timeout))
end
"""


def lua_string(text):
    """*text* as a Lua string literal."""
    return '"%s"' % "".join(
        c if c.isalnum() or c in " <>/.,:=_-?()" else "\\%03d" % ord(c)
        for c in text)


def script(method="GET", body=None, headers=()):
    """The Lua script's text, for requests of *method* with *body*."""
    request = ["wrk.method = %s" % lua_string(method)]
    if body is not None:
        request.append("wrk.body = %s" % lua_string(body))
    for name, value in headers:
        request.append("wrk.headers[%s] = %s" % (lua_string(name),
                                                  lua_string(value)))
    return SCRIPT % {"request": "\n".join(request)}


class Run(dict):
    """What one wrk run gave (the script's JSON), with its figures named."""

    @property
    def rps(self):
        return self["requests"] / (self["duration_us"] / 1e6)

    def ms(self, name):
        return self[name] / 1e3

    @property
    def errors(self):
        """'' if none, else what went wrong, in words."""
        kinds = [(self[k], k) for k in ("connect", "read", "write",
                                        "timeout")]
        kinds.append((self["status"], "replies above 399"))
        return ", ".join("%d %s" % (n, k) for n, k in kinds if n)

    @property
    def error_count(self):
        return sum(self[k] for k in ("connect", "read", "write", "timeout",
                                     "status"))


def run(address, seconds, cpu, method="GET", body=None, headers=(),
        connections=8):
    """One run of wrk -t1 against http://ADDRESS/, pinned to *cpu*."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua",
                                     prefix="bench-wrk-") as lua:
        lua.write(script(method, body, headers))
        lua.flush()
        argv = ["wrk", "-t1", "-c%d" % connections, "-d%ds" % seconds,
                "-s", lua.name, "http://%s:%d/" % tuple(address)]
        out = subprocess.run(measure._pinned(argv, cpu, True),
                             capture_output=True, text=True, check=True,
                             timeout=seconds + 30).stdout
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError("wrk printed no summary: %s" % out[-500:])
    return Run(json.loads(lines[-1]))

