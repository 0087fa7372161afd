"""Quick side-by-side throughput check: stdlib socketserver vs csockserver.

    python bench/quick_compare.py [--seconds 3] [--repeat 3] [--clients 8] [--out FILE]

What it measures: one user-style echo handler (a StreamRequestHandler whose
handle() does ``wfile.write(rfile.readline())``) served by stdlib
socketserver, by csockserver's compiled engine and by csockserver with
CSOCKSERVER_NO_EXTENSIONS=1; as TCPServer and ThreadingTCPServer, each run by
serve_forever() and by a ``while True: handle_request()`` loop.  Each server
is its own subprocess on CPU 0.  The load is one subprocess on CPU 1: a
``selectors`` loop keeping --clients connections in flight, each doing
connect / send a 64-byte line / read the echo up to EOF / close.  Completed
requests and errors are counted for --seconds after a 0.5 s warm-up.  The
server reports its CPU time (os.times, all threads) before and after the
load; CPU us/req is that delta over every request it served.  Each repeat
runs all servers back to back, so drift hits them alike; the table shows
medians, [min-max] and ratios of medians to stdlib for the same row kind.

Limits: connection-per-request on loopback is dominated by kernel TCP work
(the "sys" share of CPU), which no engine can remove.  The client is Python
and can saturate its core; rows where it was >=90% busy are marked "*", and
their req/s is a client-bound floor, so compare CPU us/req there instead.
All servers get a listen backlog of 128 (the default of 5 can drop SYNs
once --clients > 5).  On a shared, noisy machine, read the ranges.
"""

import argparse, errno, json, os, platform, selectors, shlex, shutil, socket
import statistics, subprocess, sys, tempfile, threading, time

HERE = os.path.abspath(__file__)
ROOT = os.path.dirname(os.path.dirname(HERE))
LINE = b"x" * 63 + b"\n"
WARMUP, DRAIN, REQ_TIMEOUT = 0.5, 3.0, 2.0
SERVERS = ("stdlib", "csock-cython", "csock-python")


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def server_main(name, dispatch, style):
    if name == "stdlib":
        import socketserver as ss
        path = ss.__file__
    else:
        import csockserver as ss
        if ss.IMPLEMENTATION != name.split("-", 1)[1]:
            try:
                import csockserver._cengine  # noqa: F401  (only for the reason)
                why = ""
            except ImportError as exc:
                why = ": %s" % exc
            return emit({"skip": "IMPLEMENTATION is %r%s" % (ss.IMPLEMENTATION, why)})
        path = sys.modules["csockserver._engine"].engine.__file__

    class Echo(ss.StreamRequestHandler):
        def handle(self):
            self.wfile.write(self.rfile.readline())

    class Server(ss.ThreadingTCPServer if dispatch == "threading" else ss.TCPServer):
        request_queue_size = 128

    server = Server(("127.0.0.1", 0), Echo)

    def control():  # every stdin line asks for CPU times; EOF means exit now
        for _ in sys.stdin.buffer:
            emit({"cpu": os.times()[:2]})
        os._exit(0)

    threading.Thread(target=control, daemon=True).start()
    emit({"port": server.server_address[1], "file": path})
    if style == "serve_forever":
        server.serve_forever()
    else:
        while True:
            server.handle_request()


def client_main(port, seconds, nclients):
    sel = selectors.DefaultSelector()
    t0 = time.monotonic()
    w_start, w_end = t0 + WARMUP, t0 + WARMUP + seconds
    st = dict(ok=0, err=0, total_ok=0, total_err=0)

    def start():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        if s.connect_ex(("127.0.0.1", port)) not in (0, errno.EINPROGRESS):
            s.close()
            return finish(None, False)
        try:                    # loopback usually connects at once: send now
            s.send(LINE)        # (64 bytes always fit an empty buffer)
            sel.register(s, selectors.EVENT_READ, [time.monotonic(), b""])
        except OSError:         # not connected yet: send when writable
            sel.register(s, selectors.EVENT_WRITE, [time.monotonic(), b""])

    def finish(s, ok):
        now = time.monotonic()
        if s is not None:
            sel.unregister(s)
            s.close()
        st["total_ok" if ok else "total_err"] += 1
        if w_start <= now < w_end:
            st["ok" if ok else "err"] += 1

    cpu0 = None
    while time.monotonic() < w_end + DRAIN:
        while time.monotonic() < w_end and len(sel.get_map()) < nclients:
            start()             # keep --clients requests in flight
        if not sel.get_map() and time.monotonic() >= w_end:
            break               # all drained
        if cpu0 is None and time.monotonic() >= w_start:
            cpu0 = (sum(os.times()[:2]), time.monotonic())
        for key, mask in sel.select(0.05):
            s, data = key.fileobj, key.data
            try:
                if mask & selectors.EVENT_WRITE:
                    if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                        finish(s, False)
                    else:
                        s.send(LINE)
                        sel.modify(s, selectors.EVENT_READ, data)
                    continue
                chunk = s.recv(4096)
                data[1] += chunk
                if chunk and len(data[1]) <= len(LINE):
                    continue    # wait for EOF (or an overlong reply)
                finish(s, chunk == b"" and data[1] == LINE)
            except OSError:
                finish(s, False)
        now = time.monotonic()
        for key in list(sel.get_map().values()):
            if now - key.data[0] > REQ_TIMEOUT:
                finish(key.fileobj, False)
    cpu0 = cpu0 or (sum(os.times()[:2]), time.monotonic())
    st["abandoned"] = len(sel.get_map())
    st["client_busy"] = (sum(os.times()[:2]) - cpu0[0]) / max(time.monotonic() - cpu0[1], 1e-9)
    emit(st)


def read_json(proc, buf, timeout):
    """Next JSON line from a child's stdout, or None on EOF/timeout."""
    deadline = time.monotonic() + timeout
    while b"\n" not in buf:
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            ready = sel.select(max(deadline - time.monotonic(), 0))
        chunk = os.read(proc.stdout.fileno(), 65536) if ready else b""
        if not chunk:
            return None
        buf += chunk
    line, _, buf[:] = bytes(buf).partition(b"\n")
    return json.loads(line)


def measure(name, dispatch, style, args, pin):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))
    env.pop("CSOCKSERVER_NO_EXTENSIONS", None)
    if name == "csock-python":
        env["CSOCKSERVER_NO_EXTENSIONS"] = "1"
    me, buf, errlog = [sys.executable, HERE], bytearray(), tempfile.TemporaryFile()
    srv = subprocess.Popen(pin(0) + me + ["--_server", name, dispatch, style], env=env,
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errlog,
                           bufsize=0)
    try:
        hello = read_json(srv, buf, 10) or {"skip": "server did not start"}
        if "skip" in hello:
            return hello
        srv.stdin.write(b"cpu\n")
        cpu0 = read_json(srv, buf, 5)["cpu"]
        cli = subprocess.run(pin(1) + me + ["--_client", str(hello["port"]), str(args.seconds),
                                            str(args.clients)],
                             stdout=subprocess.PIPE, timeout=args.seconds + WARMUP + DRAIN + 10)
        res = json.loads(cli.stdout)
        srv.stdin.write(b"cpu\n")
        cpu1 = read_json(srv, buf, 5)["cpu"]
        n = max(res["total_ok"], 1)
        res.update(rps=res["ok"] / args.seconds, file=hello["file"],
                   us=(sum(cpu1) - sum(cpu0)) * 1e6 / n, us_user=(cpu1[0] - cpu0[0]) * 1e6 / n)
        return res
    except (OSError, ValueError, TypeError, subprocess.SubprocessError) as exc:
        return {"fail": "%s: %s" % (type(exc).__name__, exc)}
    finally:
        srv.stdin.close()
        try:
            srv.wait(5)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait()
        errlog.seek(0)
        err = errlog.read().decode("utf-8", "replace").strip()
        if err:
            print("    server stderr: ..." + err[-300:].replace("\n", " | "), file=sys.stderr)


def table(results, configs):
    rows = ["| dispatch | style | server | req/s median [min-max] | errors | server CPU "
            "us/req (user) | req/s vs stdlib | CPU vs stdlib | client busy |",
            "|---|---|---|---|---|---|---|---|---|"]
    med = {cfg: {k: statistics.median(r[k] for r in runs) for k in
                 ("rps", "us", "us_user", "client_busy")}
           for cfg, runs in ((c, [r for r in results[c] if "rps" in r]) for c in configs) if runs}
    for (name, dispatch, style), m in med.items():
        runs = [r for r in results[name, dispatch, style] if "rps" in r]
        base = med.get(("stdlib", dispatch, style))
        failed = len(results[name, dispatch, style]) - len(runs)
        rows.append("| %s | %s | %s | %.0f [%.0f-%.0f]%s | %d | %.1f (%.1f) | %s | %s | %.0f%%%s |" % (
            dispatch, style, name, m["rps"], min(r["rps"] for r in runs),
            max(r["rps"] for r in runs), " (%d failed)" % failed if failed else "",
            sum(r["total_err"] + r["abandoned"] for r in runs), m["us"], m["us_user"],
            "%.2f" % (m["rps"] / base["rps"]) if base else "n/a",
            "%.2f" % (m["us"] / base["us"]) if base else "n/a",
            100 * m["client_busy"], " *" if m["client_busy"] >= 0.9 else ""))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--out", help="also write the report to this file")
    args = ap.parse_args()
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    pinned = bool(shutil.which("taskset")) and {0, 1} <= cpus
    pin = (lambda c: ["taskset", "-c", str(c)]) if pinned else (lambda c: [])
    configs = [(n, d, s) for d in ("sync", "threading")
               for s in ("serve_forever", "handle_request") for n in SERVERS]
    results, skipped, files = {cfg: [] for cfg in configs}, {}, {}
    for rep in range(1, args.repeat + 1):
        for cfg in configs:
            if cfg[0] in skipped:
                continue
            res = measure(*cfg, args, pin)
            if "skip" in res:
                skipped[cfg[0]] = res["skip"]
                print("note: skipping %s: %s" % (cfg[0], res["skip"]), file=sys.stderr)
                continue
            results[cfg].append(res)
            files.setdefault(cfg[0], res.get("file"))
            print("[%d/%d] %-12s %-9s %-14s " % (rep, args.repeat, *cfg) + (
                "FAILED: " + res["fail"] if "fail" in res else
                "%6.0f req/s %6.1f us/req (user %5.1f) err %d client busy %3.0f%%" % (
                    res["rps"], res["us"], res["us_user"], res["total_err"] + res["abandoned"],
                    100 * res["client_busy"])), file=sys.stderr)
    cmd = getattr(sys, "orig_argv", [sys.executable] + sys.argv)
    out = ["# csockserver quick_compare", "", "Command: `%s`" % shlex.join(cmd), "",
           "Python %s, %s, %d CPUs; %s; %d clients, %g s x %d repeats; connection-per-"
           "request 64-byte echo." % (
               platform.python_version(), platform.platform(), os.cpu_count() or 0,
               "server on CPU 0, client on CPU 1 (taskset)" if pinned else "NOT pinned",
               args.clients, args.seconds, args.repeat), ""]
    out += ["- %s: `%s`" % (n, f) for n, f in files.items()]
    out += ["- %s: SKIPPED (%s)" % (n, why) for n, why in skipped.items()]
    out += [""] + table(results, configs) + [""]
    if any(r.get("client_busy", 0) >= 0.9 for rs in results.values() for r in rs):
        out.append("\\* The Python load generator was >=90% busy (CPU time ~ wall time): "
                   "req/s in these rows is capped by the client, not the server; "
                   "compare server CPU us/req instead.")
    text = "\n".join(out) + "\n"
    sys.stdout.write(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--_server"]:
        server_main(*sys.argv[2:5])
    elif sys.argv[1:2] == ["--_client"]:
        client_main(int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]))
    else:
        main()
