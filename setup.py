"""Build of csockserver's one extension module, the compiled engine.

The engine is optional: the package carries a pure-Python twin of it, which
``csockserver._engine.selection`` picks when the extension does not load.
So when the extension cannot be built, because Cython is missing or older
than 3.1 or because there is no working C compiler, the build goes on
without it and says so in one line on stderr, "csockserver: building
without the compiled engine (<why>); the pure-Python engine will be used".
pip shows a build's output only with -v, and it keeps the wheel it built
in its cache: after installing a compiler, reinstall with --no-cache-dir.
Cython stays in pyproject.toml's build requirements, so pip's isolated
build always has it; a build without Cython happens only with
--no-build-isolation (or ``setup.py`` run by hand) where Cython is not
installed.  An error in the Cython sources themselves is not a reason to
go on: it stops the build.

These variables, read at build time, steer it:

- CSOCKSERVER_NO_EXTENSIONS=1 builds no extension at all, without
  importing Cython (the same variable picks the pure engine at run time,
  and it wins over the next one, as it does there);
- CSOCKSERVER_REQUIRE_EXTENSIONS=1 makes an engine that cannot be built an
  error (CI sets it, so that a broken build cannot pass unnoticed);
- CSOCKSERVER_DEBUG_BUILD=1 builds with assertions and without
  optimisation;
- CSOCKSERVER_SANITIZE=1 builds with AddressSanitizer and
  UndefinedBehaviorSanitizer (the result loads only with libasan
  preloaded: see tools/run_sanitized.py, `make asan`);
- CSOCKSERVER_ANNOTATE=1 writes Cython's HTML annotation next to the
  sources.

Switching between the debug, sanitized and ordinary builds needs
`build_ext --force`: the flags are not part of what setuptools compares to
decide that an object is out of date.  Cython directives live here and
nowhere else.
"""
import os
import re
import subprocess
import sys

import setuptools
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import BaseError, CCompilerError, CompileError, \
    ExecError, LinkError, PlatformError


def flag(name):
    """Whether *name* is set, as csockserver/_engine/selection.py reads it."""
    return os.environ.get(name, "") not in ("", "0")


NO_EXTENSIONS = flag("CSOCKSERVER_NO_EXTENSIONS")
REQUIRE_EXTENSIONS = flag("CSOCKSERVER_REQUIRE_EXTENSIONS")
DEBUG = os.environ.get("CSOCKSERVER_DEBUG_BUILD") == "1"
SANITIZE = os.environ.get("CSOCKSERVER_SANITIZE") == "1"
# -O1 keeps the sanitized run quick; the frame pointer and -g make the
# reports' stacks readable.  The same flags go to the link, which pulls in
# the sanitizers' runtimes.
SANITIZER_FLAGS = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer",
                   "-g", "-O1"]
# The engine uses freethreading_compatible, new in 3.1.
OLDEST_CYTHON = (3, 1)
# What a missing or broken compiler raises: no compiler for this platform
# (PlatformError, or ValueError from the MSVC lookup), one that fails or
# cannot be run (CCompilerError, ExecError, OSError).
BUILD_ERRORS = (CCompilerError, ExecError, PlatformError, ValueError,
                OSError)

DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": False,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "embedsignature": True,
    # Importing the engine leaves a free-threaded interpreter's GIL off:
    # what threads share is guarded by the engine's own mutexes and
    # atomics, not by the GIL (Cython >= 3.1).
    "freethreading_compatible": True,
}


def compile_flags():
    """The optimisation, debug and sanitizer flags of the build asked for."""
    if not SANITIZE:
        return ["-O0", "-g"] if DEBUG else ["-O2"]
    # Both asked for: the debug build's -O0 comes last, so it wins.
    return SANITIZER_FLAGS + (["-O0"] if DEBUG else [])


engine = Extension(
    "csockserver._cengine",
    sources=["src_c/_cengine.pyx"],
    extra_compile_args=compile_flags(),
    extra_link_args=SANITIZER_FLAGS if SANITIZE else [],
    undef_macros=["NDEBUG"] if DEBUG else [],
)


def cython_missing():
    """Why this environment's Cython cannot build the engine, or None."""
    try:
        import Cython
    except ImportError:
        return "Cython is not installed"
    found = tuple(int(part) for part in
                  re.findall(r"\d+", Cython.__version__)[:2])
    if found < OLDEST_CYTHON:
        return "Cython %s is older than %d.%d" % ((Cython.__version__,)
                                                  + OLDEST_CYTHON)
    return None


# Looked at once, and not at all when no extension is wanted.
CYTHON_MISSING = None if NO_EXTENSIONS else cython_missing()


def ext_modules():
    """The engine, translated to C; untranslated when Cython is unfit, so
    that build_ext (below) runs and says why it builds nothing."""
    if NO_EXTENSIONS:
        return []
    if CYTHON_MISSING:
        return [engine]
    from Cython.Build import cythonize
    return cythonize(
        [engine],
        compiler_directives=DIRECTIVES,
        include_path=["src_c/includes"],
        annotate=os.environ.get("CSOCKSERVER_ANNOTATE") == "1",
    )


def in_brief(exc):
    """A failed build's *exc* in a few words: the compiler's own messages
    are in the log above, and some setuptools put its whole command line,
    every flag of it, in the exception."""
    step = {CompileError: "the C compiler failed: ",
            LinkError: "the linker failed: "}.get(type(exc), "")
    for cause in (exc.args[0] if exc.args else None, exc.__cause__,
                  exc.__context__):
        if isinstance(cause, subprocess.CalledProcessError):
            return step + "%s exited with status %s" % (
                os.fsdecode(cause.cmd[0]), cause.returncode)
        if isinstance(cause, OSError) and cause.filename:
            return step + "%s: %s" % (os.fsdecode(cause.filename),
                                      cause.strerror)
    lines = str(exc).strip().splitlines()
    return step + (lines[0] if lines else type(exc).__name__)


class optional_build_ext(build_ext):
    """build_ext that goes on without the engine when it cannot build it,
    unless CSOCKSERVER_REQUIRE_EXTENSIONS is set."""

    def run(self):
        if CYTHON_MISSING and self.extensions:
            self.without_engine(CYTHON_MISSING)
            return
        # There is one extension, so whatever fails here or in
        # build_extension() fails the engine; and it ends super().run()
        # before an editable install would copy the engine (that is not
        # there) into the sources.
        try:
            super().run()
        except BUILD_ERRORS as exc:
            self.without_engine(in_brief(exc), exc)

    def without_engine(self, reason, exc=None):
        if REQUIRE_EXTENSIONS:
            raise BaseError(
                "csockserver: the compiled engine could not be built (%s),"
                " and CSOCKSERVER_REQUIRE_EXTENSIONS is set" % reason) from exc
        # An engine from an earlier build must not pass for this one's: in
        # build/ it would go into the wheel, in the sources it would be
        # imported instead of the pure engine this build promises.
        for path in self.engine_paths():
            if os.path.exists(path):
                os.remove(path)
        sys.stderr.write("csockserver: building without the compiled engine"
                         " (%s); the pure-Python engine will be used\n"
                         % reason)
        sys.stderr.flush()

    def engine_paths(self):
        """Where this build puts the engine: build/ or, in place, the
        sources; an editable install copies it to the sources as well."""
        paths = {self.get_ext_fullpath(engine.name)}
        if getattr(self, "editable_mode", False):
            inplace, self.inplace = self.inplace, True
            try:
                paths.add(self.get_ext_fullpath(engine.name))
            finally:
                self.inplace = inplace
        return paths


def license_metadata():
    """MIT, in the form this setuptools writes (see pyproject.toml)."""
    major = int(setuptools.__version__.split(".")[0])
    if major >= 77:
        return {"license_expression": "MIT", "license_files": ["LICENSE"]}
    return {"license": "MIT", "license_files": ["LICENSE"]}


setup(
    **license_metadata(),
    ext_modules=ext_modules(),
    cmdclass={"build_ext": optional_build_ext},
)
