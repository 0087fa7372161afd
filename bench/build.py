"""Build the benchmark's C tools (loadgen, echo_epoll) into bench/_build/.

    python -m bench.build

or, from code::

    from bench.build import build_tools
    paths = build_tools()   # {"loadgen": "/.../bench/_build/loadgen", ...}

Each tool is compiled with
``$CC -O2 -Wall -o bench/_build/NAME bench/c/NAME.c`` (``cc`` when $CC is
unset), only when the source is newer than the binary.
"""

import os
import shlex
import shutil
import subprocess
import sys

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
SRC_DIR = os.path.join(BENCH_DIR, "c")
BUILD_DIR = os.path.join(BENCH_DIR, "_build")
TOOLS = ("loadgen", "echo_epoll")


class BuildError(RuntimeError):
    """A C tool could not be built (no compiler, or compilation failed)."""


def _compiler():
    cc = shlex.split(os.environ.get("CC") or "cc")
    if not cc or shutil.which(cc[0]) is None:
        raise BuildError(
            "no C compiler found: %r is not on PATH; install gcc/clang or set "
            "$CC to a compiler to build the benchmark tools"
            % (cc[0] if cc else "")
        )
    return cc


def _needs_build(src, out):
    try:
        return os.stat(src).st_mtime_ns > os.stat(out).st_mtime_ns
    except FileNotFoundError:
        return True


def build_tools(force=False, verbose=False):
    """Compile the tools if needed; return {name: absolute binary path}."""
    os.makedirs(BUILD_DIR, exist_ok=True)
    paths = {}
    cc = None
    for name in TOOLS:
        src = os.path.join(SRC_DIR, name + ".c")
        out = os.path.join(BUILD_DIR, name)
        if not os.path.exists(src):
            raise BuildError("missing source file: %s" % src)
        if force or _needs_build(src, out):
            if cc is None:
                cc = _compiler()
            cmd = cc + ["-O2", "-Wall", "-o", out, src]
            if verbose:
                print(" ".join(shlex.quote(c) for c in cmd), file=sys.stderr)
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise BuildError(
                    "compiling %s failed (exit %d):\n%s%s"
                    % (name, proc.returncode, proc.stdout, proc.stderr)
                )
            if proc.stderr.strip() and verbose:
                print(proc.stderr, file=sys.stderr, end="")
        paths[name] = out
    return paths


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.build",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true",
                        help="rebuild even if binaries are up to date")
    args = parser.parse_args(argv)
    try:
        paths = build_tools(force=args.force, verbose=True)
    except BuildError as exc:
        print("bench.build: error: %s" % exc, file=sys.stderr)
        return 1
    for name, path in paths.items():
        print("%s: %s" % (name, path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
