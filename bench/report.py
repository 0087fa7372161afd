"""Turn measurements into the markdown report and the ratio chart."""

import os
import platform
import statistics

from .workloads import row_label


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _baseline_label(workload, server):
    """The stdlib row a server is compared with: same dispatch, else
    threading."""
    labels = [s.label for s in workload.servers]
    own = "stdlib %s" % server.dispatch
    if server.dispatch and own in labels:
        return own
    return "stdlib threading" if "stdlib threading" in labels else labels[0]


def rows(workload, results):
    """Per server: (server, medians dict) for one workload."""
    out = []
    for server in workload.servers:
        measured = results.get((workload.name, server.label), [])
        runs = [m for m in measured if not m.skipped]
        skipped = [m.skipped for m in measured if m.skipped]
        if not runs:
            out.append((server,
                        {"skipped": skipped[0] if skipped else "not run"}))
            continue
        rps = [m.rps for m in runs]
        out.append((server, {
            "rps": _median(rps), "min": min(rps), "max": max(rps),
            "p99": _median([m.load.get("p99_us") for m in runs]),
            "p999": _median([m.load.get("p999_us") for m in runs]),
            "cpu": _median([m.cpu_us_per_request for m in runs]),
            "errors": sum(m.load.get("errors", 0) + m.load.get("timeouts", 0)
                          + m.load.get("lost", 0) for m in runs),
            "client_busy": _median([m.client_busy for m in runs]),
        }))
    return out


def _ratio(a, b):
    return "%.2f×" % (a / b) if a and b else "–"


def _micros(value):
    return "%.0f" % value if value is not None else "–"


# The goals the report checks: (workload, server, baseline, ratio, the
# goal in words).  Each compares csockserver's compiled engine, serving
# handlers written the way users write them, with the stdlib or with what a
# user would write instead of either.
GOALS = [
    ("tcp-conn-64", "csock-c threading", "stdlib threading", 4.0,
     "ThreadingTCPServer, a connection per request (16 clients, 64 B):"
     " 4× the stdlib's req/s"),
    ("tcp-conn-64", "csock-c threading", "naive_pool", 1.25,
     "ThreadingTCPServer, the same load: 1.25× a 20-line pool of 8 threads"
     " (a SimpleQueue) on the stdlib's TCPServer"),
    ("udp-64", "csock-c threading", "stdlib threading", 17.0,
     "ThreadingUDPServer (16 datagrams in flight, 64 B): 17× the stdlib's"
     " req/s"),
    ("udp-64", "csock-c threading", "naive_lf", 1.1,
     "ThreadingUDPServer, the same load: 1.1× 8 threads each looping on"
     " the stdlib server's get_request()"),
    ("tcp-line-16k", "csock-c threading", "stdlib threading", 2.0,
     "StreamRequestHandler line echo (16 KiB lines, 16 connections): 2×"
     " the stdlib's req/s"),
    ("http10", "installed-c threading", "stdlib threading", 2.5,
     "http.server's handler on its ThreadingHTTPServer after install(),"
     " HTTP/1.0: 2.5× the stdlib's req/s"),
]


def goals_table(workloads, results):
    """The GOALS whose workload ran, as markdown lines (none if no goal's
    workload ran)."""
    measured = {}
    for workload in workloads:
        for server, r in rows(workload, results):
            measured[(workload.name, server.label)] = r
    lines = []
    for name, server, baseline, goal, statement in GOALS:
        if (name, server) not in measured or (name, baseline) not in measured:
            continue
        mine, theirs = measured[(name, server)], measured[(name, baseline)]
        rps, base = mine.get("rps"), theirs.get("rps")
        ratio = rps / base if rps and base else None
        lines.append("| %s | `%s`: %s vs %s | %s | %s | %s | %s / %s | %s / %s"
                     " | %s |" % (
                         statement, name, server, baseline,
                         "%.2f×" % ratio if ratio else "–",
                         _ratio(theirs.get("cpu"), mine.get("cpu")),
                         _ratio(mine.get("p99"), theirs.get("p99")),
                         _micros(mine.get("p99")), _micros(theirs.get("p99")),
                         _micros(mine.get("p999")),
                         _micros(theirs.get("p999")),
                         "–" if ratio is None
                         else "met" if ratio >= goal else "missed"))
    if not lines:
        return []
    return ["## Goals", "",
            "What csockserver set out to reach, judged on the ratio of median"
            " req/s the tables below give. Beside it: less CPU/req, the"
            " second row's server CPU per request over the first's (above 1:"
            " the first row costs less); p99, the first row's over the"
            " second's; then each latency for the first row / the second.",
            "",
            "| goal | rows compared | req/s | less CPU/req | p99 | p99 µs"
            " | p99.9 µs | |",
            "|---|---|---:|---:|---:|---:|---:|---|"] + lines + [""]


ROWS = (
    "Rows: `stdlib D` is the standard library's socketserver with dispatch D"
    " (sync: TCPServer or UDPServer; threading: Threading*; forking:"
    " Forking*); `csock-c D` and `csock-py D` are csockserver's same"
    " classes on its compiled and its pure-Python engine; `installed-c` and"
    " `installed-py` the standard library's own code after"
    " `csockserver.install()`; `naive_pool` a 20-line pool of 8 threads (a"
    " SimpleQueue) on the stdlib's server; `naive_lf` 8 threads each looping"
    " on the stdlib server's `get_request()`; `asyncio` asyncio protocols"
    " doing the same work; `c` a minimal C epoll server, this machine's"
    " practical limit. Every socketserver row serves the same handler code;"
    " where a label alone would mislead, the row says what runs.")


def markdown(command, workloads, results, settings, pinned, elapsed):
    lines = [
        "# Benchmark results", "",
        "Rerun: `python -m bench` (the full matrix, about 11 min; add "
        "`--out bench/RESULTS.md` to update the tracked report) or "
        "`python -m bench --quick` (the headline workloads, under 2 min). "
        "`python -m bench --help` lists the other suites.", "",
        "Command: `%s` (%.0f s). Python %s, %s, %d CPUs; %s; %d repeats × "
        "%.1f s after %.1f s warm-up; servers alternate within each "
        "repeat." % (
            command, elapsed, platform.python_version(), platform.platform(),
            os.cpu_count(),
            "server on CPU 0, load generator on CPU 1 (taskset)" if pinned
            else "not pinned", settings["repeat"], settings["duration"],
            settings["warmup"]), "",
        "Columns: req/s median [min–max]; p99 and p99.9 latency (medians"
        " of runs); "
        "server CPU per request (user+system, all threads and reaped "
        "children); ratios of req/s to the standard library's server with "
        "the same dispatch (threading for the reference servers) and to the "
        "C epoll server. `*` marks rows where the load generator spent over "
        "90% of the window handling events: there req/s is capped by the "
        "client more than by the server, so compare CPU per request.", "",
        ROWS, ""]
    lines += goals_table(workloads, results)
    for workload in workloads:
        table = rows(workload, results)
        by_label = {s.label: r for s, r in table}
        c_limit = by_label.get("c", {}).get("rps")
        lines += ["## %s (`%s`)" % (workload.title, workload.name), ""]
        if workload.note:
            lines += [workload.note, ""]
        lines += ["| server | req/s | p99 µs | p99.9 µs | CPU µs/req"
                  " | vs stdlib | vs C | errors |",
                  "|---|---|---|---|---|---|---|---|"]
        for server, r in table:
            if "skipped" in r:
                lines.append("| %s | skipped: %s | | | | | | |" % (
                    row_label(workload, server), r["skipped"]))
                continue
            base = by_label.get(_baseline_label(workload, server),
                                {}).get("rps")
            star = " *" if (r["client_busy"] or 0) > 0.9 else ""
            lines.append(
                "| %s | %.0f [%.0f–%.0f]%s | %s | %s | %s | %s | %s | %d |" % (
                    row_label(workload, server), r["rps"], r["min"],
                    r["max"], star, _micros(r["p99"]), _micros(r["p999"]),
                    "%.1f" % r["cpu"] if r["cpu"] is not None else "–",
                    _ratio(r["rps"], base), _ratio(r["rps"], c_limit),
                    r["errors"]))
        lines.append("")
    return "\n".join(lines)


# Sections of RESULTS.md below this line come from other suites and probes,
# copied in by hand or by ``soak --write``; a new run of the matrix keeps
# them.
KEPT_MARKER = "<!-- not written by python -m bench: kept as is -->"


def kept_section(path):
    """The part of an existing report from KEPT_MARKER on, or ''."""
    try:
        with open(path) as f:
            old = f.read()
    except OSError:
        return ""
    at = old.find(KEPT_MARKER)
    return "\n" + old[at:] if at >= 0 else ""


def chart(workloads, results, path):
    """A bar chart of req/s relative to the stdlib; None without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(len(workloads), 1,
                             figsize=(9, 2.6 * len(workloads)), squeeze=False)
    for ax, workload in zip(axes[:, 0], workloads):
        table = [(s, r) for s, r in rows(workload, results) if "rps" in r]
        by_label = {s.label: r for s, r in table}
        ratios = []
        for server, r in table:
            base = by_label.get(_baseline_label(workload, server),
                                {}).get("rps")
            ratios.append(r["rps"] / base if base else 0)
        ax.barh([s.label for s, _ in table], ratios)
        ax.axvline(1.0, color="grey", linewidth=0.8)
        ax.set_title(workload.title, fontsize=9)
        ax.tick_params(labelsize=8)
    axes[-1, 0].set_xlabel("req/s relative to the standard library")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def replace_section(path, heading, text):
    """Put *text* (starting with its *heading* line) in the kept part of the
    report at *path*: in place of the section under that heading, up to the
    next heading of the same level, or at the end.  Other scripts' sections
    stay as they are."""
    try:
        with open(path) as f:
            old = f.read()
    except FileNotFoundError:
        old = ""
    if KEPT_MARKER not in old:
        old = old.rstrip("\n") + "\n\n" + KEPT_MARKER + "\n"
    level = heading.split(" ", 1)[0] + " "
    lines = old.split("\n")
    at = next((i for i, line in enumerate(lines)
               if line == heading or line.startswith(heading + " ")), None)
    new = text.rstrip("\n").split("\n")
    if at is None:
        lines = lines[:len(lines) - (lines[-1] == "")] + [""] + new + [""]
    else:
        end = next((i for i in range(at + 1, len(lines))
                    if lines[i].startswith(level)), len(lines))
        tail = lines[end:]
        lines = lines[:at] + new + ([""] + tail if tail else [""])
    with open(path, "w") as f:
        f.write("\n".join(lines))
