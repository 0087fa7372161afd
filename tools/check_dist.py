"""Check the release files in dist/ the way a user gets them.

    python tools/check_dist.py                   # every wheel, in full
    python tools/check_dist.py --full 3.11       # 3.11 in full, the others
                                                 # CPython's conformance run
    python tools/check_dist.py --sdist           # the sdist too
    python tools/check_dist.py --quick --sdist   # CI's: conformance runs

For each wheel, with the interpreter its tag names:

1. a fresh virtual environment in which no C compiler is reachable (CC,
   CXX and LDSHARED are ``false``, and ``cc``/``gcc``/``g++``/... on PATH
   are stand-ins that fail), into which pip may only install binaries;
2. the wheel and the test dependencies installed there;
3. ``import csockserver``: the compiled engine must be active, loaded from
   the environment, not from this checkout;
4. the tests, from a copy of tests/ outside the source tree, against the
   installed package: in full (pytest, which includes CPython's own
   test_socketserver, test_httpservers, test_xmlrpc and test_wsgiref on both
   engines), or only ``tools/run_cpython_suite.py`` on the compiled engine
   and the differential test of its header parser against the
   interpreter's own (the conformance run); in full, also
   ``tools/check_typing.py --installed`` (mypy --strict and stubtest on the
   installed stubs).

``--sdist`` installs the sdist the same way with this interpreter, but with
the compiler in reach, so that pip builds it (with
CSOCKSERVER_REQUIRE_EXTENSIONS=1, so that a failed compile stops it), and
runs the same checks.  Then, in one more fresh environment, it installs the
sdist twice more, with no compiler reachable and then with
CSOCKSERVER_NO_EXTENSIONS=1: each install must succeed, the first saying
in its log that it builds without the compiled engine, and the package must
run on the pure-Python engine (an import and one echoed line: about 20 s
in all; the engine itself is the tests' to check).

``--quick`` (CI's choice, about 15 minutes less) gives every wheel and
the sdist the conformance run, and this interpreter's wheel the typing
checks too: the whole suite already runs in CI on this interpreter, from
the same sources.

pip keeps the wheels it builds from an sdist in its cache, under the
sdist's path, whatever its contents: the sdist is always installed with
``--no-cache-dir``, so that no build reuses an earlier one's wheel.
"""

import argparse
import glob
import os
import re
import shutil
import stat
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _release

HEADER_PARSING_TESTS = os.path.join("tests", "features",
                                    "test_header_parsing.py")
TEST_DEPS = ("pytest>=7", "pytest-timeout>=2", "hypothesis>=6")
TYPING_DEPS = ("mypy>=1.10",)
COMPILERS = ("cc", "gcc", "g++", "c++", "clang", "clang++", "ld",
             "x86_64-linux-gnu-gcc", "x86_64-linux-gnu-g++",
             "aarch64-linux-gnu-gcc")

ENGINE_CHECK = """
import os, sys, csockserver, csockserver._cengine as cengine
assert csockserver.IMPLEMENTATION == "cython", csockserver.IMPLEMENTATION
prefix = os.path.realpath(sys.prefix)
for path in (csockserver.__file__, cengine.__file__):
    assert os.path.realpath(path).startswith(prefix + os.sep), path
print("csockserver %s, engine %s, from %s" % (
    csockserver.VERSION, csockserver.IMPLEMENTATION,
    os.path.dirname(cengine.__file__)))
"""

PURE_CHECK = """
import os, socket, sys, threading, csockserver
assert csockserver.IMPLEMENTATION == "python", csockserver.IMPLEMENTATION
prefix = os.path.realpath(sys.prefix)
assert os.path.realpath(csockserver.__file__).startswith(prefix + os.sep)
try:
    import csockserver._cengine
except ImportError:
    pass
else:
    raise AssertionError("a compiled engine was installed")

class Echo(csockserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.readline())

with csockserver.ThreadingTCPServer(("127.0.0.1", 0), Echo) as server:
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with socket.create_connection(server.server_address, timeout=10) as c:
        c.sendall(b"ping\\n")
        assert c.makefile("rb").readline() == b"ping\\n"
    server.shutdown()
print("csockserver %s, engine %s, echoed a line" % (
    csockserver.VERSION, csockserver.IMPLEMENTATION))
"""
# setup.py's one line when it builds without the engine.
WITHOUT_ENGINE = "csockserver: building without the compiled engine ("


def no_compiler_env(workdir, venv_python):
    """Environment variables under which no C compiler can be found."""
    shims = os.path.join(workdir, "no-compiler")
    os.makedirs(shims, exist_ok=True)
    for name in COMPILERS:
        path = os.path.join(shims, name)
        with open(path, "w") as f:
            f.write("#!/bin/sh\necho 'no compiler in this check' >&2\n"
                    "exit 1\n")
        os.chmod(path, os.stat(path).st_mode | stat.S_IEXEC)
    env = dict(os.environ, CC="false", CXX="false", LDSHARED="false")
    env["PATH"] = os.pathsep.join(
        [os.path.dirname(venv_python), shims, os.environ.get("PATH", "")])
    return env


def test_env(env):
    """*env* for running the tests: the engine required, no stray paths."""
    env = {k: v for k, v in env.items()
           if not k.startswith("CSOCKSERVER_") and k != "PYTHONPATH"}
    env["CSOCKSERVER_REQUIRE_EXTENSIONS"] = "1"
    return env


def copy_tests(workdir):
    """tests/ and the pytest settings, away from the package's sources."""
    tree = os.path.join(workdir, "tree")
    shutil.copytree(os.path.join(_release.ROOT, "tests"),
                    os.path.join(tree, "tests"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(os.path.join(_release.ROOT, "pyproject.toml"), tree)
    shutil.copytree(os.path.join(_release.ROOT, "tools"),
                    os.path.join(tree, "tools"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(os.path.join(_release.ROOT, "README.md"), tree)
    return tree


def check_installed(python, env, workdir, full, typing):
    """Steps 3 and 4 above, for the csockserver installed in *python*."""
    env = test_env(env)
    _release.run([python, "-c", ENGINE_CHECK], env=env, cwd=workdir)
    tree = copy_tests(workdir)
    if typing:
        _release.run([python, os.path.join("tools", "check_typing.py"),
                      "--installed"], env=env, cwd=tree)
    if full:
        _release.run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                      "tests"], env=env, cwd=tree)
    else:
        _release.run([python, os.path.join("tools", "run_cpython_suite.py")],
                     env=env, cwd=tree)
        # The compiled header parser against this interpreter's
        # http.client and email.parser, which change between versions.
        _release.run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                      HEADER_PARSING_TESTS], env=env, cwd=tree)


def check_release_file(path, interp, full, compiler, typing):
    """Steps 1-4 above for one wheel (*compiler* False) or the sdist, with
    the typing checks if *typing*."""
    print("\n== %s on Python %s%s (%s) ==" % (
        os.path.basename(path), interp.version,
        ", built by pip" if compiler else "", describe(full, typing)),
        flush=True)
    with tempfile.TemporaryDirectory(prefix="csock-check-") as workdir:
        python = _release.make_venv(interp, os.path.join(workdir, "venv"))
        pip = [python, "-m", "pip", "install", "--disable-pip-version-check"]
        if compiler:
            env = dict(os.environ)
            env["PATH"] = os.pathsep.join([os.path.dirname(python),
                                           env.get("PATH", "")])
        else:
            env = no_compiler_env(workdir, python)
            _release.run([python, "-c",
                          "import shutil, sys; cc = shutil.which('gcc');"
                          " assert cc and 'no-compiler' in cc, cc"], env=env)
            pip += ["--only-binary", ":all:"]
        deps = list(TEST_DEPS) + (list(TYPING_DEPS) if typing else [])
        if compiler:
            env["CSOCKSERVER_REQUIRE_EXTENSIONS"] = "1"
            _release.run(pip + deps, quiet=True, env=env)
            _release.run(pip + ["--no-cache-dir", path], quiet=True, env=env)
        else:
            _release.run(pip + [path] + deps, quiet=True, env=env)
        check_installed(python, env, workdir, full, typing)


def describe(full, typing):
    return ("full" if full else "conformance") + (
        ", typing" if typing and not full else "")


def check_sdist_without_engine(sdist, interp):
    """The sdist installed where the engine cannot be built, then where it
    is not wanted: the pure-Python engine, each time."""
    print("\n== %s on Python %s, without the compiled engine ==" % (
        os.path.basename(sdist), interp.version), flush=True)
    with tempfile.TemporaryDirectory(prefix="csock-check-") as workdir:
        python = _release.make_venv(interp, os.path.join(workdir, "venv"))
        # Not the CSOCKSERVER_REQUIRE_EXTENSIONS that CI exports.
        env = {k: v for k, v in no_compiler_env(workdir, python).items()
               if not k.startswith("CSOCKSERVER_") and k != "PYTHONPATH"}
        pip = [python, "-m", "pip", "install", "--disable-pip-version-check",
               "--no-cache-dir", "--force-reinstall", "--no-deps", "-v"]
        built = _release.run(pip + [sdist], quiet=True, env=env)
        if WITHOUT_ENGINE not in built.stdout:
            raise SystemExit("the build without a compiler did not say it"
                             " went without the engine")
        _release.run([python, "-c", PURE_CHECK], env=env, cwd=workdir)
        env["CSOCKSERVER_NO_EXTENSIONS"] = "1"
        built = _release.run(pip + [sdist], quiet=True, env=env)
        if WITHOUT_ENGINE in built.stdout:
            raise SystemExit("CSOCKSERVER_NO_EXTENSIONS=1 still tried to"
                             " build the engine")
        del env["CSOCKSERVER_NO_EXTENSIONS"]
        _release.run([python, "-c", PURE_CHECK], env=env, cwd=workdir)


def wheel_tag(path):
    """The ABI tag of a CPython wheel: "cp311", or "cp313t" (free-threaded)."""
    match = re.search(r"-(cp3\d+)-(cp3\d+t?)-", os.path.basename(path))
    if not match:
        raise SystemExit("not a CPython wheel: %s" % path)
    return match.group(2)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dist", default=_release.DIST)
    parser.add_argument("--full", action="append", default=None,
                        metavar="VERSION",
                        help="check these interpreters' wheels in full and"
                             " the others with the conformance run only"
                             " (default: every wheel in full)")
    parser.add_argument("--sdist", action="store_true",
                        help="also build and check the sdist")
    parser.add_argument("--quick", action="store_true",
                        help="the conformance run for every release file,"
                             " and the typing checks for this interpreter's"
                             " wheel (CI's run)")
    args = parser.parse_args(argv)
    if args.quick and args.full:
        parser.error("--quick checks no wheel in full: drop --full")
    host = _release.find_interpreters([sys.executable])[0]

    wheels = sorted(glob.glob(os.path.join(args.dist, "*.whl")),
                    key=lambda path: (int(wheel_tag(path)[2:].rstrip("t")),
                                      wheel_tag(path)))     # cp38 first
    if not wheels:
        raise SystemExit("no wheels in %s: run tools/build_wheels.py"
                         % args.dist)
    if args.quick:
        full_tags = set()
    else:
        full_tags = None if args.full is None else {
            i.tag for i in _release.find_interpreters(args.full)}
    checked = []
    for wheel in wheels:
        tag = wheel_tag(wheel)
        full = full_tags is None or tag in full_tags
        typing = full or (args.quick and tag == host.tag)
        check_release_file(wheel, _release.interpreter_for_tag(tag), full,
                           compiler=False, typing=typing)
        checked.append("%s: %s" % (os.path.basename(wheel),
                                   describe(full, typing)))
    if args.sdist:
        sdist = glob.glob(os.path.join(args.dist, "*.tar.gz"))[0]
        full = full_tags is None or host.tag in full_tags
        check_release_file(sdist, host, full, compiler=True, typing=full)
        checked.append("%s on %s: %s" % (os.path.basename(sdist),
                                         host.version, describe(full, full)))
        check_sdist_without_engine(sdist, host)
        checked.append("%s on %s without the compiled engine: import, echo"
                       % (os.path.basename(sdist), host.version))
    print("\nchecked:\n  " + "\n  ".join(checked))
    return 0


if __name__ == "__main__":
    sys.exit(main())
