"""The benchmark tooling runs end to end: a one-second run makes a table.

Nothing here asserts speed; benchmarks live in bench/, not in the tests.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys

import pytest

import csockserver

from tests.support.clients import recv_until_eof
from tests.support.env import TREE

ROOT = TREE
IN_SOURCE_TREE = pytest.mark.skipif(
    not os.path.isdir(os.path.join(ROOT, "bench")),
    reason="bench/ is not beside these tests (an installed package under"
           " test)")


# The bench picks its engines itself (its rows are csock-c and csock-py
# whatever the suite runs on): in the suite's pure-engine pass these would
# only repeat the compiled pass, at half a minute each.
SAME_ON_EVERY_PASS = pytest.mark.skipif(
    os.environ.get("CSOCKSERVER_NO_EXTENSIONS", "") not in ("", "0"),
    reason="the bench chooses its own engines: run in the compiled pass")


@pytest.fixture
def bench(monkeypatch):
    """The bench package, imported from the source tree."""
    monkeypatch.syspath_prepend(ROOT)
    import bench.output
    import bench.suites
    return bench


@IN_SOURCE_TREE
def test_help_lists_every_suite_and_probe_with_its_duration():
    from_help = {}
    for command in (["bench"], ["bench.probes"]):
        run = subprocess.run([sys.executable, "-m", *command, "--help"],
                             cwd=ROOT, capture_output=True, text=True,
                             timeout=60)
        assert run.returncode == 0, run.stderr
        from_help[command[0]] = run.stdout
    for name in ("matrix", "http", "scaling", "prefork", "kernel-counts",
                 "free-threading"):
        line = re.search(r"^  %s +(.+)\n +(About .*)$" % re.escape(name),
                         from_help["bench"], re.M)
        assert line, "%s not listed in:\n%s" % (name, from_help["bench"])
        assert re.search(r"\d+(\.\d)? (min|s)\b", line.group(2))
    for name in ("soak", "hostile", "faults"):
        assert re.search(r"^  %s +.+\n +About \d" % name,
                         from_help["bench.probes"], re.M), name


@IN_SOURCE_TREE
def test_every_suite_writes_under_build_unless_told(bench):
    build = os.path.join(ROOT, "build") + os.sep
    for suite in bench.suites.SUITES + bench.suites.PROBES:
        parser = bench.suites.module(suite).parser()
        assert parser.get_default("suite") == suite.name
        args = parser.parse_args([])
        assert bench.output.report_path(args).startswith(build), suite.name
        # '-': the report on stdout only.
        assert bench.output.report_path(
            parser.parse_args(["--out", "-"])) is None, suite.name


@IN_SOURCE_TREE
def test_report_speaks_of_goals_and_says_what_http_rows_run(bench):
    from bench import report, workloads
    from bench.measure import Measurement
    chosen = [w for w in workloads.full_workloads()
              if w.name in ("tcp-conn-64", "http11")]
    results = {(w.name, s.label): [Measurement(load={
        "rps": 1000.0, "p99_us": 400.0 + len(s.label),
        "p999_us": 900.0 + len(s.label)})]
        for w in chosen for s in w.servers}
    text = report.markdown("python -m bench", chosen, results,
                           {"repeat": 1, "duration": 1.0, "warmup": 0.1},
                           False, 1.0)
    goals = text[text.index("## Goals"):text.index("## TCP")]
    assert "issue" not in text.lower()
    assert "| missed |" in goals and "4× the stdlib's req/s" in goals
    # Each goal's rows beside each other: both p99s and both p99.9s.
    row, base = "csock-c threading", "stdlib threading"
    assert "| p99 µs | p99.9 µs |" in goals
    assert "| %d / %d | %d / %d |" % (
        400 + len(row), 400 + len(base), 900 + len(row),
        900 + len(base)) in goals
    # The plain server with Nagle on is named as such, apart from install().
    rows = dict(re.findall(r"^\| ((?:csock-c|installed-c) threading)(: .*?)"
                           r" \| \d", text, re.M))
    assert "not csockserver.http" in rows["csock-c threading"]
    assert "Nagle on" in rows["csock-c threading"]
    assert "install()" in rows["installed-c threading"]


@pytest.mark.timeout(180)
@pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None,
                    reason="the bench's C tools need a C compiler")
@IN_SOURCE_TREE
@SAME_ON_EVERY_PASS
def test_quick_bench_produces_a_table(tmp_path):
    out = tmp_path / "results.md"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CSOCKSERVER_")}
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "tcp-conn",
         "--repeat", "1", "--duration", "1", "--warmup", "0.2",
         "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=170)
    assert run.returncode == 0, run.stderr[-3000:]
    table = out.read_text()
    assert "## TCP, connection per request" in table
    # Every server of the workload has a row with a measured rate.
    for label in ("stdlib sync", "stdlib threading", "csock-c sync",
                  "csock-c threading", "naive_pool", "naive_lf", "c"):
        row = re.search(r"^\| %s \| (\d+) \[" % re.escape(label), table, re.M)
        assert row, "no measured row for %r in:\n%s" % (label, table)
        assert int(row.group(1)) > 0
    # The load generator's p99 and p99.9, in that order.
    latency = re.search(r"^\| stdlib threading \| \d+ \[[^]]*\](?: \*)?"
                        r" \| (\d+) \| (\d+) \|", table, re.M)
    assert latency and 0 < int(latency.group(1)) <= int(latency.group(2))
    # The goals of the workload that ran, each with its measured ratio.
    goals = re.findall(r"^\| .* \| `tcp-conn-64`: csock-c threading vs "
                       r"(stdlib threading|naive_pool) \| (\d+\.\d\d)× \|",
                       table, re.M)
    assert [name for name, _ in goals] == ["stdlib threading", "naive_pool"]
    assert "`udp-64`" not in table    # a goal whose workload did not run
    # The progress lines name what runs and the time left.
    assert re.search(r"^\[1/\d+\] tcp-conn-64, .* left$", run.stderr, re.M)
    assert "report: " in run.stderr


@pytest.mark.timeout(120)
@pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None,
                    reason="the bench's C tools need a C compiler")
@IN_SOURCE_TREE
@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="bench.soak reads /proc")
def test_tiny_soak_holds_its_bounds():
    # A few thousand requests: too few for the RSS slope bound (it needs
    # 4 s of samples), enough for the fds, threads and errors bounds.
    # Workers retire after 1 s instead of 10, so that the idle-size bound
    # is checked too.  The engine is whichever the suite runs on.
    run = subprocess.run(
        [sys.executable, "-m", "bench.probes", "soak", "--requests", "3000",
         "--kinds", "threading-conn", "udp", "--stdlib",
         "--stdlib-requests", "3000", "--idle-timeout", "1", "--out", "-"],
        cwd=ROOT, capture_output=True, text=True, timeout=110)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    for kind in ("threading-conn", "udp"):
        for engine in (r"csockserver \((cython|python)\)", "stdlib"):
            row = re.search(r"^\| %s \| %s \| ([\d,]+) \| 0 \|.*\| ok\b"
                            % (kind, engine), run.stdout, re.M)
            assert row, "no passing row for %s on %s in:\n%s" % (
                kind, engine, run.stdout)
            assert int(row.group(row.lastindex).replace(",", "")) >= 3000
    assert "all bounds held" in run.stdout


def _served_by(argv, env):
    """Start a bench server, GET / once over HTTP/1.0, stop it: (its hello
    line, the reply)."""
    proc = subprocess.Popen([sys.executable] + argv, cwd=ROOT, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        hello = json.loads(proc.stdout.readline())
        with socket.create_connection(tuple(hello["address"]),
                                      timeout=10) as client:
            client.sendall(b"GET / HTTP/1.0\r\nConnection: close\r\n\r\n")
            reply = recv_until_eof(client)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode(errors="replace")[-3000:]
    return hello, reply


@pytest.mark.timeout(60)
@IN_SOURCE_TREE
def test_standin_rows_serve_http_server_on_csockserver():
    # The engine is whichever the suite runs on.
    env = dict(os.environ, PYTHONPATH=ROOT)
    hello, reply = _served_by(
        ["-m", "bench.servers", "--impl", "installed", "--workload", "http",
         "--dispatch", "threading"], env)
    assert hello["engine"] == csockserver.IMPLEMENTATION
    # http.server's own server, not the bench's TCPServer-based one.
    assert hello["server_class"] == "http.server.ThreadingHTTPServer"
    assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(b"ok")

    # `python -m bench http`'s rows refuse to serve unless the stdlib's
    # module is built on csockserver.
    hello, reply = _served_by(["-m", "bench.http_servers", "http10",
                               "stdlib via install()"], env)
    assert hello["engine"] == csockserver.IMPLEMENTATION
    assert reply.startswith(b"HTTP/1.0 200 ") and reply.endswith(b"ok")
    hello, reply = _served_by(["-m", "bench.http_servers", "wsgi",
                               "wsgiref via install()"], env)
    assert hello["engine"] == csockserver.IMPLEMENTATION
    assert reply.startswith(b"HTTP/1.0 200 ")
    assert reply.endswith(b"Hello, world!\n")


# The quick run's workloads: http10 and http11 would double its time
# (test_standin_rows_serve_http_server_on_csockserver starts their
# install() row).
HTTP_SUITE_ROWS = {
    "xmlrpc": ["stdlib", "stdlib via install()"],
    "wsgi": ["wsgiref", "wsgiref via install()", "waitress", "cheroot"],
}


@pytest.mark.timeout(180)
@pytest.mark.skipif(shutil.which("wrk") is None, reason="needs wrk")
@pytest.mark.skipif(shutil.which("taskset") is None,
                    reason="needs taskset")
@IN_SOURCE_TREE
@SAME_ON_EVERY_PASS
def test_quick_http_suite_measures_every_row():
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CSOCKSERVER_")}
    run = subprocess.run(
        [sys.executable, "-m", "bench", "http", "--quick", "--only",
         "xmlrpc,wsgi", "--out", "-"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=170)
    assert run.returncode == 0, run.stderr[-3000:]
    report = run.stdout
    assert "issue" not in report.lower()
    assert "| p99.9 ms |" in report and "| CPU µs/req |" in report
    for workload, rows in HTTP_SUITE_ROWS.items():
        section = report[report.index("(`%s`)" % workload):]
        for row in rows:
            if row in ("waitress", "cheroot") and (
                    "Not measured: " in section and row in
                    section.split("Not measured: ", 1)[1].split("\n")[0]):
                continue        # not installed: the report says how
            # req/s [min–max], p50, p99, p99.9, CPU/req, two ratios, errors.
            found = re.search(
                r"^\| %s \| (\d+) \[\d+–\d+\] \| [\d.]+ \| [\d.]+ \|"
                r" [\d.]+ \| ([\d.]+) \| [\d.]+× \| [\d.]+× \| 0 \|$"
                % re.escape(row), section, re.M)
            assert found, "no measured row for %s %r in:\n%s" % (
                workload, row, report)
            assert int(found.group(1)) > 0 and float(found.group(2)) > 0
    goals = report[report.index("## Goals"):report.index("## SimpleXMLRPC")]
    assert re.search(r"^\| wsgiref after `install\(\)` beside waitress: .*"
                     r" \| ([\d.]+× \| [\d.]+× \| [\d.]+× \| [\d.]+ / [\d.]+"
                     r" \| [\d.]+ / [\d.]+ \| (met|missed)"
                     r"|– \| – \| – \| – \| – \| not measured: waitress is"
                     r" not installed) \|$", goals, re.M), goals
    assert "HTTP/1.0" not in goals    # its workload did not run
    assert re.search(r"^\[1/\d+\] xmlrpc, .* left$", run.stderr, re.M)
    assert re.search(r"about .* in all", run.stderr)


def _can_count_cpu_0():
    """perf and taskset are there, and perf may count CPU 0 system-wide."""
    if shutil.which("perf") is None or shutil.which("taskset") is None:
        return False
    probe = subprocess.run(["perf", "stat", "-x,", "-C", "0", "-e",
                            "context-switches", "--", "true"],
                           capture_output=True, text=True, timeout=30)
    return probe.returncode == 0


@pytest.mark.timeout(120)
@pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None,
                    reason="the bench's C tools need a C compiler")
@IN_SOURCE_TREE
@SAME_ON_EVERY_PASS
@pytest.mark.skipif(not _can_count_cpu_0(),
                    reason="needs perf allowed to count CPU 0, and taskset")
def test_kernel_counts_prints_a_row_per_server():
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CSOCKSERVER_")}
    run = subprocess.run(
        [sys.executable, "-m", "bench", "kernel-counts", "udp-64",
         "--servers", "csock-c threading,c", "--repeat", "1", "--out", "-"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=100)
    assert run.returncode == 0, run.stderr[-3000:]
    for label in ("csock-c threading", "c"):
        row = re.search(r"^\| udp-64 \| %s \| (\d+) \| (\d+\.\d\d) \|"
                        r" (\d+\.\d\d) \|$" % re.escape(label), run.stdout,
                        re.M)
        assert row, "no row for %r in:\n%s" % (label, run.stdout)
        # Each datagram costs at least its recvfrom() and its sendto().
        assert int(row.group(1)) > 0 and float(row.group(3)) >= 1.5


@IN_SOURCE_TREE
@pytest.mark.timeout(60)
def test_handler_cost_parts_name_both_header_parsers():
    run = subprocess.run(
        [sys.executable, os.path.join("bench", "http_handler_cost.py"),
         "--parts", "--requests", "200"],
        cwd=ROOT, capture_output=True, text=True, timeout=50)
    assert run.returncode == 0, run.stderr[-3000:]
    figures = dict(re.findall(
        r"^with (.*) header parser: parse_request (\d+\.\d\d) µs, of which"
        r" parse_headers \d+\.\d\d µs; the request line and version checks"
        r" -?\d+\.\d\d µs$", run.stdout, re.M))
    # csockserver's parser is timed where the compiled engine runs.
    expected = {"the standard library's"}
    if csockserver.IMPLEMENTATION == "cython":
        expected.add("csockserver's")
    assert set(figures) == expected, run.stdout
    assert all(float(us) > 0 for us in figures.values())
