"""One measurement: start a server, drive it with the load generator, and
read the server's CPU time over the measured window."""

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER_CPU, CLIENT_CPU = "0", "1"
START_TIMEOUT = 10.0
_TICKS = os.sysconf("SC_CLK_TCK")


class Measurement:
    """What one run of one server under one workload gave."""

    def __init__(self, skipped=None, load=None, server_cpu=None):
        self.skipped = skipped
        self.load = load or {}
        self.server_cpu = server_cpu  # seconds over the measured window

    @property
    def rps(self):
        return self.load.get("rps", 0.0)

    @property
    def cpu_us_per_request(self):
        requests = self.load.get("requests", 0)
        if not requests or self.server_cpu is None:
            return None
        return self.server_cpu / requests * 1e6

    @property
    def client_busy(self):
        # The load generator busy-polls, so its CPU time is always ~100%;
        # client_work_s is the time it spent handling events.
        seconds = self.load.get("seconds") or 0
        work = self.load.get("client_work_s")
        return work / seconds if seconds and work is not None else None

    def summary(self):
        if self.skipped:
            return "skipped: %s" % self.skipped
        cpu = self.cpu_us_per_request
        return "%9.0f req/s  p99 %6s us  cpu %s us/req  err %d" % (
            self.rps, self.load.get("p99_us", "?"),
            "%.1f" % cpu if cpu is not None else "?",
            self.load.get("errors", 0) + self.load.get("timeouts", 0))


def _cpu_seconds(pid):
    """utime+stime of the process (all threads) and its reaped children."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[11:15] are utime, stime, cutime, cstime (stat fields 14-17).
    return sum(int(x) for x in fields[11:15]) / _TICKS


def _pinned(argv, cpu, pin):
    return ["taskset", "-c", cpu] + argv if pin else argv


def _server_argv(workload, server, tools, unix_path):
    if server.impl == "c":
        argv = [tools["echo_epoll"], "--mode", workload.server_workload]
    else:
        argv = [sys.executable, "-m", "bench.servers", "--impl", server.impl,
                "--workload", workload.server_workload]
        if server.dispatch:
            argv += ["--dispatch", server.dispatch]
        if workload.family == "unix" and server.impl != "c":
            argv += ["--family", "unix"]
    if workload.family == "unix":
        argv += ["--unix", unix_path]
    return argv


def _server_env(server):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [server.path, ROOT, env.get("PYTHONPATH")]))
    env.pop("CSOCKSERVER_NO_EXTENSIONS", None)
    env.pop("CSOCKSERVER_REQUIRE_EXTENSIONS", None)
    if server.impl in ("csock", "installed"):
        if server.engine == "python":
            env["CSOCKSERVER_NO_EXTENSIONS"] = "1"
        else:
            env["CSOCKSERVER_REQUIRE_EXTENSIONS"] = "1"
    return env


def _read_ready_line(proc):
    """The server's first stdout line (JSON), within START_TIMEOUT."""
    deadline = time.monotonic() + START_TIMEOUT
    buf = b""
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0 or proc.poll() is not None:
            raise RuntimeError("server did not start: %s" % (
                "timeout" if proc.poll() is None
                else "exit status %d" % proc.returncode
                if proc.stderr is None     # its stderr went to a file
                else proc.stderr.read().decode(errors="replace")[-500:]))
        ready, _, _ = select.select([proc.stdout], [], [], left)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                continue
            buf += chunk
    return json.loads(buf.split(b"\n", 1)[0])


def _stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(3)


def measure(workload, server, tools, settings, pin):
    """Run *server* under *workload* once; return a Measurement."""
    unix_path = None
    if workload.family == "unix":
        unix_path = os.path.join(tempfile.mkdtemp(prefix="csb", dir="/tmp"),
                                 "s")
    proc = subprocess.Popen(
        _pinned(_server_argv(workload, server, tools, unix_path),
                SERVER_CPU, pin),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        # ``python -m`` puts the working directory first on sys.path, so
        # another build is measured from its own directory.
        env=_server_env(server), cwd=server.path or ROOT)
    try:
        return _drive(proc, workload, settings, pin, tools)
    except (OSError, RuntimeError, ValueError,
            subprocess.TimeoutExpired) as exc:
        return Measurement(skipped="failed: %s" % exc)
    finally:
        _stop(proc)
        if unix_path:
            for remove in (os.unlink, os.rmdir):
                try:
                    remove(unix_path)
                except OSError:
                    pass
                unix_path = os.path.dirname(unix_path)


def _drive(proc, workload, settings, pin, tools):
    """Wait for the server, run the load, and read CPU around the window."""
    hello = _read_ready_line(proc)
    if "skip" in hello:
        return Measurement(skipped=hello["skip"])
    address = hello["address"]
    load_argv = [tools["loadgen"], "--mode", workload.mode,
                 "--conns", str(workload.conns),
                 "--duration", str(settings["duration"]),
                 "--warmup", str(settings["warmup"])]
    if workload.size:
        load_argv += ["--size", str(workload.size)]
    if workload.mode == "udp":
        load_argv += ["--inflight", str(workload.conns)]
    if isinstance(address, str):
        load_argv += ["--unix", address]
    else:
        load_argv += ["--host", address[0], "--port", str(address[1])]
    # The server's real pid: taskset execs, so proc.pid is the server.
    pid = proc.pid
    load = subprocess.Popen(_pinned(load_argv, CLIENT_CPU, pin),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(settings["warmup"])
        cpu_before = _cpu_seconds(pid)
        time.sleep(settings["duration"])
        cpu_after = _cpu_seconds(pid)
    except BaseException:
        load.kill()
        load.wait()
        raise
    result = load_result(load,
                         settings["duration"] + settings["warmup"] + 15)
    return Measurement(load=result, server_cpu=cpu_after - cpu_before)


def load_result(load, timeout):
    """The load generator's JSON summary, once it has ended (within
    *timeout*, else it is killed); RuntimeError if it failed."""
    try:
        out, err = load.communicate(timeout=timeout)
    finally:
        if load.poll() is None:
            load.kill()
            load.wait()
    if load.returncode != 0:
        raise RuntimeError("load generator failed: %s" %
                           err.decode(errors="replace")[-500:])
    return json.loads(out.decode().splitlines()[-1])
